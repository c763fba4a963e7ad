"""Stop dispatch: what the tracer does at each stop of a traced process.

A seccomp stop is a call's entry (handed to the core); a syscall-exit stop
is the return of a call the tracer let run (handed back, steered where the
core asked, :mod:`.steering`); fork, exec and signal stops follow the
process tree: every new process gets its own core monitor, every exec hides
the vDSO (:mod:`.auxv`) and, for variants of different ABIs
(``compare_from="entry"``), plants an ``int3`` at ``AT_ENTRY`` so comparison
starts where the program itself begins, after each variant's own loader.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

from dmvx.calls import Outcome
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from realmode import abi
from realmode import ptrace_ll as ll
from realmode.abi import THREAD_EXIT
from realmode.pids import PID_RESULTS
from realmode.tracer import steering
from realmode.tracer.auxv import rewrite_auxv
from realmode.tracer.procs import CLONE_FILES, CLONE_THREAD, CLONE_UNTRACED, Held, Proc, Stage, Unsupported
from realmode.tracer.signals import EINTR, RESTART, ignored, restart_nr
from realmode.tracer.steering import MASK64
from realmode.tracer.tally import Tally
from realmode.tracer.tally import now as tally_clock

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess

_PROCESS_CREATORS = frozenset({"fork", "vfork", "clone", "clone3"})
#: Stops handled before the link is looked at again.
_STOPS_PER_ROUND = 16


class Stops:
    """Handles the stops of a monitor process's traced processes."""

    def __init__(self, tracer: TracerProcess) -> None:
        self.t = tracer
        #: The last round ended at its limit: stops may wait behind newer ones.
        self.cut = False

    def reap(self) -> None:
        """Handle the stops that are there. At most a round's worth: a tracee
        resumed on this CPU often reaches its next stop before the monitor
        asks again, and the link (a peer's verdict above all) must not wait
        behind a busy variant; the next round's select then does not block.

        With no stop there, the monitor gives its CPU up once before it goes
        to sleep in select: a variant resumed on this CPU that yields it back
        before its next stop (``sched_yield``, a sleep of no time) then
        reaches that stop meanwhile, without the trip through SIGCHLD, the
        wake-up pipe and select that a sleeping monitor takes.

        ``waitpid(-1)`` reports the newest tracee's stop first: while newer
        tracees stop faster than a round handles (a client's threads beside
        the server they talk to), an older one's stop waited unreported --
        memcached's main thread for over a second at a clock read, whose
        reading a follower's thread waits for, under load. So after a round
        that ended at its limit, the next one first asks each traced process,
        oldest first."""
        self.t.more_stops = False
        if self.cut:
            self.cut = False
            self._sweep()
        yielded = False
        for _ in range(_STOPS_PER_ROUND):
            if self.t.finished:
                return
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | ll.WALL)
            except ChildProcessError:
                return
            if pid == 0:
                if yielded:
                    return
                yielded = True
                os.sched_yield()
                continue
            proc = self.t.procs.get(pid)
            if proc is None:
                if os.WIFSTOPPED(status):
                    self.t.orphans[pid] = status  # a new child, reported before its parent's event
                continue
            self._on_status(proc, status)
        self.t.more_stops = True
        self.cut = True

    def _sweep(self) -> None:
        """Handle a stop of each traced process that has one, oldest first."""
        for proc in list(self.t.procs.values()):
            if self.t.finished:
                return
            if not proc.alive or self.t.procs.get(proc.pid) is not proc:
                continue
            try:
                pid, status = os.waitpid(proc.pid, os.WNOHANG | ll.WALL)
            except ChildProcessError:
                continue
            if pid:
                self._on_status(proc, status)

    def _on_status(self, proc: Proc, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self._on_end(proc, status)
            return
        if not os.WIFSTOPPED(status) or not proc.alive:
            return
        sig = os.WSTOPSIG(status)
        event = status >> 16
        if sig == signal.SIGTRAP | 0x80:
            info = ll.syscall_info(proc.pid)
            if info.op == ll.OP_EXIT:
                self._on_exit(proc, info.rval)
            else:
                self._on_plain_entry(proc, info)
        elif sig == signal.SIGTRAP and event == ll.PTRACE_EVENT_SECCOMP:
            self._on_entry(proc)
        elif sig == signal.SIGTRAP and event in (ll.PTRACE_EVENT_FORK, ll.PTRACE_EVENT_VFORK, ll.PTRACE_EVENT_CLONE):
            self._on_fork_event(proc)
        elif sig == signal.SIGTRAP and event == ll.PTRACE_EVENT_EXEC:
            self._on_exec(proc)
        elif sig == signal.SIGTRAP and event:
            self._resume(proc)
        else:
            self._on_signal(proc, sig)

    def _resume(self, proc: Proc, sig: int = 0) -> None:
        """Resume ``proc``, stopping at the next syscall too when a held call
        still has to return (or an interrupted one may restart)."""
        held = proc.held
        ll.resume(proc.pid, proc.passing or (held is not None and held.stage is not Stage.ENTRY), sig)

    def _on_plain_entry(self, proc: Proc, info: ll.SyscallStop) -> None:
        """A syscall-entry stop: only seen while a held call runs or restarts."""
        held = proc.held
        if held is not None and (held.restarting or held.continuing) and info.nr == held.raw.nr:
            # The interrupted call restarts (or the program, told EINTR by a
            # handler, makes it again): one call for the core; steer it again.
            held.restarting = False
            held.continuing = True
            steering.resteer(proc, held)
        elif held is not None and held.restarting and info.nr == restart_nr(info.arch):
            held.restarting = False
            held.continuing = True
        else:
            proc.passing = True  # a call of its own (a handler's, or a local one)
        self._resume(proc)

    def _on_entry(self, proc: Proc) -> None:
        tally = self.t.tally
        since = tally_clock() if tally is not None else 0
        info = ll.syscall_info(proc.pid)
        if proc.phase != "compare":
            ll.resume(proc.pid, False)  # the launcher's exec, or the loader of an ABI-diverse pair
            return
        held = proc.held
        proc.passing = False
        if held is not None:
            if held.continuing or (held.restarting and info.nr == held.raw.nr):
                held.restarting = False
                held.continuing = True
                ll.resume(proc.pid, True)
                return
            if held.restarting:
                # The interrupted call did not restart: the program got EINTR.
                proc.held = None
                self.t.carry_out(proc, proc.monitor.call_exited(Outcome(-EINTR)))
                if self.t.finished or not proc.alive:
                    return
        arch = abi.arch_of(info.arch)
        if arch is None:
            raise Unsupported(f"variant {self.t.index} made a system call of unknown architecture {info.arch:#x}")
        raw = proc.reader.call(arch, info.nr, info.args)
        flags = self._check_creator(proc, raw) if raw.name in _PROCESS_CREATORS else 0
        if raw.name in THREAD_EXIT:
            proc.own_exit = True
        if proc.fast is not None:
            if proc.fast.run_ahead(raw):
                return  # a leader's asynchronous call: it runs now, the core hears of it in order
            if not proc.fast.before_stop():
                return  # the core holds a call of the in-process path: this one waits
            proc.fast.release_signals()  # held while fast calls ran: placed at this call
            if self.t.finished or not proc.alive:
                return
        self.t.stats.stops += 1
        held = proc.held = Held(raw, clone_flags=flags)
        if self.t.recorder is not None and proc is self.t.root:
            held.entered = self.t.recorder.entered()
        monitor = proc.monitor
        before = monitor.seq
        actions = monitor.call_entered(raw.call) if tally is None else tally.enter(monitor, held, since)
        if monitor.seq != before:
            held.compared = monitor.seq
        if proc.fast is not None:
            proc.fast.entered(raw)  # before the actions: a skipped call resumes the process at once
        self.t.carry_out(proc, actions)

    #: Taken up again by the in-process path once its held call is released.
    on_seccomp_entry = _on_entry

    def _check_creator(self, proc: Proc, raw: abi.RawCall) -> int:
        """The clone flags of a process-creating call (0 for fork and vfork);
        an untraced child is refused."""
        flags = 0
        if raw.name == "clone":
            flags = raw.args[0]
        elif raw.name == "clone3" and raw.args[0]:
            flags = int.from_bytes(ll.read_memory(proc.pid, raw.args[0], 8), "little")
        if flags & CLONE_UNTRACED:
            raise Unsupported(
                f"{self.t.launch.argv[0]} asked for an untraced child ({raw.kernel_name} with CLONE_UNTRACED)"
            )
        return flags

    def _on_exit(self, proc: Proc, rval: int) -> None:
        held = proc.held
        if proc.passing:
            proc.passing = False
            self._resume(proc)
            return
        if held is None or held.stage is Stage.ENTRY:
            ll.resume(proc.pid, False)
            return
        if held.stage is Stage.SIGNALLED:
            self.t.signal_points.at_exit(proc, held, rval)
            return
        if rval in RESTART and held.fake is None:
            held.restarting = True
            held.interrupted = rval
            held.continuing = False
            ll.resume(proc.pid, True)
            return
        held.continuing = False
        if held.stage is Stage.SKIPPING:
            proc.held = None
            self.t.skipping.finish_skip(proc, held, rval)
            return
        if self.t.leader:
            held.child = None
            self._complete(proc, held, rval)
            return
        steered = steering.after_steering(proc, held, rval)
        if steered is None:
            return  # the steered call goes on
        if held.child is not None and steered > 0:
            virtual = self.t.announced.get(held.child.stream)
            if virtual is None:
                held.to(Stage.AWAIT_PID)  # stays stopped until the leader says
                proc.waiting_since = time.monotonic()
                return
            self.finish_fork(proc, held, virtual)
            return
        if steered > 0 and held.raw.name in PID_RESULTS:
            steered = self.t.pids.virtual(steered)
        if steered != rval or held.restore:
            self._set_result(proc, held, steered)
        self._complete(proc, held, steered)

    def _complete(self, proc: Proc, held: Held, rval: int) -> None:
        proc.held = None
        outcome = proc.reader.outcome(held.raw, rval)
        if held.ahead and proc.fast is not None:
            proc.fast.came_back(outcome)
            if proc.alive and not self.t.finished:
                ll.resume(proc.pid, False, held.inject)
            return
        if self.t.recorder is not None and proc is self.t.root:
            self.t.recorder.call(held.raw.call, outcome, held.entered, held.ran)
        monitor = proc.monitor
        self.t.carry_out(
            proc, monitor.call_exited(outcome) if held.count is None else Tally.exited(held, monitor, outcome, rval)
        )
        if proc.fast is not None:
            proc.fast.exited()
        if proc.alive and not self.t.finished:
            ll.resume(proc.pid, False, held.inject)

    def finish_fork(self, proc: Proc, held: Held, virtual: int) -> None:
        self._set_result(proc, held, virtual)
        held.child = None
        self._complete(proc, held, virtual)

    def _set_result(self, proc: Proc, held: Held, value: int) -> None:
        regs = ll.get_regs(proc.pid)
        regs.rax = value & MASK64
        if held.restore:
            for name, original in held.restore.items():
                setattr(regs, name, original)
            held.restore = None
        ll.set_regs(proc.pid, regs)

    def _on_fork_event(self, proc: Proc) -> None:
        """A new process or thread: its own monitor and stream. A thread
        (``CLONE_THREAD``) joins its parent's thread group; a child made with
        ``CLONE_FILES`` shares its parent's descriptor table (and epoll
        data), anything else gets a copy."""
        child_pid = ll.event_message(proc.pid)
        flags = proc.held.clone_flags if proc.held is not None else 0
        shared = bool(flags & CLONE_FILES)
        monitor = proc.monitor.child(share_fds=shared)
        assert isinstance(monitor, (LeaderMonitor, FollowerMonitor))  # as its parent's
        child = self.t.adopt(child_pid, monitor, proc.phase)
        child.fresh = True
        if flags & CLONE_THREAD:
            child.tgid = proc.tgid
        child.reader.epoll = proc.reader.epoll if shared else proc.reader.epoll.copy()
        if proc.held is not None:
            proc.held.child = child
        self.t.carry_out(child, child.monitor.process_started(child_pid))
        for message in self.t.inbox.pop(child.stream, []):
            self.t.router.deliver(child, message)
        status = self.t.orphans.pop(child_pid, None)
        if status is not None:
            self._on_status(child, status)
        ll.resume(proc.pid, True)

    def _on_exec(self, proc: Proc) -> None:
        former = ll.event_message(proc.pid)
        if former != proc.pid and former in self.t.procs:
            proc = self.t.threads.exec_by_thread(proc, self.t.procs[former])
        if proc.fast is not None:
            proc.fast.exec_event()
        entry = rewrite_auxv(proc.pid)
        if self.t.launch.compare_from == "entry" and entry:
            original = ll.read_memory(proc.pid, entry, 8)
            ll.poke_word(proc.pid, entry, b"\xcc" + original[1:])
            proc.breakpoint = (entry, original)
            proc.phase = "loader"
        else:
            proc.phase = "compare"
        self._resume(proc)

    def _on_signal(self, proc: Proc, sig: int) -> None:
        if proc.fresh and sig == signal.SIGSTOP:
            proc.fresh = False
            ll.resume(proc.pid, False)
            return
        if sig == signal.SIGTRAP and proc.breakpoint is not None:
            regs = ll.get_regs(proc.pid)
            address, original = proc.breakpoint
            if (regs.rip - 1) & MASK64 == address:
                ll.poke_word(proc.pid, address, original)
                regs.rip = address
                ll.set_regs(proc.pid, regs)
                proc.breakpoint = None
                proc.phase = "compare"  # the program itself starts here
                ll.resume(proc.pid, False)
                return
        if sig == proc.drop_signal or ignored(proc.pid, sig):
            proc.drop_signal = 0 if sig == proc.drop_signal else proc.drop_signal
            sig = 0
        else:
            sig = self.t.signal_points.at_delivery(proc, sig)
            if self.t.finished or not proc.alive:
                return
        self._resume(proc, sig)

    def _on_end(self, proc: Proc, status: int) -> None:
        proc.alive = False
        proc.held = None
        proc.waiting_since = None
        if not proc.group_leader and not proc.own_exit:
            self.t.threads.taken_along(proc)
            return
        if proc.fast is not None and not proc.fast.before_end(status):
            return  # its last in-process calls first: ended when the core releases them
        if self.t.recorder is not None and proc is self.t.root and not self.t.finished:
            if os.WIFEXITED(status):
                self.t.recorder.exited(os.WEXITSTATUS(status))
            else:
                self.t.recorder.killed(os.WTERMSIG(status))
        if not proc.done and not self.t.finished:
            if os.WIFEXITED(status):
                self.t.carry_out(proc, proc.monitor.process_exited(os.WEXITSTATUS(status)))
            else:
                self.t.carry_out(proc, proc.monitor.process_killed(os.WTERMSIG(status)))
        self.t.maybe_finish()

    #: Taken up again by the in-process path once the process's last calls are in.
    on_end = _on_end
