"""The per-variant monitor process (DCP-MON): a ptrace tracer driving the core.

One monitor process launches its variant as a traced child and turns what
the kernel reports into core events, then carries out the actions the core
returns (:mod:`dmvx.monitor`). It decides nothing itself: which calls are
compared, who runs them and when a run is over are the core's answers.

What it does do, because only a tracer can:

* **Launch in the right order** (a ``SECCOMP_RET_TRACE`` before
  ``PTRACE_O_TRACESECCOMP`` is set would fail the call): the child asks to be
  traced and stops itself; the monitor sets its options (``EXITKILL`` so a
  dead monitor never leaves its variant running unwatched); the child sets
  no-new-privs, loads the filter (:mod:`realmode.seccomp`) and execs.
  Comparison starts at the exec: the launcher's own calls differ by design.
* **Hide the vDSO** at every exec, by turning the ``AT_SYSINFO_EHDR`` entry
  of the new image's auxiliary vector into ``AT_IGNORE``. libc then makes
  real ``clock_gettime``/``gettimeofday``/``time`` calls, which the core
  replicates like any other: time read by the leader is the time every
  variant sees.
* **Skip** a call for a follower: the number becomes -1 at the stop (the
  kernel runs nothing) and at the exit stop the leader's result goes into
  the return register and its output bytes to the follower's own pointers.
* **Placeholders**: when the leader alone opened a descriptor, the follower's
  call is turned into ``openat("/dev/null")`` (``pipe2`` for a pair) instead
  of being skipped. The kernel hands out the lowest free number and the
  descriptor tables are equal, so it lands at the leader's number, which is
  checked.
* **Time**: a wait the core asked for that lasts longer than the stall
  timeout becomes ``stalled()``; a variant inside a long native call sends
  heartbeats so the others' wait is not mistaken for a stall.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

from dmvx import codec
from dmvx.actions import Done, Execute, Halt, Send, Skip, Wait
from dmvx.calls import Outcome
from dmvx.messages import Stop
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Policy
from dmvx.verdict import Verdict, VerdictKind
from realmode import abi, link
from realmode import ptrace_ll as ll

AT_NULL, AT_IGNORE, AT_SYSINFO_EHDR = 0, 1, 33
O_RDWR, O_CLOEXEC, O_PATH, O_NOFOLLOW, O_DIRECTORY = 0o2, 0o2000000, 0o10000000, 0o400000, 0o200000
_PATH_OPENS = {"open": 0, "openat": 1}
AT_FDCWD = -100
_OPENAT = {abi.X86_64_ARCH: 257, abi.I386_ARCH: 295}
_PIPE2 = {abi.X86_64_ARCH: 293, abi.I386_ARCH: 331}
_PROCESS_CREATORS = frozenset({"fork", "vfork", "clone", "clone3"})
CLONE_THREAD = 0x10000
HEARTBEAT_EVERY = 0.5
_MASK64 = (1 << 64) - 1


@dataclass
class Launch:
    """Everything a monitor process needs to start its variant."""

    index: int
    n_variants: int
    policy: Policy
    path: str
    argv: list[str]
    env: dict[str, str]
    filter: list[tuple[int, int, int, int]]
    stall_timeout: float = 2.0
    cpu: int | None = None


@dataclass
class _Held:
    """The call the variant is stopped at, and what is being done with it."""

    raw: abi.RawCall
    stage: str = "entry"  # entry | running | skipping
    skip: Skip | None = None
    scratch: tuple[int, bytes] | None = None  # address, saved bytes
    regs: ll.UserRegs | None = None


@dataclass
class Stats:
    stops: int = 0
    executed: int = 0
    skipped: int = 0
    routes: Counter = field(default_factory=Counter)


class Unsupported(Exception):
    """The program did something real mode does not follow (yet)."""


class MonitorProcess:
    def __init__(self, launch: Launch, link_sock: socket.socket, report_fd: int) -> None:
        self.launch = launch
        self.link = link_sock
        self.report_fd = report_fd
        self.index = launch.index
        if launch.index == 0:
            self.monitor: LeaderMonitor | FollowerMonitor = LeaderMonitor(launch.policy, launch.n_variants)
        else:
            self.monitor = FollowerMonitor(launch.policy, launch.index, launch.n_variants)
        self.pid = 0
        self.reader: abi.Reader | None = None
        self.held: _Held | None = None
        self.alive = False
        self.started = False
        self.finished = False
        self.waiting_since: float | None = None
        self.last_inbound = time.monotonic()
        self.last_heartbeat = 0.0
        self.stats = Stats()
        self.link_reader = link.LinkReader()

    # -- reporting to the orchestrator ------------------------------------------

    def _report(self, **event: object) -> None:
        os.write(self.report_fd, (json.dumps(event) + "\n").encode())

    # -- launch ------------------------------------------------------------------

    def launch_variant(self) -> None:
        launch = self.launch
        if launch.cpu is not None:
            try:
                os.sched_setaffinity(0, {launch.cpu})
            except OSError:
                pass
        pid = os.fork()
        if pid == 0:  # the variant-to-be
            try:
                if self.index != 0:
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                os.closerange(3, 65536)
                ll.traceme()
                os.kill(os.getpid(), signal.SIGSTOP)
                ll.install_filter(launch.filter)
                os.execve(launch.path, launch.argv, launch.env)
            finally:
                os._exit(127)
        self.pid = pid
        _, status = os.waitpid(pid, ll.WALL)
        if not os.WIFSTOPPED(status):
            raise RuntimeError(f"variant {self.index} did not stop before exec (status {status:#x})")
        ll.set_options(pid, ll.PTRACE_O_TRACESYSGOOD | ll.PTRACE_O_TRACESECCOMP
                       | ll.PTRACE_O_TRACEEXEC | ll.PTRACE_O_EXITKILL)
        ll.resume(pid, False)
        self.alive = True
        self.reader = abi.Reader(pid)
        self._report(event="started", pid=pid)

    # -- main loop -----------------------------------------------------------------

    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.launch_variant()
        try:
            while not self.finished:
                timeout = self._timeout()
                readable, _, _ = select.select([self.link, wake_r], [], [], timeout)
                if wake_r in readable:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                try:
                    self._reap()
                    if self.link in readable and not self.finished:
                        self._read_link()
                    self._timers()
                except ll.PtraceError as error:
                    if error.errno != errno.ESRCH:
                        raise
                    # The variant died under us (killed from outside, or by
                    # the orchestrator): its exit status is reaped next round.
                    continue
        except Unsupported as problem:
            self._kill()
            self._report(event="unsupported", message=str(problem))
        finally:
            self._kill()

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = []
        if self.waiting_since is not None:
            deadlines.append(max(self.waiting_since, self.last_inbound) + self.launch.stall_timeout)
        if self.held is not None and self.held.stage != "entry" and self.alive:
            deadlines.append(self.last_heartbeat + HEARTBEAT_EVERY)
        if not deadlines:
            return 1.0
        return max(0.0, min(deadlines) - now)

    def _timers(self) -> None:
        if self.finished:
            return
        now = time.monotonic()
        held = self.held
        if held is not None and held.stage != "entry" and self.alive and now - self.last_heartbeat >= HEARTBEAT_EVERY:
            # Inside a native call (possibly a blocking one): tell the others.
            self.last_heartbeat = now
            self._send(link.BROADCAST if self.index == 0 else 0, None)
        if self.waiting_since is not None and now - max(self.waiting_since, self.last_inbound) >= self.launch.stall_timeout:
            self.waiting_since = None
            self._carry_out(self.monitor.stalled())

    def _send(self, to: int, message) -> None:
        try:
            self.link.sendall(link.encode(to, message))
        except OSError:
            pass  # the CONNECTOR is gone; the peers see the link drop

    def _read_link(self) -> None:
        try:
            records = link.receive(self.link, self.link_reader)
        except (link.LinkClosed, OSError):
            if not self.finished:
                self._carry_out(self.monitor.message_received(
                    Stop("0", Verdict(VerdictKind.CONNECTOR_LOST, self.monitor.seq, detail="the CONNECTOR went away"))))
            return
        for _peer, payload in records:
            if self.finished:
                return
            message = link.decode(payload)
            if message is None:
                # A heartbeat: the peer is inside a long native call. That
                # excuses the wait of a live variant, not of one whose
                # process has ended (no peer call can still be owed to it).
                if self.alive:
                    self.last_inbound = time.monotonic()
                continue
            self.last_inbound = time.monotonic()
            self._carry_out(self.monitor.message_received(message))

    # -- tracee events ---------------------------------------------------------------

    def _reap(self) -> None:
        while self.alive:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | ll.WALL)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid != self.pid:
                continue
            self._on_status(status)

    def _on_status(self, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.alive = False
            self.held = None
            if self.finished:
                return
            if os.WIFEXITED(status):
                self._carry_out(self.monitor.process_exited(os.WEXITSTATUS(status)))
            else:
                self._carry_out(self.monitor.process_killed(os.WTERMSIG(status)))
            return
        if not os.WIFSTOPPED(status):
            return
        sig = os.WSTOPSIG(status)
        event = status >> 16
        pid = self.pid
        if sig == signal.SIGTRAP and event == ll.PTRACE_EVENT_SECCOMP:
            self._on_entry()
        elif sig == signal.SIGTRAP | 0x80:
            info = ll.syscall_info(pid)
            if info.op == ll.OP_EXIT:
                self._on_exit(info.rval)
            else:
                ll.resume(pid, True)  # an entry stop we did not ask for
        elif sig == signal.SIGTRAP and event == ll.PTRACE_EVENT_EXEC:
            self._hide_vdso()
            # First exec: the launcher became the program; comparison starts now.
            self.started = True
            ll.resume(pid, self.held is not None)
        elif sig == signal.SIGTRAP and event:
            ll.resume(pid, False)
        else:
            ll.resume(pid, self.held is not None and self.held.stage != "entry", sig)

    def _hide_vdso(self) -> None:
        """Turn the new image's AT_SYSINFO_EHDR into AT_IGNORE (see the module doc)."""
        regs = ll.get_regs(self.pid)
        word = 8 if regs.cs == 0x33 else 4
        address = regs.rsp & (_MASK64 if word == 8 else 0xFFFFFFFF)
        data = b""
        position = 0

        def next_word() -> int:
            nonlocal data, position
            while len(data) - position < word:
                more = ll.read_memory(self.pid, address + len(data), 4096 - ((address + len(data)) % 4096))
                if not more:
                    raise OSError("auxiliary vector not found on the new stack")
                data += more
            value = int.from_bytes(data[position:position + word], "little")
            position += word
            return value

        argc = next_word()
        for _ in range(argc + 1):
            next_word()
        while next_word():
            pass
        while True:
            kind = next_word()
            next_word()
            if kind == AT_NULL:
                return
            if kind == AT_SYSINFO_EHDR:
                ll.write_memory(self.pid, address + position - 2 * word, AT_IGNORE.to_bytes(word, "little"))

    def _on_entry(self) -> None:
        info = ll.syscall_info(self.pid)
        if not self.started:
            ll.resume(self.pid, False)  # the launcher's exec: not compared
            return
        arch = abi.arch_of(info.arch)
        if arch is None:
            raise Unsupported(f"variant {self.index} made a system call of unknown architecture {info.arch:#x}")
        assert self.reader is not None
        raw = self.reader.call(arch, info.nr, info.args)
        if raw.name in _PROCESS_CREATORS:
            flags = info.args[0] if raw.name == "clone" else 0
            what = "a thread" if flags & CLONE_THREAD or raw.name == "clone3" else "a process"
            raise Unsupported(
                f"{self.launch.argv[0]} created {what} ({raw.kernel_name}); real mode follows "
                f"one process per variant and no threads yet")
        self.stats.stops += 1
        self.held = _Held(raw)
        self._carry_out(self.monitor.call_entered(raw.call))

    def _on_exit(self, rval: int) -> None:
        held = self.held
        if held is None:
            ll.resume(self.pid, False)
            return
        self.held = None
        if held.stage == "skipping":
            self._finish_skip(held, rval)
            return
        assert self.reader is not None
        outcome = self.reader.outcome(held.raw, rval)
        actions = self.monitor.call_exited(outcome)
        self._carry_out(actions)
        if self.alive:
            ll.resume(self.pid, False)

    # -- actions -----------------------------------------------------------------------

    def _carry_out(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action.to, action.message)
            elif isinstance(action, Execute):
                self._execute()
            elif isinstance(action, Skip):
                self._skip(action)
            elif isinstance(action, Wait):
                if self.waiting_since is None:
                    self.waiting_since = time.monotonic()
            elif isinstance(action, Halt):
                self._halt(action.verdict)
                return
            elif isinstance(action, Done):
                self.finished = True
                self._report(event="done", status=action.exit_status, stats=self._stats())
                return

    def _execute(self) -> None:
        self.waiting_since = None
        held = self.held
        if held is None or held.stage != "entry":
            return
        held.stage = "running"
        self.stats.executed += 1
        self.last_heartbeat = time.monotonic()
        ll.resume(self.pid, True)

    def _skip(self, skip: Skip) -> None:
        self.waiting_since = None
        held = self.held
        if held is None or held.stage != "entry":
            return
        assert self.reader is not None
        if held.raw.name == "getpid" and skip.outcome.result > 0:
            self.reader.self_pids.add(skip.outcome.result)
        held.stage = "skipping"
        held.skip = skip
        self.stats.skipped += 1
        regs = ll.get_regs(self.pid)
        if skip.new_fds:
            self._placeholder(held, regs, skip.new_fds)
        else:
            regs.orig_rax = _MASK64
        ll.set_regs(self.pid, regs)
        ll.resume(self.pid, True)

    def _placeholder(self, held: _Held, regs: ll.UserRegs, fds: tuple[int, ...]) -> None:
        """Make the skipped call open placeholders at the leader's numbers."""
        arch = held.raw.arch
        cloexec = any(info.cloexec for fd, info in self.monitor.fds.snapshot().items() if fd in fds)
        address = (regs.rsp - 1024) & ~0xF
        if arch == abi.I386_ARCH:
            address &= 0xFFFFFFFF
        flags = O_CLOEXEC if cloexec else 0
        raw = held.raw
        data = b"/dev/null\0" if len(fds) == 1 else b"\0" * 8
        if len(fds) == 1 and raw.name in _PATH_OPENS and self._resolvable(raw):
            # The same path as an O_PATH descriptor: no side effect (nothing is
            # read, no device opened), and fchdir or *at calls on it still work.
            path_index = _PATH_OPENS[raw.name]
            dirfd = raw.args[0] if raw.name == "openat" else AT_FDCWD & _MASK64
            original_flags = raw.args[path_index + 1]
            regs.orig_rax = _OPENAT[arch]
            args = [dirfd, raw.args[path_index], O_PATH | flags | (original_flags & (O_NOFOLLOW | O_DIRECTORY)), 0]
        elif len(fds) == 1:
            held.scratch = (address, ll.read_memory(self.pid, address, len(data)))
            ll.write_memory(self.pid, address, data)
            regs.orig_rax = _OPENAT[arch]
            args = [AT_FDCWD & _MASK64, address, O_RDWR | flags, 0]
        else:
            held.scratch = (address, ll.read_memory(self.pid, address, len(data)))
            ll.write_memory(self.pid, address, data)
            regs.orig_rax = _PIPE2[arch]
            args = [address, flags]
        names = ("rbx", "rcx", "rdx", "rsi") if arch == abi.I386_ARCH else ("rdi", "rsi", "rdx", "r10")
        for name, value in zip(names, args):
            setattr(regs, name, value & (0xFFFFFFFF if arch == abi.I386_ARCH else _MASK64))

    def _resolvable(self, raw: abi.RawCall) -> bool:
        """Whether this variant can open the leader's path itself (not under
        /proc, where a path names a process, and existing from here)."""
        path = raw.call.args[_PATH_OPENS[raw.name]]
        if not isinstance(path, str) or path.startswith("/proc"):
            return False
        if not path.startswith("/"):
            dirfd = raw.call.args[0] if raw.name == "openat" else AT_FDCWD
            base = f"/proc/{self.pid}/cwd" if dirfd == AT_FDCWD else f"/proc/{self.pid}/fd/{dirfd}"
            path = f"{base}/{path}"
        return os.path.lexists(path)

    def _finish_skip(self, held: _Held, rval: int) -> None:
        skip = held.skip
        assert skip is not None and self.reader is not None
        if skip.new_fds:
            got: tuple[int, ...] = (rval,)
        if held.scratch is not None:
            address, saved = held.scratch
            if len(skip.new_fds) == 2:
                pair = ll.read_memory(self.pid, address, 8)
                got = (int.from_bytes(pair[:4], "little", signed=True), int.from_bytes(pair[4:], "little", signed=True)) if rval == 0 else (rval,)
            ll.write_memory(self.pid, address, saved)
        if skip.new_fds and got != tuple(skip.new_fds):
            self._halt(Verdict(VerdictKind.PROTOCOL_ERROR, skip.seq, {self.index: held.raw.call},
                               detail=f"placeholder descriptor landed at {got}, the leader's is {skip.new_fds}"))
            return
        try:
            self.reader.write_outcome(held.raw, skip.outcome)
        except OSError as error:
            self._halt(Verdict(VerdictKind.OUTPUT_MISMATCH, skip.seq, {self.index: held.raw.call},
                               detail=f"cannot write the leader's output into this variant: {error.strerror}"))
            return
        regs = ll.get_regs(self.pid)
        regs.rax = skip.outcome.result & _MASK64
        ll.set_regs(self.pid, regs)
        ll.resume(self.pid, False)

    def _halt(self, verdict: Verdict) -> None:
        self._kill()
        if not self.finished:
            self.finished = True
            self._report(event="verdict", stop=codec.dumps(Stop("0", verdict)).hex(), stats=self._stats())

    def _kill(self) -> None:
        if self.alive:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, ll.WALL)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.alive = False

    def _stats(self) -> dict:
        routes = dict(self.monitor.routes)
        return {"stops": self.stats.stops, "executed": self.stats.executed,
                "skipped": self.stats.skipped, "routes": routes}


def monitor_main(launch: Launch, link_sock: socket.socket, report_fd: int) -> None:
    """Entry of a forked monitor process. Never returns."""
    status = 0
    try:
        MonitorProcess(launch, link_sock, report_fd).run()
    except BaseException as error:  # noqa: BLE001 - reported, then the process ends
        try:
            os.write(report_fd, (json.dumps({"event": "error", "message": f"{type(error).__name__}: {error}",
                                             "traceback": traceback.format_exc()}) + "\n").encode())
        except OSError:
            pass
        status = 70
    finally:
        os._exit(status)
