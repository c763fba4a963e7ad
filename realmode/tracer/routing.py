"""Message routing: each message from the CONNECTOR to its process's monitor.

Messages name their stream (one per traced process, see
:meth:`dmvx.monitor.LeaderMonitor.child`); this routes each to its process's
monitor and holds those that arrive before that process exists. It also
handles what only a tracer can: pid announcements (:mod:`realmode.pids`: the
leader announces each new process's pid on the child's stream; a follower
maps its own pids to the leader's), the leader's result notes for calls a
follower steers, and a leader's process killed by a signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dmvx.actions import EVERYONE
from dmvx.calls import KILLED, Call, Outcome
from dmvx.messages import Entry, EntryKind, Message, Stop
from dmvx.monitor import predicted_result
from realmode import ptrace_ll as ll
from realmode.tracer.procs import Proc, Stage
from realmode.tracer.signals import EINTR, pending
from realmode.tracer.steering import MASK64, STEERED, WRITES

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess

#: The pseudo-call of a pid announcement: the leader's pid of a stream's process.
PID_CALL = "<pid>"
#: The pseudo-call of a result note: what the leader's own run of a call
#: released by GO returned, for a follower that steers its run towards it.
RESULT_CALL = "<result>"


class Router:
    """Routes the messages a monitor process receives."""

    def __init__(self, tracer: "TracerProcess") -> None:
        self.t = tracer

    def announce(self, proc: Proc) -> None:
        """Tell the followers the leader's pid of ``proc`` (seq 0 on its stream)."""
        self.t.out.send(EVERYONE, Entry(proc.stream, 0, Call(PID_CALL, (proc.pid,)), EntryKind.RESULT, Outcome(proc.pid)))

    def route(self, message: Message) -> None:
        if isinstance(message, Stop):
            proc = self.t.streams.get(message.stream) or self.t.root
            if proc is not None:
                proc.monitor.message_received(message)
            self.t.halt(message.verdict)
            return
        stream = message.stream
        if isinstance(message, Entry) and message.call.name == PID_CALL and message.seq == 0:
            self._on_announce(stream, message.call.args[0])
            return
        if isinstance(message, Entry) and message.call.name == RESULT_CALL:
            self._on_note(stream, message.seq, message.call.args[0])
            return
        proc = self.t.streams.get(stream)
        if proc is None:
            self.t.inbox.setdefault(stream, []).append(message)
            return
        self.deliver(proc, message)

    def deliver(self, proc: Proc, message: Message) -> None:
        if isinstance(message, Entry) and message.call.name == KILLED and not self.t.leader:
            proc.peer_killed = message.call.args[0]
            self.on_peer_killed(proc)
        if isinstance(message, Entry) and message.kind is EntryKind.GO and message.call.name in STEERED \
                and not self.t.leader:
            self.t.noted.add((proc.stream, message.seq))
        if isinstance(message, Entry) and message.outcome is not None and not self.t.leader and (
                message.call.name in STEERED):
            self.t.peek[(proc.stream, message.seq)] = message.outcome.result
        elif isinstance(message, Entry) and message.kind is EntryKind.PREDICTED and message.call.name in WRITES \
                and not self.t.leader:
            predicted = predicted_result(message.call)
            if predicted is not None:
                self.t.peek[(proc.stream, message.seq)] = predicted
        self.t.carry_out(proc, proc.monitor.message_received(message))

    def on_peer_killed(self, proc: Proc) -> None:
        """The leader's process died of ``proc.peer_killed`` and this one is
        held at a call. If that signal is pending here too (sent alike, say
        by the parent's kill), let it land as it did there: the call returns
        EINTR without running and the signal is delivered on the way back.

        The signal need not be pending yet when the leader's death is heard:
        the sender here (this variant's parent, running its own ``kill``) may
        come later, so the loop asks again while the process waits
        (:meth:`TracerProcess._awaiting_peer_signal`)."""
        held = proc.held
        if held is None or held.stage not in (Stage.ENTRY, Stage.AWAIT_NOTE) or not proc.alive \
                or not pending(proc.pid, proc.peer_killed):
            return
        regs = ll.get_regs(proc.pid)
        regs.orig_rax = MASK64
        regs.rax = -EINTR & MASK64
        ll.set_regs(proc.pid, regs)
        proc.held = None
        proc.waiting_since = None
        ll.resume(proc.pid, False)

    def _on_note(self, stream: str, seq: int, result: int) -> None:
        self.t.peek[(stream, seq)] = result
        proc = self.t.streams.get(stream)
        held = proc.held if proc is not None else None
        if proc is not None and held is not None and held.stage is Stage.AWAIT_NOTE and held.seq == seq:
            held.to(Stage.ENTRY)
            self.t.execute(proc, seq)

    def _on_announce(self, stream: str, pid: int) -> None:
        self.t.announced[stream] = pid
        proc = self.t.streams.get(stream)
        if proc is not None:
            self.t.pids.add(proc.pid, pid)
        for parent in list(self.t.procs.values()):
            held = parent.held
            if held is not None and held.stage is Stage.AWAIT_PID and held.child is not None and held.child.stream == stream:
                self.t.stops.finish_fork(parent, held, pid)
