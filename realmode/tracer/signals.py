"""Signals as the tracer sees them, and where it delivers them.

A signal the process ignores (by disposition, or by default like
``SIGCHLD``) is dropped at its delivery stop, as the kernel would have
dropped it untraced; a call it interrupted restarts and is reported once
with its final result (:data:`RESTART`, :func:`restart_nr`).

An asynchronous signal with a handler (:func:`asynchronous`) goes to the
process's core monitor, which decides where every variant takes it
(:mod:`dmvx.signals`); :class:`SignalPoints` carries that out: it holds the
signal back, lets it through, or ends a held call with it
(:class:`~dmvx.actions.Deliver`).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from dmvx import syscalls
from dmvx.actions import Deliver
from dmvx.calls import Call
from dmvx.monitor import WRITES
from dmvx.signals import ERESTARTNOINTR, RESTART
from realmode import abi
from realmode import ptrace_ll as ll
from realmode.tracer.procs import Held, Proc, Stage
from realmode.tracer.steering import EPIPE, MASK64

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess

EINTR = 4
#: The send calls that raise SIGPIPE with EPIPE unless their flags (this
#: argument) say MSG_NOSIGNAL; every call in WRITES always does.
_SEND_FLAGS = {"sendto": 3, "sendmsg": 2}
MSG_NOSIGNAL = 0x4000
#: Signals whose default action is to do nothing.
_DEFAULT_IGNORED = frozenset({signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH})
#: Signals the kernel raises for the instruction a process runs (with a
#: positive ``si_code``): they come at the same place in every variant.
_FAULTS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP, signal.SIGSYS})
#: ``si_code`` of a signal a process sent: SI_USER (kill), SI_QUEUE, SI_TKILL.
_SENT = frozenset({0, -1, -6})
_MASK_KEYS = frozenset({b"SigPnd", b"ShdPnd", b"SigBlk", b"SigIgn", b"SigCgt"})


def restart_nr(audit_arch: int) -> int:
    arch = abi.arch_of(audit_arch)
    nr = syscalls.number("restart_syscall", arch) if arch is not None else None
    return nr if nr is not None else -1


def raised_sigpipe(call: Call, result: int) -> bool:
    """Whether the kernel sends SIGPIPE along with ``result`` of ``call``: a
    write to a pipe or socket whose reader is gone."""
    if result != -EPIPE:
        return False
    if call.name in WRITES:
        return True
    index = _SEND_FLAGS.get(call.name)
    flags = call.args[index] if index is not None and len(call.args) > index else None
    return isinstance(flags, int) and not flags & MSG_NOSIGNAL


def _signal_masks(pid: int) -> dict[bytes, int]:
    """The signal masks of /proc/<pid>/status (SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(b":")
        if key in _MASK_KEYS:
            out[key] = int(value.strip(), 16)
    return out


#: The kernel's task flag of a process on its way out (include/linux/sched.h).
_PF_EXITING = 0x4

#: The signals of the timers a process arms with alarm and setitimer (and,
#: by default, timer_create): SIGALRM, SIGVTALRM, SIGPROF.
TIMER_SIGNALS = frozenset({signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF})


def pending(pid: int, sig: int) -> bool:
    masks = _signal_masks(pid)
    bit = 1 << (sig - 1)
    return bool((masks.get(b"SigPnd", 0) | masks.get(b"ShdPnd", 0)) & bit) and not masks.get(b"SigBlk", 0) & bit


def absent(pid: int, sig: int) -> bool:
    """Whether ``sig`` is neither pending in ``pid`` (for the thread or its
    group) nor done with it: the process is there, no zombie, and not
    exiting (``PF_EXITING``, /proc/<pid>/stat's flags: a fatal signal
    already taken off the pending set while the process dies of it). What
    that means is the core's to say (:data:`dmvx.signals.SIGKILL`)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 7 or fields[0] in (b"Z", b"X", b"x") or int(fields[6]) & _PF_EXITING:
        return False
    masks = _signal_masks(pid)
    if not masks:
        return False
    return not (masks.get(b"SigPnd", 0) | masks.get(b"ShdPnd", 0)) & 1 << (sig - 1)


def ignored(pid: int, sig: int) -> bool:
    """Whether ``pid`` ignores ``sig`` (SIG_IGN, or SIG_DFL with a default of
    nothing): the kernel drops such signals for untraced processes."""
    if not 0 < sig < 65:
        return False
    fields = _signal_masks(pid)
    bit = 1 << (sig - 1)
    ignored, caught, blocked = fields.get(b"SigIgn", 0), fields.get(b"SigCgt", 0), fields.get(b"SigBlk", 0)
    if blocked & bit:
        return False
    return bool(ignored & bit) or (sig in _DEFAULT_IGNORED and not caught & bit)


def blocked(pid: int, sig: int) -> bool:
    """Whether ``pid`` blocks ``sig`` now."""
    return 0 < sig < 65 and bool(_signal_masks(pid).get(b"SigBlk", 0) & 1 << (sig - 1))


def caught(pid: int, sig: int) -> bool:
    """Whether ``pid`` has a handler for ``sig``."""
    return 0 < sig < 65 and bool(_signal_masks(pid).get(b"SigCgt", 0) & 1 << (sig - 1))


def asynchronous(proc: Proc, sig: int) -> bool:
    """Whether ``sig``, at ``proc``'s delivery stop, is a signal the monitors
    place (:mod:`dmvx.signals`): one with a handler that came from outside
    the process (another process's kill, a child's end, a timer). A fault
    of its own, a signal it sent itself and SIGPIPE (its own write's, or
    the one the tracer gives a follower's skipped write) already come at
    the same place in every variant, and go through as they come."""
    if sig == signal.SIGPIPE or not caught(proc.pid, sig):
        return False
    info = ll.siginfo(proc.pid)
    if sig in _FAULTS and info.code > 0:
        return False
    return not (info.code in _SENT and info.sender == proc.tgid)


class SignalPoints:
    """Carries out where the core places asynchronous signals."""

    def __init__(self, tracer: TracerProcess) -> None:
        self.t = tracer
        #: The process stopped at the delivery stop being decided, and
        #: whether its monitor let the signal through there.
        self._at: Proc | None = None
        self._through = False

    def at_delivery(self, proc: Proc, sig: int) -> int:
        """``proc`` is stopped to receive ``sig``: the signal to resume it
        with (0 when it is held back, or dropped)."""
        if proc.released.get(sig):
            proc.released[sig] -= 1
            held = proc.held
            if held is not None and held.stage is Stage.SIGNALLED and held.restarting:
                # Interrupted by the signal sent to end it: over once the
                # signal is in, whatever the kernel does with it.
                self._end(proc, held)
            return sig
        if not asynchronous(proc, sig):
            return sig
        held = proc.held
        fast = proc.fast
        if fast is not None and (held is None or held.ahead):
            regs = ll.get_regs(proc.pid)
            if fast.hold_signal(sig, regs):
                # Between calls, or in a call run ahead of the core: the core
                # may not have heard of every call before it (fast calls in the
                # ring, calls run ahead), so the signal goes to it at the next
                # stop, the ring drained (InProcess.hold_signal).
                ll.set_regs(proc.pid, regs)
                return 0
        interrupted = held.interrupted if held is not None and held.restarting else None
        self._at, self._through = proc, False
        try:
            self.t.carry_out(proc, proc.monitor.signal_arrived(sig, interrupted))
        finally:
            self._at = None
        if fast is not None:
            fast.core_took_signal()
        return sig if self._through else 0

    def deliver(self, proc: Proc, action: Deliver) -> None:
        """End ``proc``'s held call with ``action.signal`` (see
        :class:`~dmvx.actions.Deliver`)."""
        if proc is self._at:
            # The leader's call the signal interrupted: it goes through here;
            # a restart after the handler is a call of its own.
            self._through = True
            proc.held = None
            return
        held = proc.held
        if held is None or not proc.alive:
            return
        proc.waiting_since = None
        held.ending = action
        if held.stage is Stage.ENTRY:
            held.to(Stage.SIGNALLED)
            if action.rerun:
                self._release(proc, action.signal)  # pending: the call ends at once, as the leader's did
            else:
                regs = ll.get_regs(proc.pid)
                regs.orig_rax = MASK64  # it does not run
                ll.set_regs(proc.pid, regs)
            ll.resume(proc.pid, True)
        elif held.stage is Stage.RUNNING:
            # Released with the leader's and running (synchronous calls every
            # variant runs): the signal interrupts it as it did the leader's.
            held.to(Stage.SIGNALLED)
            self._release(proc, action.signal)

    def at_exit(self, proc: Proc, held: Held, rval: int) -> None:
        """The exit stop of a call a signal ends: it returns the leader's
        "interrupted" result as the signal comes in, and the kernel restarts
        it after the handler or makes it return EINTR, as in the leader."""
        action = held.ending
        assert action is not None  # set with Stage.SIGNALLED
        regs = ll.get_regs(proc.pid)
        if action.result == ERESTARTNOINTR or blocked(proc.pid, action.signal):
            # Made again after the handler whatever it says; or, the signal
            # blocked here, at once (no handler runs, and the kernel passes
            # an "interrupted" result on only with a signal to deliver).
            # Back to the call instruction, as the kernel restarts a call.
            regs.orig_rax = MASK64
            regs.rax = held.raw.nr
            regs.rip = (regs.rip - 2) & MASK64
        elif rval in RESTART or regs.orig_rax == MASK64:
            regs.rax = action.result & MASK64
            regs.orig_rax = held.raw.nr
        self._end(proc, held, regs)
        if action.rerun or proc.released.get(action.signal):
            ll.resume(proc.pid, False)  # sent before it ran
        else:
            proc.released[action.signal] = proc.released.get(action.signal, 0) + 1
            ll.resume(proc.pid, False, action.signal)  # delivered as it returns

    def _end(self, proc: Proc, held: Held, regs: ll.UserRegs | None = None) -> None:
        """The held call is over: the registers a follower steered by are
        put back (a restart runs the program's own call)."""
        proc.held = None
        if held.restore or regs is not None:
            regs = regs if regs is not None else ll.get_regs(proc.pid)
            for name, original in (held.restore or {}).items():
                setattr(regs, name, original)
            held.restore = None
            ll.set_regs(proc.pid, regs)

    @staticmethod
    def _release(proc: Proc, sig: int) -> None:
        """Send ``sig`` to ``proc`` (that thread), to be let through at its delivery stop."""
        proc.released[sig] = proc.released.get(sig, 0) + 1
        ll.tgkill(proc.tgid, proc.pid, sig)
