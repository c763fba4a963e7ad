"""The monitor process: its event loop, its timers and the actions it carries out.

One :class:`TracerProcess` per variant launches it (:mod:`.launch`) and then
waits, in one ``select``, for two things: stops of its traced processes
(:mod:`.stops`; a SIGCHLD wakes the loop through a pipe) and messages from
its CONNECTOR (:mod:`.routing`). It hands each to the process's core monitor
and carries out the actions the monitor returns (:meth:`carry_out`).

Time is the loop's: a wait the core asked for that lasts longer than the
stall timeout becomes ``stalled()``; a variant inside a long native call
sends heartbeats (every :data:`dmvx.actions.HEARTBEAT_EVERY`) so the others'
wait is not mistaken for a stall, and one the machine leaves without a CPU
says for how long (:mod:`.starvation`), which the others' waits do not
count; an open send batch goes out by its deadline (:mod:`.outbox`).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import time
import traceback

from dmvx.actions import (
    HEARTBEAT_EVERY,
    LEADER,
    Carrier,
    Deliver,
    Done,
    Execute,
    FollowerKilled,
    Halt,
    LeaderKilled,
    LeaderPid,
    Send,
    Skip,
    Wait,
)
from dmvx.codec import ProtocolError
from dmvx.messages import Ack, Entry, EntryBatch, EntryKind, Message, StarvedNote
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.ranahead import RanAhead
from dmvx.verdict import Verdict, lost, variant_name
from realmode import isolation, monitor_socket, reports
from realmode import ptrace_ll as ll
from realmode.inproc.area import Area
from realmode.inproc.path import InProcess
from realmode.pids import PidMap
from realmode.record import Recorder
from realmode.tracer import steering
from realmode.tracer.clocks import Clocks
from realmode.tracer.fdorder import FdOrder
from realmode.tracer.launch import Launch, spawn
from realmode.tracer.outbox import Outbox
from realmode.tracer.procs import Proc, Stage, Stats, Unsupported
from realmode.tracer.routing import Router
from realmode.tracer.signals import SignalPoints
from realmode.tracer.skipping import Skipping
from realmode.tracer.starvation import LATE_LIMIT, Starvation, birth, period
from realmode.tracer.stops import Stops
from realmode.tracer.tally import Tally
from realmode.tracer.threads import Threads

#: The heartbeat period in this loop's seconds.
_HEARTBEAT_S = HEARTBEAT_EVERY / 1e9
#: How often a process held while its leader's died of a signal looks for
#: that signal here (see :meth:`Router.on_peer_killed`).
_PEER_SIGNAL_POLL = 0.005


class TracerProcess:
    """The tracer of one variant: its processes, its link, its loop."""

    def __init__(self, launch: Launch, link_sock: socket.socket, report_fd: int, born: float | None = None) -> None:
        """``born``: when this monitor process was forked for the run
        (:func:`realmode.tracer.starvation.birth`); its wait for a CPU since
        then is in its first measure."""
        self.launch = launch
        self.link = link_sock
        self.report_fd = report_fd
        self.index = launch.index
        self.leader = launch.index == LEADER
        self.pids = PidMap()
        self.procs: dict[int, Proc] = {}
        self.streams: dict[str, Proc] = {}
        self.root: Proc | None = None
        self.inbox: dict[str, list] = {}
        #: Followers: the leader's pid of each stream's process (LeaderPid actions).
        self.announced: dict[str, int] = {}
        self.orphans: dict[int, int] = {}
        self.finished = False
        self.last_inbound = time.monotonic()
        self.last_heartbeat_in = self.last_inbound
        self.last_heartbeat = 0.0
        #: This variant's waits for a CPU, measured every ``starved_every``
        #: seconds, and those its peers reported (:mod:`.starvation`).
        self.starvation = Starvation(born=born is not None, now=self.last_inbound)
        self.starved_every = period(launch.stall_timeout, _HEARTBEAT_S)
        self.last_measure = born if born is not None else self.last_inbound
        #: Whose notes this monitor hears: the followers' (leader) or the leader's.
        self.peers = range(1, launch.n_variants) if self.leader else (LEADER,)
        self.stats = Stats()
        self.link_reader = monitor_socket.RecordReader()
        self.out = Outbox(link_sock, launch.flush_delay)
        self.batching = launch.policy.async_replication
        self.more_stops = False
        self.recorder = Recorder(launch.record, launch.index) if launch.record else None
        self.tally = Tally() if launch.summary else None
        #: The CPUs the run started with, before placement pins anything: what
        #: the variant's sched_getaffinity answers (realmode.abi).
        self.machine_cpus = frozenset(os.sched_getaffinity(0))
        self.router = Router(self)
        self.stops = Stops(self)
        self.skipping = Skipping(self)
        self.threads = Threads(self)
        self.fd_order = FdOrder(self)
        self.signal_points = SignalPoints(self)
        self.clocks = Clocks(self)
        #: Where a pid a call names lands, for the core (realmode.isolation).
        self.scope = isolation.ProcessScope(self.in_tree, os.getppid())

    def launch_variant(self) -> None:
        launch = self.launch
        area = Area(0 if self.leader else 1) if launch.preload is not None else None
        pid = spawn(launch, area.fd if area is not None else None)
        monitor: LeaderMonitor | FollowerMonitor
        if self.leader:
            monitor = LeaderMonitor(launch.policy, launch.n_variants, steer=True, reach=self.scope)
        else:
            monitor = FollowerMonitor(launch.policy, launch.index, launch.n_variants, steer=True, reach=self.scope)
        self.root = self.adopt(pid, monitor, "launch")
        if area is not None:
            self.root.fast = InProcess(self, self.root, area)
        self.carry_out(self.root, monitor.process_started(pid))
        ll.resume(pid, False)
        reports.write(self.report_fd, reports.Started(pid))

    def in_tree(self, pid: int) -> bool:
        """Whether canonical ``pid`` is one of this variant's processes: the
        leader's pids are its own; a follower's are the leader's announced ones."""
        return pid in self.procs if self.leader else pid in self.announced.values()

    def adopt(self, pid: int, monitor: LeaderMonitor | FollowerMonitor, phase: str) -> Proc:
        proc = Proc(pid, monitor, self.pids, phase, self.launch.compare_from == "entry", self.machine_cpus)
        proc.hands = Hands(self, proc)
        self.procs[pid] = proc
        self.streams[proc.stream] = proc
        self.stats.processes += 1
        return proc

    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # An interrupted run asks each monitor for its figures so far.
        signal.signal(reports.PROGRESS_SIGNAL, self._progress)
        self.launch_variant()
        watched: list[socket.socket | int] = [self.link, wake_r]
        try:
            while not self.finished:
                timeout = 0.0 if self.more_stops else self._timeout()
                if self.out.pending and self._anyone_waiting():
                    self.out.flush()
                readable, _, _ = select.select(watched, [], [], timeout)
                if wake_r in readable:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                try:
                    self.stops.reap()
                    if self.link in readable and not self.finished:
                        self._read_link()
                    if self.fd_order.parked and not self.finished:
                        self.fd_order.release()
                    self._tick_fast()
                    self._timers()
                except ll.PtraceError as error:
                    if error.errno != errno.ESRCH:
                        raise
                    # A process died under us (killed from outside, or by
                    # the orchestrator): its exit status is reaped next round.
                    continue
            self.out.flush()
        except Unsupported as problem:
            self._kill_all()
            reports.write(self.report_fd, reports.UnsupportedProgram(str(problem)))
        finally:
            self._kill_all()
            if self.recorder is not None:
                self.recorder.close()

    def _progress(self, *_: object) -> None:
        """The orchestrator asks for the figures so far (a run interrupted
        from outside), and kills this monitor next: the recorded calls go
        to the part file first (:meth:`Recorder.flush`)."""
        if self.recorder is not None:
            self.recorder.flush()
        reports.write(self.report_fd, reports.Progress(self._stats()))

    def _tick_fast(self) -> None:
        """Drain and feed the in-process paths (realmode.inproc.path)."""
        for proc in list(self.procs.values()):
            if proc.fast is not None and not self.finished:
                proc.fast.tick()

    def _anyone_waiting(self) -> bool:
        return any(proc.waiting_since is not None for proc in self.procs.values())

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = []
        running = False
        for proc in self.procs.values():
            if proc.waiting_since is not None:
                deadlines.append(self._stall_at(proc, now))
            if proc.held is not None and proc.held.stage in (Stage.RUNNING, Stage.SKIPPING) and proc.alive:
                running = True
            if proc.fast is not None and proc.fast.in_call():
                running = True
            if self._awaiting_peer_signal(proc):
                deadlines.append(now + _PEER_SIGNAL_POLL)
            if proc.absence_due:
                deadlines.append(now)
        if running:
            deadlines.append(self.last_heartbeat + _HEARTBEAT_S)
        deadlines.append(self.last_measure + self.starved_every)  # a note every period (_measure_starvation)
        if self.out.flush_at is not None:
            deadlines.append(self.out.flush_at)
        for proc in self.procs.values():
            if proc.fast is not None and proc.alive:
                deadlines.append(now + proc.fast.poll_interval())
        for deadline in (self.clocks.deadline(), self.fd_order.deadline()):
            if deadline is not None:
                deadlines.append(deadline)
        if not deadlines:
            return 1.0
        return max(0.0, min(deadlines) - now)

    @staticmethod
    def _awaiting_peer_signal(proc: Proc) -> bool:
        """Whether ``proc`` waits at a call while the leader's process has
        died of a signal: a signal that may yet come here too."""
        return bool(proc.peer_killed) and proc.alive and proc.held is not None and proc.held.stage is Stage.ENTRY

    def _wait_reference(self, proc: Proc) -> float:
        """Since when ``proc`` has waited without word from the others. A
        heartbeat (a peer inside a long native call) excuses the wait of a
        live process, not of one that has ended: no peer call can be owed
        to it, only the peer's own end -- so only word for its own stream
        counts then (the others' processes may talk on for long: a tree
        whose root was killed while its child serves)."""
        if not proc.alive:
            return max(proc.waiting_since or 0.0, proc.heard)
        return max(proc.waiting_since or 0.0, self.last_inbound, self.last_heartbeat_in)

    def _stall_at(self, proc: Proc, now: float) -> float:
        """When ``proc``'s wait becomes a stall (:mod:`.starvation`): the
        stall timeout after its reference, later by the time its peers
        reported they had no CPU meanwhile, and not while a peer's notes
        are overdue (that peer's monitor gets no CPU: the note it owes may
        excuse the wait) -- up to :data:`LATE_LIMIT` stall timeouts."""
        stall = self.launch.stall_timeout
        reference = self._wait_reference(proc)
        due = reference + stall
        if due > now:
            return due  # the peers' notes only ever put it later: read them once it has come
        due += self.starvation.excused(reference)
        if due > now:
            return due
        limit = reference + stall * LATE_LIMIT
        if now < limit and self.starvation.late(self.peers, now, 2 * self.starved_every):
            return min(limit, now + self.starved_every / 2)
        return due

    def _measure_starvation(self, now: float) -> None:
        """Tell the others how long this variant waited for a CPU since the
        last measure: every period, 0 too, so that a peer knows this
        monitor runs (:meth:`Starvation.late`)."""
        elapsed, self.last_measure = now - self.last_measure, now
        starved = self.starvation.measure([p.pid for p in self.procs.values() if p.alive], elapsed)
        # In the next batch: nobody waits for it as it would for a call.
        self.out.send(monitor_socket.BROADCAST if self.leader else LEADER, StarvedNote(starved), self.batching)

    def _timers(self) -> None:
        if self.finished:
            return
        now = time.monotonic()
        if self.out.flush_at is not None and now >= self.out.flush_at:
            self.out.flush()
        if self.clocks.parked:
            self.clocks.expire(now)
        if now - self.last_heartbeat >= _HEARTBEAT_S and any(
            (p.alive and p.held is not None and p.held.stage in (Stage.RUNNING, Stage.SKIPPING))
            or (p.fast is not None and p.fast.in_call())
            for p in self.procs.values()
        ):
            # Inside a native call (possibly a blocking one): tell the others.
            self.last_heartbeat = now
            self.out.send(monitor_socket.BROADCAST if self.leader else LEADER, None)
        if now - self.last_measure >= self.starved_every:
            self._measure_starvation(now)
        for proc in list(self.procs.values()):
            if self.finished:
                return
            if self._awaiting_peer_signal(proc):
                self.router.on_peer_killed(proc)
                if not self.leader and self._awaiting_peer_signal(proc):
                    proc.absence_due = proc.peer_killed
            if proc.absence_due and not self.finished:
                self.router.report_absence(proc)
            since = proc.waiting_since
            if since is not None and now >= self._stall_at(proc, now):
                proc.waiting_since = None
                verdict = self.fd_order.stalled(proc)
                if verdict is not None:
                    self.halt(verdict)
                else:
                    self.carry_out(proc, proc.monitor.stalled())

    def _read_link(self) -> None:
        try:
            records = monitor_socket.receive(self.link, self.link_reader)
        except (monitor_socket.SocketClosed, OSError):
            if not self.finished:
                self.halt(lost(self.index, f"the CONNECTOR of {variant_name(self.index)} went away"))
            return
        for _peer, payload in records:
            if self.finished:
                break
            try:
                message = monitor_socket.decode(payload)
            except ProtocolError as error:
                # A batch the CONNECTOR passed on unread (connector.FORWARDED):
                # the verdict it would have given, after every message before.
                self.halt(monitor_socket.bad_link(_peer, error))
                break
            if message is None:
                self.last_heartbeat_in = time.monotonic()
                continue
            if isinstance(message, StarvedNote):
                # Not word from the peer's program: it excuses the time the
                # peer had no CPU, not the wait so far.
                self.starvation.heard(_peer, message.ns, time.monotonic())
                continue
            self.last_inbound = time.monotonic()
            # A batch of the leader's entries is unpacked here: the core
            # takes them one by one, as if each had come on its own.
            batch: tuple[Message, ...] = message.entries if isinstance(message, EntryBatch) else (message,)
            if not self.leader and type(message) is EntryBatch:
                batch = batch[self.router.keep_entries(message) :]
            for one in batch:
                if self.finished:
                    break
                if not self.leader:
                    self.fd_order.heard(one)
                    if self.clocks.heard(one):
                        continue  # a clock reading: the tracer's, not a monitor's
                self.router.route(one)
        if not self.leader and not self.finished and records:
            # The entries routed above go into the in rings in one go (one
            # wake); a library waiting for its entry hears the leader lives.
            for proc in list(self.procs.values()):
                if proc.fast is not None:
                    proc.fast.leader_heard()
                    proc.fast.flush_backlog()

    def maybe_finish(self) -> None:
        if self.finished or any(p.alive or not p.done for p in self.procs.values()):
            return
        self.finished = True
        assert self.root is not None and self.root.status is not None  # done, so Done set its status
        self.out.flush()
        if self.recorder is not None:
            self.recorder.close()
        reports.write(self.report_fd, reports.Exited(self.root.status, self._stats()))

    def carry_out(self, proc: Proc, actions: list) -> None:
        """Carry out the actions ``proc``'s monitor returned (:class:`Hands`)."""
        hands = proc.hands
        assert hands is not None
        hands.carry_out(actions)

    def execute(self, proc: Proc, seq: int | None, expect: int | None = None) -> None:
        """Let the held call run natively; a follower's steered towards the
        leader's result ``expect`` (see :mod:`.steering`)."""
        proc.waiting_since = None
        held = proc.held
        if held is None or held.stage is not Stage.ENTRY:
            return
        if seq is None and self.clocks.answers(proc, held):
            return
        held.seq = seq
        held.to(Stage.RUNNING)
        if held.count is not None:
            Tally.released(held)
        self.stats.executed += 1
        if self.recorder is not None and proc is self.root:
            held.ran = time.perf_counter_ns()
        if not self.leader and (self.pids.active or seq is not None):
            steering.steer(proc, held, self.pids, expect)
        ll.resume(proc.pid, True)

    def halt(self, verdict: Verdict) -> None:
        self._kill_all()
        if not self.finished:
            self.finished = True
            self.out.flush()
            if self.recorder is not None:
                self.recorder.close()
            # The leader tells what it ran before the verdict (dmvx.ranahead).
            ran = self._ran_ahead() if self.leader else None
            reports.write(self.report_fd, reports.Halted(verdict, self._stats(), ran))

    def _kill_all(self) -> None:
        alive = [proc for proc in self.procs.values() if proc.alive]
        for proc in alive:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Threads first: the kernel reports a thread group's leader only once
        # the tracer has reaped every other thread of its group.
        for proc in sorted(alive, key=lambda p: p.group_leader):
            try:
                os.waitpid(proc.pid, ll.WALL)
            except ChildProcessError:
                pass
            proc.alive = False

    def _ran_ahead(self) -> RanAhead:
        return RanAhead.gather(
            (p.stream, p.monitor.unconfirmed()) for p in self.procs.values() if isinstance(p.monitor, LeaderMonitor)
        )

    def _stats(self) -> dict:
        routes: dict[str, int] = {}
        for proc in self.procs.values():
            for route, count in proc.monitor.routes.items():
                routes[route] = routes.get(route, 0) + count
        stats = {
            "stops": self.stats.stops,
            "executed": self.stats.executed,
            "skipped": self.stats.skipped,
            "processes": self.stats.processes,
            "routes": routes,
            **({"calls": self.tally.report()} if self.tally is not None else {}),
        }
        root = self.root
        if root is not None:
            stats["in_process"] = root.fast.summary() if root.fast is not None else {"path": "ptrace"}
        return stats


class Hands(Carrier):
    """What the tracer does with the actions of one process's monitor."""

    __slots__ = ("t", "proc")

    def __init__(self, tracer: TracerProcess, proc: Proc) -> None:
        self.t = tracer
        self.proc = proc

    def send(self, action: Send) -> None:
        # Entries of asynchronous calls and acknowledgements may wait for
        # company in the batch; anything somebody may be waiting for goes now.
        message = action.message
        batch = self.t.batching and (
            type(message) is Ack
            or (type(message) is Entry and message.kind in (EntryKind.FULL, EntryKind.DIGEST, EntryKind.PREDICTED))
        )
        self.t.out.send(action.to, message, batch)

    def send_entries(self, to: int, entries: list[Entry]) -> None:
        """Send the entries of a run of equal calls (the core's
        :meth:`~dmvx.monitor.LeaderMonitor.calls_replicated`: consecutive
        entries of one stream, of kinds :meth:`send` batches) in one go."""
        if self.t.batching:
            self.t.out.send_entries(to, entries)
        else:
            for entry in entries:
                self.t.out.send(to, entry, False)

    def execute(self, action: Execute) -> None:
        fast = self.proc.fast
        if fast is not None and fast.resume(action):
            return  # a call the in-process path ran, held by the core until now
        if not self.t.fd_order.holds(self.proc, action):
            self.t.execute(self.proc, action.seq, action.expect)

    def skip(self, action: Skip) -> None:
        if not self.t.fd_order.holds(self.proc, action):
            self.t.skipping.skip(self.proc, action)

    def wait(self, action: Wait) -> None:
        if self.proc.waiting_since is None:
            self.proc.waiting_since = time.monotonic()

    def halt(self, action: Halt) -> None:
        self.t.halt(self.t.threads.explain(self.proc, action.verdict))

    def done(self, action: Done) -> None:
        proc = self.proc
        proc.done = True
        proc.waiting_since = None
        proc.status = action.exit_status
        if proc.group_leader:
            self.t.threads.group_ended(proc)
        self.t.maybe_finish()

    def leader_pid(self, action: LeaderPid) -> None:
        self.t.router.on_leader_pid(self.proc, action.pid)

    def leader_killed(self, action: LeaderKilled) -> None:
        self.t.router.leader_killed(self.proc, action.signal)

    def follower_killed(self, action: FollowerKilled) -> None:
        self.t.router.leader_killed(self.proc, action.signal)

    def deliver_signal(self, action: Deliver) -> None:
        self.t.signal_points.deliver(self.proc, action)


def tracer_main(launch: Launch, link_sock: socket.socket, report_fd: int) -> None:
    """Entry of a forked monitor process. Never returns."""
    status = 0
    try:
        born = birth()  # before anything else: the clock tick's rounding aside, when the fork came
        isolation.shield()
        TracerProcess(launch, link_sock, report_fd, born).run()
    except BaseException as error:  # noqa: BLE001 - reported, then the process ends
        try:
            reports.write(report_fd, reports.MonitorFailed(f"{type(error).__name__}: {error}", traceback.format_exc()))
        except OSError:
            pass
        status = 70
    finally:
        os._exit(status)
