"""Skipping: a follower's call made to return the leader's outcome.

At a seccomp stop, in one stop: the number becomes -1, the return register
gets the leader's result and its output bytes go to the follower's own
pointers (:mod:`realmode.abi`). When the leader alone opened a descriptor
(placeholders), the follower's call is turned into ``openat(O_PATH)`` of the
same path (read-only for a regular file the leader opened read-only,
:mod:`realmode.placeholder`) or ``openat("/dev/null")`` (``pipe2`` for a pair); the kernel
picks the lowest free number and the tables are equal, so it lands at the
leader's number, which is checked.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import TYPE_CHECKING

from dmvx import syscalls
from dmvx.actions import Skip
from dmvx.calls import Outcome
from dmvx.syscalls import Arch
from dmvx.verdict import Verdict, VerdictKind
from realmode import abi, placeholder
from realmode import ptrace_ll as ll
from realmode.tracer.procs import Held, Proc, Stage
from realmode.tracer.signals import raised_sigpipe
from realmode.tracer.steering import MASK64
from realmode.tracer.tally import Tally

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess

O_RDWR, O_CLOEXEC = 0o2, 0o2000000
_PATH_OPENS = {"open": 0, "openat": 1}
AT_FDCWD = -100


class Skipping:
    """Makes a follower's held call return the leader's outcome."""

    def __init__(self, tracer: TracerProcess) -> None:
        self.t = tracer

    def skip(self, proc: Proc, skip: Skip) -> None:
        proc.waiting_since = None
        held = proc.held
        if held is None or held.stage is not Stage.ENTRY:
            return
        self.t.stats.skipped += 1
        if held.count is not None:
            Tally.released(held)
            Tally.returned(held, skip.outcome.result)
        regs = ll.get_regs(proc.pid)
        if skip.new_fds:
            held.to(Stage.SKIPPING)
            held.skip = skip
            self._placeholder(proc, held, regs, skip.new_fds)
            ll.set_regs(proc.pid, regs)
            ll.resume(proc.pid, True)
            return
        # One stop: at a seccomp stop the kernel skips a call numbered -1 and
        # leaves the return register as the tracer set it.
        proc.held = None
        result = self._write_outcome(proc, held, skip)
        if result is None:
            return
        self._record_skip(proc, held, skip, result)
        regs.orig_rax = MASK64
        regs.rax = result & MASK64
        ll.set_regs(proc.pid, regs)
        if raised_sigpipe(held.raw.call, result):
            # The kernel sent the leader SIGPIPE with its EPIPE; a signal
            # given at a seccomp stop is dropped, so send it: it is pending
            # when the skipped call returns, as the leader's was.
            os.kill(proc.pid, signal.SIGPIPE)
        ll.resume(proc.pid, False)

    def _placeholder(self, proc: Proc, held: Held, regs: ll.UserRegs, fds: tuple[int, ...]) -> None:
        """Make the skipped call open placeholders at the leader's numbers."""
        arch = held.raw.arch
        cloexec = any(info.cloexec for fd, info in proc.monitor.fds.snapshot().items() if fd in fds)
        address = (regs.rsp - 1024) & ~0xF
        if arch is Arch.I386:
            address &= 0xFFFFFFFF
        flags = O_CLOEXEC if cloexec else 0
        raw = held.raw
        data = b"/dev/null\0" if len(fds) == 1 else b"\0" * 8
        openat = syscalls.number("openat", arch)
        target = self._resolved(proc, raw) if len(fds) == 1 and raw.name in _PATH_OPENS else None
        if target is not None:
            # The same path, as O_PATH or a read-only regular file (realmode.placeholder).
            path_index = _PATH_OPENS[raw.name]
            dirfd = raw.call.args[0] if raw.name == "openat" else AT_FDCWD
            path_register = held.raw.args[0 if raw.kernel_name in ("open", "creat") else 1]
            original_flags = raw.call.args[path_index + 1] if raw.kernel_name != "creat" else 0
            regs.orig_rax = openat
            args = [dirfd, path_register, placeholder.open_flags(original_flags, target) | flags, 0]
        elif len(fds) == 1:
            held.scratch = (address, ll.read_memory(proc.pid, address, len(data)))
            ll.write_memory(proc.pid, address, data)
            regs.orig_rax = openat
            args = [AT_FDCWD, address, O_RDWR | flags, 0]
        else:
            held.scratch = (address, ll.read_memory(proc.pid, address, len(data)))
            ll.write_memory(proc.pid, address, data)
            regs.orig_rax = syscalls.number("pipe2", arch)
            args = [address, flags]
        mask = abi.WORD_MASK[arch]
        for name, value in zip(abi.ARG_REGISTERS[arch], args):
            setattr(regs, name, value & mask)

    def _resolved(self, proc: Proc, raw: abi.RawCall) -> str | None:
        """The leader's path as this monitor reaches it, when this variant can
        open it itself (not under /proc, where a path names a process, and
        existing from here); None otherwise."""
        path = raw.call.args[_PATH_OPENS[raw.name]]
        if not isinstance(path, str) or path.startswith("/proc") or raw.name not in _PATH_OPENS:
            return None
        if not path.startswith("/"):
            dirfd = raw.call.args[0] if raw.name == "openat" else AT_FDCWD
            base = f"/proc/{proc.pid}/cwd" if dirfd == AT_FDCWD else f"/proc/{proc.pid}/fd/{dirfd}"
            path = f"{base}/{path}"
        return path if os.path.lexists(path) else None

    def finish_skip(self, proc: Proc, held: Held, rval: int) -> None:
        skip = held.skip
        assert skip is not None
        got: tuple[int, ...] = (rval,)
        if held.scratch is not None:
            address, saved = held.scratch
            if len(skip.new_fds) == 2:
                pair = ll.read_memory(proc.pid, address, 8)
                got = (
                    (int.from_bytes(pair[:4], "little", signed=True), int.from_bytes(pair[4:], "little", signed=True))
                    if rval == 0
                    else (rval,)
                )
            ll.write_memory(proc.pid, address, saved)
        if got != tuple(skip.new_fds):
            self._refuse(
                proc,
                held,
                skip,
                VerdictKind.PROTOCOL_ERROR,
                f"placeholder descriptor landed at {got}, the leader's is {skip.new_fds}",
            )
            return
        result = self._write_outcome(proc, held, skip)
        if result is None:
            return
        self._record_skip(proc, held, skip, result)
        regs = ll.get_regs(proc.pid)
        regs.rax = result & MASK64
        ll.set_regs(proc.pid, regs)
        ll.resume(proc.pid, False)

    def _record_skip(self, proc: Proc, held: Held, skip: Skip, result: int) -> None:
        if self.t.recorder is not None and proc is self.t.root:
            self.t.recorder.call(held.raw.call, Outcome(result, skip.outcome.outputs), held.entered, None)

    def _refuse(self, proc: Proc, held: Held, skip: Skip, kind: VerdictKind, detail: str) -> None:
        """End the run: the leader's outcome of ``held`` cannot be given to this variant
        (the verdict names the thread where the variant has threads)."""
        self.t.halt(self.t.threads.explain(proc, Verdict(kind, skip.seq, {self.t.index: held.raw.call}, detail=detail)))

    def _write_outcome(self, proc: Proc, held: Held, skip: Skip) -> int | None:
        """Write the leader's outcome into ``proc``; None (and a verdict) if it cannot be."""
        try:
            return proc.reader.write_outcome(held.raw, skip.outcome)
        except (OSError, ValueError) as error:
            if isinstance(error, OSError) and error.errno == errno.ESRCH:
                raise
            self._refuse(
                proc,
                held,
                skip,
                VerdictKind.OUTPUT_MISMATCH,
                f"cannot write the leader's output into this variant: {error}",
            )
            return None
