"""Message routing: each message from the CONNECTOR to its process's monitor.

Messages name their stream (one per traced process, see
:meth:`dmvx.monitor.LeaderMonitor.child`); this routes each to its process's
monitor and holds those that arrive before that process exists. It also
carries out the pid mapping the core asks for (a follower's monitor answers
the leader's :class:`~dmvx.messages.PidNote` with a
:class:`~dmvx.actions.LeaderPid` action, :mod:`realmode.pids`), and lets a
leader's fatal signal land here too where it is pending (the core's
:class:`~dmvx.actions.LeaderKilled` action).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from dmvx.messages import Entry, EntryBatch, Message, Stop
from dmvx.monitor import FollowerMonitor
from realmode import ptrace_ll as ll
from realmode.tracer.procs import Proc, Stage
from realmode.tracer.signals import EINTR, TIMER_SIGNALS, absent, caught, pending
from realmode.tracer.steering import MASK64
from realmode.tracer.tally import timed

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess


class Router:
    """Routes the messages a monitor process receives."""

    def __init__(self, tracer: TracerProcess) -> None:
        self.t = tracer

    def route(self, message: Message) -> None:
        if isinstance(message, Stop):
            proc = self.t.streams.get(message.stream) or self.t.root
            if proc is not None:
                proc.monitor.message_received(message)
            self.t.halt(self.t.threads.explain(proc, message.verdict))
            return
        stream = message.stream
        proc = self.t.streams.get(stream)
        if proc is None:
            self.t.inbox.setdefault(stream, []).append(message)
            return
        self.deliver(proc, message)

    def keep_entries(self, batch: EntryBatch) -> int:
        """A follower's batch of the leader's entries: its first entries for
        calls the stream's process has not reached yet go to its core in one
        step (:meth:`~dmvx.monitor.FollowerMonitor.entries_kept`) and, on the
        in-process path, to its in ring (:meth:`InProcess.feed_entries`).
        How many were taken; the rest are routed one by one. The descriptor
        order (:mod:`.fdorder`) hears each entry taken that may be one of
        its points (a call that changes the descriptor table, or reads or
        writes an ``eventfd`` threads share), in the batch's order, as it
        hears each entry routed: a server's request has two (``accept4``,
        ``close``), and its batches were routed one entry at a time from the
        first of them on."""
        proc = self.t.streams.get(batch.stream)
        monitor = proc.monitor if proc is not None else None
        if not isinstance(monitor, FollowerMonitor):
            return 0
        entries = batch.entries
        taken = monitor.entries_kept(entries)
        if not taken:
            return 0
        kept = entries[:taken] if taken < len(entries) else entries
        fd_order = self.t.fd_order
        orders = fd_order.orders
        for entry in kept:
            if orders(entry):
                fd_order.heard(entry)  # (an entry that is no point is not heard: no-op)
        self.t.clocks.heard(kept[-1])
        assert proc is not None
        proc.heard = time.monotonic()
        if proc.fast is not None:
            proc.fast.feed_entries(kept)
        return taken

    def deliver(self, proc: Proc, message: Message) -> None:
        proc.heard = time.monotonic()
        self.t.carry_out(proc, timed(proc.held, proc.monitor.message_received, message))
        if proc.fast is not None and not self.t.leader and isinstance(message, Entry):
            proc.fast.feed(message)

    def leader_killed(self, proc: Proc, signal: int) -> None:
        """The core says the leader's process of ``proc``'s stream died of
        ``signal`` (:class:`~dmvx.actions.LeaderKilled`), or in the leader, a
        follower's did (:class:`~dmvx.actions.FollowerKilled`)."""
        proc.peer_killed = signal
        proc.absence_due = signal
        self.on_peer_killed(proc)

    def report_absence(self, proc: Proc) -> None:
        """After a :class:`~dmvx.actions.FollowerKilled` (in the leader) or
        a :class:`~dmvx.actions.LeaderKilled` (in a follower): tell the core
        when the peer's fatal signal is neither pending nor done in ``proc``
        (:func:`.signals.absent`). The mode says what it sees; the core
        decides what that means (``signal_absent``: a SIGKILL not here was
        never sent here, and the verdict comes at once instead of at the
        stall). Once per ask in the leader (its core asks again at each
        held call); in a follower also while it is held waiting for the
        signal (:meth:`TracerProcess._awaiting_peer_signal`), as it may
        reach the leader's end's number only later."""
        sig, proc.absence_due = proc.absence_due, 0
        if proc.alive and proc.hands is not None and absent(proc.pid, sig):
            self.t.carry_out(proc, proc.monitor.signal_absent(sig))

    def on_peer_killed(self, proc: Proc) -> None:
        """The leader's process died of ``proc.peer_killed`` and this one is
        held at a call. If that signal is pending here too (sent alike, say
        by the parent's kill), let it land as it did there: the call returns
        EINTR without running and the signal is delivered on the way back.

        A timer's signal (:data:`TIMER_SIGNALS`) is sent here: the timer ran
        in the leader only.

        The signal need not be pending yet when the leader's death is heard:
        the sender here (this variant's parent, running its own ``kill``) may
        come later, so the loop asks again while the process waits
        (:meth:`TracerProcess._awaiting_peer_signal`)."""
        held = proc.held
        if held is None or held.stage is not Stage.ENTRY or not proc.alive:
            return
        sig = proc.peer_killed
        if (
            not self.t.leader
            and sig in TIMER_SIGNALS
            and not proc.timer_signal_sent
            and not pending(proc.pid, sig)
            and not caught(proc.pid, sig)
        ):
            # A timer runs in the leader only (alarm, setitimer and
            # timer_settime are the leader's calls), so its signal never
            # comes here by itself: with no handler it ended the leader's
            # process, and it ends this one where this one waits.
            proc.timer_signal_sent = True
            os.kill(proc.pid, sig)
        if not pending(proc.pid, sig):
            return
        if self.t.leader and caught(proc.pid, proc.peer_killed):
            return  # a handler here would run where the follower's process died: the stall decides
        regs = ll.get_regs(proc.pid)
        regs.orig_rax = MASK64
        regs.rax = -EINTR & MASK64
        ll.set_regs(proc.pid, regs)
        proc.held = None
        proc.waiting_since = None
        ll.resume(proc.pid, False)

    def on_leader_pid(self, proc: Proc, pid: int) -> None:
        """The leader's process of ``proc``'s stream is ``pid``: map ours to it,
        and finish the fork of a parent that waits to return it."""
        stream = proc.stream
        self.t.announced[stream] = pid
        self.t.pids.add(proc.pid, pid)
        for parent in list(self.t.procs.values()):
            held = parent.held
            if (
                held is not None
                and held.stage is Stage.AWAIT_PID
                and held.child is not None
                and held.child.stream == stream
            ):
                self.t.stops.finish_fork(parent, held, pid)
