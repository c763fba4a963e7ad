"""The simulation: the core's monitors driven by SimPy in virtual time.

This is the timed sibling of :mod:`dmvx.replay`. Each variant is a SimPy
process that feeds its :class:`~dmvx.monitor.LeaderMonitor` or
:class:`~dmvx.monitor.FollowerMonitor` the calls of its workload and carries
out the actions that come back; every decision (route, compare, replicate,
verdict) is the core's. What this module adds is *time*: what a call, an
interception, a comparison, a CONNECTOR and a link cost, from the cost
profile and the topology.

How a million calls fit in a few seconds
----------------------------------------
A SimPy event per call would cap the simulation near 150,000 calls a second
before any MVX work is done. So a variant runs its calls in a tight loop on
a *local clock*, ahead of ``env.now``, and hands control back to SimPy only
when it must wait (for a message, a connection) or when its clock passes a
**lookahead horizon**: the earliest event SimPy has scheduled plus the least
time any message can take to reach the variant (the CONNECTOR's fixed costs
plus the propagation delay of the shortest path from any sender). Nobody else
can act before that event, so nothing can arrive before the horizon that has
not been sent already; what has been sent sits in the variant's inbox with
its delivery time, and the variant sees every message at the first call
boundary after it arrives -- as an in-process monitor does. Scheduling a
wake-up for another process lowers the running one's horizon
(:meth:`Simulation.scheduled`).

Messages are not SimPy events either. A CONNECTOR (one per host) batches
what its variants post while it is busy, as a real one draining its CB would,
and the arrival of each batch is computed when it is sent, through the links
of :mod:`sim.network` and the receiving CONNECTOR. A variant blocked in a
wait is woken by one SimPy timeout at the delivery time.

A loop of one call (a microbenchmark) goes further: the leader takes the
calls that follow as one core event
(:meth:`~dmvx.monitor.LeaderMonitor.calls_replicated`: their entries and the
buffer's accounting at once) and posts their entries batch by batch
(:meth:`Connector.post_run`), for as long as no call inside the run could
have stopped the call-by-call loop: not past the horizon, the next arrival
or the attack point, nor past where a batch sent meanwhile could wake a
sleeping variant and so pull the horizon in (:meth:`Variant._run_length`).
The times, counts and results are those of the calls taken one by one.

Times are integer nanoseconds, so a run is the same to the bit every time.

Real mode's in-process path
---------------------------
A profile with a ``dipmon`` section (``dmvx calibrate`` measures one) prices
real mode's in-process DIP-MON under asynchronous replication: a call the
library wraps that the broker routes to the leader asynchronously
(``replicate``/``predict``) costs the program the wrapper alone
(``dipmon.call``), not an interception. The leader's record goes into a ring
its monitor drains *beside* the program, on a clock of its own
(``Variant.monitor_t``): ``dipmon.drain`` a record, its hand-over to the
CONNECTOR included (records go in runs and batches of hundreds there, so the
CONNECTORs and the follower's link are priced per entry by the path's own
costs: :meth:`sim.profile.CostProfile.handover`), and the CONNECTOR sends
the entry from that time on; the program waits
only when the ring (``dipmon.ring`` bytes) holds records not drained yet --
or, as ever, when the core holds a call because the CB is full. A follower's
wrapper takes the entry as soon as its monitor has it; checking the
follower's own record is monitor work beside the program
(``dipmon.follow``). That work is counted in ``monitor_busy``, which the
calibration check puts on the monitor's CPU. The path takes a run of equal
records (a loop's) as one event: a record unlike the one before (a
server's) is a run of one and costs each process its ``*_run`` cost on top
(the leader's joins the run when it comes while the monitor has the one
before still to drain), and the bytes a record carries cost each process
its ``*_per_byte``.
"""

from __future__ import annotations

import gc
import heapq
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy
from simpy.events import ProcessGenerator

from dmvx.actions import EVERYONE, HEARTBEAT_EVERY, LEADER, Carrier, Done, Execute, Halt, Send, Skip, Wait
from dmvx.calls import Call, Outcome
from dmvx.messages import Entry, Message
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Policy, Route
from dmvx.protocol import FRAME_OVERHEAD
from dmvx.verdict import Verdict
from sim.network import LinkPath, Network
from sim.profile import CostProfile
from sim.workload import IO_ACCEPT, IO_RESPOND, IO_RESPOND_LAST, IO_WAIT_CONNECTION, Repeat, WorkloadStep

#: Bytes a record takes in the in-process path's ring besides its data
#: (realmode/native/dipmon.h: REC_HEAD, one region head).
RECORD_BYTES = 96

INF = 1 << 62


class Clock(simpy.Environment):
    """SimPy's environment, its time in integer nanoseconds: the engine only
    ever waits integer delays from time 0, so ``now`` stays an int (SimPy
    itself allows floats too)."""

    @property
    def now(self) -> int:
        return self._now  # type: ignore[return-value]  # an int, as said above


# Variant states.
READY = 0  # between calls: the next step comes next
AT_CALL = 1  # stopped at a call, waiting for the monitor's Execute or Skip
FINISHING = 2  # the process ended; waiting for the monitors to agree (Done)
ENDED = 3  # Done or halted

# Resolutions of a stopped call.
NONE, EXECUTE, SKIP = 0, 1, 2


# ---------------------------------------------------------------------------
# Results of one run (raw; sim.results turns them into reports)
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class VariantStats:
    index: int
    host: str
    arch: str
    entered: int = 0
    executed: int = 0
    skipped: int = 0
    end_time: int = 0
    ended_by: str = ""  # "done", "halt" (any verdict, stalls included), "starved"
    exit_status: int | None = None
    routes: dict[str, int] = field(default_factory=dict)
    entered_at_verdict: int | None = None
    entered_at_attack: int | None = None
    wait_time: int = 0  # time spent blocked on the monitor
    io_wait_time: int = 0  # time spent blocked for a client (a server waiting for a connection)
    reads: int = 0  # deliveries taken from the CONNECTOR (each a read of the link)
    #: The monitor's work beside the program, not on its clock: the records
    #: of real mode's in-process path (profile.dipmon) it drains and checks.
    monitor_busy: int = 0
    #: The leader's records appended to its ring on that path, and their
    #: bytes (how many the ring holds ahead of the monitor).
    ring_records: int = 0
    ring_bytes: int = 0
    samples_t: array = field(default_factory=lambda: array("q"))
    samples_seq: array = field(default_factory=lambda: array("q"))

    @property
    def busy_time(self) -> int:
        """How long this variant -- its program and its monitor -- kept a CPU
        busy: its run less its waits (a variant starts at time 0)."""
        return max(self.end_time - self.wait_time - self.io_wait_time, 0)


@dataclass
class HarmfulCall:
    variant: int
    call: str
    what: str
    time: int


@dataclass
class RunOutcome:
    """Everything one simulated run observed."""

    makespan: int
    variants: list[VariantStats]
    verdict: Verdict | None = None
    verdict_time: int | None = None
    verdict_by: int | None = None
    attack_time: int | None = None
    harmful: list[HarmfulCall] = field(default_factory=list)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    connectors: dict[str, dict[str, int]] = field(default_factory=dict)
    cb: dict[str, float] = field(default_factory=dict)
    leader_times: array = field(default_factory=lambda: array("q"))
    lost_messages: int = 0
    requests_done: int = 0
    latencies: list[int] = field(default_factory=list)
    first_request: int | None = None
    last_response: int | None = None
    ended_by_starvation: bool = False


# ---------------------------------------------------------------------------
# CONNECTORs
# ---------------------------------------------------------------------------


class Connector:
    """The CONNECTOR of one host: batches what its monitors post into sends,
    and receives batches. Sending is one FIFO server; receiving is one per
    peer connection (the CONNECTOR serves whichever is readable)."""

    __slots__ = (
        "sim",
        "host",
        "free_at",
        "rfree",
        "open",
        "open_count",
        "open_bytes",
        "open_start",
        "batches",
        "messages",
        "bytes",
        "received_batches",
        "received_messages",
        "received_bytes",
        "paths",
        "peers",
        "busy",
        "runs",
        "_costs",
        "_deliver_along",
    )

    def __init__(self, sim: Simulation, host: str) -> None:
        self.sim = sim
        self.host = host
        self.free_at = -INF
        #: When receiving on each incoming connection is done (keyed by peer):
        #: a CONNECTOR serves its connections as they become readable.
        self.rfree: dict[str, int] = {}
        self.paths: dict[int, LinkPath] = {}
        #: Per destination variant: the variant, the connection to it and
        #: its host's CONNECTOR (:meth:`peer`).
        self.peers: dict[int, tuple[Variant, LinkPath, Connector]] = {}
        self.open: dict[int, list] = {}  # destination variant -> [messages, bytes]
        self.open_count = 0
        self.open_bytes = 0
        self.open_start = 0
        self.batches = 0
        self.messages = 0
        self.bytes = 0
        self.received_batches = 0
        self.received_messages = 0
        self.received_bytes = 0
        #: CPU time spent sending and receiving (ns): what this CONNECTOR
        #: takes from the CPU it shares (:func:`sim.results.cpu_demand`).
        self.busy = 0
        #: In-process path: per destination, the runs of equal entries
        #: begun in its open batch (each costs dipmon.send_run/receive_run).
        self.runs: dict[int, int] = {}
        #: What :meth:`emit` reads of the simulation at every batch, read once.
        self._costs = (
            sim.send_fixed,
            sim.send_per_message,
            sim.send_per_byte,
            sim.receive_fixed,
            sim.receive_per_message,
            sim.receive_per_byte,
            sim.connector_receive_wakeup,
            sim.send_run,
            sim.receive_run,
        )
        self._deliver_along = sim.network.deliver_along

    def post(self, dest: int, message: Message, size: int, t: int) -> None:
        """A monitor on this host sends ``message`` to variant ``dest`` at ``t``."""
        sim = self.sim
        count = self.open_count
        if count and (
            self.open_start <= t or count >= sim.max_batch_messages or self.open_bytes >= sim.max_batch_bytes
        ):
            self.emit()
            count = 0
        if not count:
            # An idle CONNECTOR sleeps and must be woken; a busy one finds the
            # entry when it comes back to the CB.
            self.open_start = self.free_at if self.free_at >= t else t + sim.connector_wakeup
        size += FRAME_OVERHEAD
        slot = self.open.get(dest)
        if slot is None:
            self.open[dest] = [[message], size]
        else:
            slot[0].append(message)
            slot[1] += size
        self.open_count += 1
        self.open_bytes += size

    def post_run(self, dest: int, entries: list, size: int, t: int, period: int) -> None:
        """:meth:`post` of each of ``entries`` (``size`` bytes each) to variant
        ``dest``, the first at ``t``, the others ``period`` apart: those
        posted while the CONNECTOR is still busy with its open batch, below
        its limits, join it together; each other one is :meth:`post`'s: the
        CONNECTOR takes the open batch (:meth:`send`), and the entry starts
        the next.

        Written out with the open batch in locals: a leader's run posts a
        batch every two calls or so, and this loop is where its batches are
        formed and sent."""
        open_ = self.open
        if self.open_count and (len(open_) != 1 or dest not in open_):
            # Another destination's batch is open (never with the single
            # destination a run has): one by one.
            for entry in entries:
                self.post(dest, entry, size, t)
                t += period
            return
        sim = self.sim
        framed = size + FRAME_OVERHEAD
        n = len(entries)
        max_messages, max_bytes = sim.max_batch_messages, sim.max_batch_bytes
        wakeup = sim.connector_wakeup
        count = self.open_count
        nbytes = self.open_bytes
        start = self.open_start
        #: The open batch's messages from before the run, if any; the run's
        #: are ``entries[first:index]``.
        before = open_.pop(dest)[0] if count else None
        free_at = self.free_at
        first = index = 0
        while index < n:
            if count:
                if start > t:
                    joins = min(
                        n - index,
                        -(-(start - t) // period),
                        max_messages - count,
                        -(-(max_bytes - nbytes) // framed),
                    )
                    if joins > 0:
                        index += joins
                        t += period * joins
                        count += joins
                        nbytes += framed * joins
                        continue
                # The CONNECTOR has taken the open batch by ``t``, or it is full.
                batch = entries[first:index] if before is None else before + entries[first:index]
                free_at = self.send(dest, batch, count, nbytes, start)
                before = None
            start = free_at if free_at >= t else t + wakeup
            first = index
            count = 1
            nbytes = framed
            index += 1
            t += period
        self.free_at = free_at
        if count:
            open_[dest] = [entries[first:index] if before is None else before + entries[first:index], nbytes]
        self.open_count = count
        self.open_bytes = nbytes
        self.open_start = start

    def emit_taken(self, t: int) -> None:
        """Send the open batch if the CONNECTOR has taken it by ``t``.

        A batch it will take later may still grow, and nobody can need it
        before the variant that asks resumes at ``t``.
        """
        if self.open_count and self.open_start <= t:
            self.emit()

    def emit(self) -> None:
        """The CONNECTOR takes the open batch: one send per destination."""
        if not self.open_count:
            return
        start = self.open_start
        batch = self.open
        for dest, (messages, nbytes) in batch.items():
            start = self.send(dest, messages, len(messages), nbytes, start)
        self.free_at = start
        batch.clear()
        self.open_count = 0
        self.open_bytes = 0

    def send(self, dest: int, messages: list, count: int, nbytes: int, start: int) -> int:
        """Send ``count`` messages of ``nbytes`` to variant ``dest``, the
        CONNECTOR starting on them at ``start``; when it is done with them.

        The send goes through the links to the destination host, through
        that host's CONNECTOR (per peer connection, sleeping in epoll when
        idle) and into the destination variant's inbox. This runs for every
        batch, so :meth:`receive` and :meth:`Variant.deliver` are inlined.
        """
        (
            send_fixed,
            send_per_message,
            send_per_byte,
            receive_fixed,
            receive_per_message,
            receive_per_byte,
            wakeup,
            send_run,
            receive_run,
        ) = self._costs
        runs = self.runs.pop(dest, 0) if self.runs else 0
        work = send_fixed + send_per_message * count + send_run * runs + int(send_per_byte * nbytes)
        start += work
        self.busy += work
        self.bytes += nbytes
        self.batches += 1
        self.messages += count
        target, path, receiver = self.peers.get(dest) or self.peer(dest)
        arrival = self._deliver_along(path, nbytes, start, path)
        if arrival is None:
            self.sim.outcome.lost_messages += count
            return start
        host = self.host
        rfree = receiver.rfree
        free = rfree.get(host, -INF)
        begin = free if free >= arrival else arrival + wakeup
        done = begin + receive_fixed + receive_per_message * count + receive_run * runs + int(receive_per_byte * nbytes)
        receiver.busy += done - begin
        rfree[host] = done
        receiver.received_batches += 1
        receiver.received_messages += count
        receiver.received_bytes += nbytes
        sim = self.sim
        sim.order += 1
        heapq.heappush(target.inbox, (done, sim.order, messages))
        if target.blocked:
            target.poke(done)
        return start

    def peer(self, dest: int) -> tuple[Variant, LinkPath, Connector]:
        """Where a send to variant ``dest`` goes: the variant, the connection
        to it (:meth:`path_to`) and the CONNECTOR of its host."""
        peer = self.peers.get(dest)
        if peer is None:
            target = self.sim.variants[dest]
            peer = self.peers[dest] = (target, self.path_to(dest), self.sim.connectors[target.host])
        return peer

    def path_to(self, dest: int) -> LinkPath:
        """The connection to variant ``dest``: a :class:`LinkPath` of its own
        (even when two peers share a host), so it is the flow's identity."""
        path = self.paths.get(dest)
        if path is None:
            network = self.sim.network
            target = self.sim.variants[dest].host
            path = self.paths[dest] = LinkPath(
                self.host, target, network.path(self.host, target).hops, network.min_latency(self.host, target)
            )
        return path

    def receive(self, peer: str, arrival: int, count: int, nbytes: int) -> int:
        """A batch from ``peer`` reached this host at ``arrival``; when it is
        handed to the monitor."""
        sim = self.sim
        free = self.rfree.get(peer, -INF)
        start = free if free >= arrival else arrival + sim.connector_receive_wakeup
        done = start + sim.receive_fixed + sim.receive_per_message * count + int(sim.receive_per_byte * nbytes)
        self.busy += done - start
        self.rfree[peer] = done
        self.received_batches += 1
        self.received_messages += count
        self.received_bytes += nbytes
        return done

    def stats(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "messages": self.messages,
            "bytes": self.bytes,
            "received_batches": self.received_batches,
            "received_messages": self.received_messages,
            "received_bytes": self.received_bytes,
            "busy_ns": self.busy,
        }


# ---------------------------------------------------------------------------
# The server's host side: connections from the client
# ---------------------------------------------------------------------------


class Connection:
    __slots__ = ("number", "started", "done")

    def __init__(self, number: int, started: int, done: simpy.Event) -> None:
        self.number = number
        self.started = started
        self.done = done


class ServerSocket:
    """The listening socket of the server, on the I/O owner's host."""

    def __init__(self, sim: Simulation, host: str, client: str) -> None:
        self.sim = sim
        self.host = host
        self.client = client
        self.ready: list[tuple[int, int, Connection]] = []  # heap: (ready time, number, connection)
        self.owner: _Proc | None = None

    def push(self, ready: int, connection: Connection) -> None:
        heapq.heappush(self.ready, (ready, connection.number, connection))
        if self.owner is not None:
            self.owner.poke(ready)

    def respond(self, connection: Connection, nbytes: int, t: int, last: bool) -> None:
        sim = self.sim
        delivery = sim.network.transmit(self.host, self.client, nbytes, t)
        if not last or delivery.arrival is None:
            return
        done = connection.done
        timer = sim.env.timeout(max(0, delivery.arrival - sim.env.now))

        def release(_event: simpy.Event) -> None:
            if not done.triggered:
                done.succeed()

        timer.callbacks.append(release)
        sim.scheduled(delivery.arrival)


# ---------------------------------------------------------------------------
# Variant processes
# ---------------------------------------------------------------------------


class _Proc:
    """What a monitored variant and a native run share: a clock, an inbox, a
    way to block and be woken, and the server-side I/O."""

    __slots__ = (
        "sim",
        "env",
        "index",
        "host",
        "steps",
        "t",
        "window",
        "inbox",
        "blocked",
        "wake_at",
        "wake_event",
        "socket",
        "connection",
        "state",
        "horizon",
    )

    def __init__(self, sim: Simulation, index: int, host: str, steps: Iterator[WorkloadStep]) -> None:
        self.sim = sim
        self.env = sim.env
        self.index = index
        self.host = host
        self.steps = steps
        self.t = 0
        self.window = 1
        self.inbox: list[tuple[int, int, list]] = []
        self.blocked = False
        self.wake_at = INF
        self.wake_event: simpy.Event | None = None
        self.socket: ServerSocket | None = None
        self.connection: Connection | None = None
        self.state = READY
        #: How far the clock may run before handing control back to SimPy.
        self.horizon = 0

    def next_horizon(self) -> int:
        """The lookahead bound from now: nothing else can act before the
        earliest scheduled event, and what it sends takes ``window`` to get here."""
        env = self.env
        earliest = env.peek()
        if earliest == simpy.core.Infinity or earliest < env.now:
            earliest = env.now
        return int(earliest) + self.window

    def poke(self, when: int) -> None:
        """Something for this process arrives at ``when``: wake it then if it sleeps."""
        if not self.blocked or when >= self.wake_at:
            return
        self.wake_at = when
        at = when + self.sim.wakeup if when >= self.t else self.t
        env = self.env
        timer = env.timeout(at - env.now if at > env.now else 0)
        timer.callbacks.append(self._wake)
        self.sim.scheduled(at)

    def _wake(self, _event: simpy.Event) -> None:
        event = self.wake_event
        if event is not None and not event.triggered:
            event.succeed()

    def _sleep(self) -> simpy.Event:
        self.blocked = True
        self.wake_at = INF
        self.wake_event = event = self.env.event()
        if self.inbox:
            self.poke(self.inbox[0][0])
        return event

    def _io_ready(self, t: int, horizon: int) -> int | None:
        """For a step waiting for a connection: the time it is ready if that
        is known by ``horizon``, else None (the process must sleep)."""
        ready = self.socket.ready  # type: ignore[union-attr]
        if ready:
            when = ready[0][0]
            if when <= t:
                return t
            if when <= horizon:
                return when + self.sim.wakeup
        return None

    def _do_io(self, step: WorkloadStep, t: int) -> None:
        io = step.io
        socket = self.socket
        assert socket is not None
        if io == IO_ACCEPT:
            if socket.ready:
                self.connection = heapq.heappop(socket.ready)[2]
                if self.sim.outcome.first_request is None:
                    self.sim.outcome.first_request = self.connection.started
        elif io in (IO_RESPOND, IO_RESPOND_LAST) and self.connection is not None:
            socket.respond(self.connection, step.io_bytes, t, io == IO_RESPOND_LAST)

    def run(self) -> ProcessGenerator:
        """The SimPy process of this program, from its first step to its end."""
        raise NotImplementedError


class Variant(_Proc, Carrier):
    """One monitored variant: its workload, its monitor, its clock."""

    __slots__ = (
        "monitor",
        "interception",
        "stats",
        "res",
        "step",
        "awaiting",
        "monitor_wait",
        "block_since",
        "sample_every",
        "is_leader",
        "io_owner",
        "heard_until",
        "fast",
        "monitor_t",
        "ring",
        "last_record",
    )

    def __init__(
        self,
        sim: Simulation,
        index: int,
        host: str,
        arch: str,
        steps: Iterator[WorkloadStep],
        monitor: LeaderMonitor | FollowerMonitor,
        interception: dict[Route, int],
        sample_every: int,
    ) -> None:
        super().__init__(sim, index, host, steps)
        self.monitor = monitor
        self.interception = interception
        self.stats = VariantStats(index, host, arch)
        self.res = NONE
        self.step: WorkloadStep | None = None
        self.awaiting: tuple[int, ...] = ()
        self.monitor_wait = False
        self.block_since = 0
        #: The end of this variant's last native call long enough for its
        #: monitor to send heartbeats through it (:data:`HEARTBEAT_EVERY`).
        self.heard_until = 0
        self.sample_every = sample_every
        self.is_leader = index == 0
        self.io_owner = False
        #: The held step is a call of the in-process path (profile.dipmon).
        self.fast = False
        #: In-process path: the leader's monitor's clock (it drains the ring
        #: beside the program), and the records in the ring not yet drained
        #: (when each will be, its bytes).
        self.monitor_t = 0
        self.ring: deque[tuple[int, int]] = deque()
        #: In-process path: the step of this variant's last record, while
        #: the next may join its run (None after a stopped call).
        self.last_record: WorkloadStep | None = None

    # -- actions ----------------------------------------------------------------

    def apply(self, actions: list) -> None:
        """Carry out a monitor's actions at the variant's clock ``self.t``
        (:meth:`~dmvx.actions.Carrier.carry_out`; :meth:`run` does the common
        one-action answers inline)."""
        self.carry_out(actions)

    def execute(self, action: Execute) -> None:
        self.res = EXECUTE

    def skip(self, action: Skip) -> None:
        self.res = SKIP

    def wait(self, action: Wait) -> None:
        self.awaiting = action.awaiting

    def halt(self, action: Halt) -> None:
        self._end("halt")
        self.sim.on_halt(self, action.verdict)

    def done(self, action: Done) -> None:
        self.stats.exit_status = action.exit_status
        self._end("done")

    def send(self, action: Send) -> None:
        sim = self.sim
        message = action.message
        size = message.size
        t = self.t
        connector = sim.connectors[self.host]
        if action.to == EVERYONE:
            for dest in sim.others[self.index]:
                connector.post(dest, message, size, t)
        else:
            connector.post(action.to, message, size, t)
        self.t = t + sim.cb_append + int(sim.copy_per_byte * size)

    def _end(self, how: str) -> None:
        if self.state is ENDED:
            return
        self.state = ENDED
        self.stats.ended_by = how
        self.stats.end_time = self.t
        self.sim.connectors[self.host].emit()
        self.sim.variant_ended(self)

    def _run_length(self, t: int, period: int, to_post: int, entered: int, ahead: int) -> int:
        """How many more calls of the step the leader just ran it may take as
        one run (:meth:`LeaderMonitor.calls_replicated`), from ``t`` on, each
        ``period`` long with its entry posted to the single other variant
        ``to_post`` in: 0 if none. ``ahead`` is how many of the step come
        next; the core may take fewer (a connector buffer that fills).

        The call-by-call loop stops after the call that ends at or past the
        horizon, the next arrival or the attack point; so does a run, and
        none of its calls but the last may end there. Its entries are
        posted in order (:meth:`Connector.post_run`), and a batch sent
        meanwhile may wake a variant asleep, which moves the horizon
        (:meth:`Simulation.scheduled`) -- to no earlier than the batch's
        start plus the path's propagation delay, the wake-up, and the
        window; or, where the sleeper's clock is behind that, its clock plus
        the window. A run ends there too, so no call inside it could have
        stopped the loop."""
        if ahead <= 0 or period <= 0:
            return 0
        sim = self.sim
        connector = sim.connectors[self.host]
        dest = sim.others[self.index][0]
        target, path, _ = connector.peers.get(dest) or connector.peer(dest)
        horizon = self.horizon
        if target.blocked:
            # The earliest batch the run may send starts at the open batch's
            # start, or at the run's first post.
            start = t + to_post
            if connector.open_count and connector.open_start < start:
                start = connector.open_start
            woken = start + path.latency + sim.wakeup
            if target.t < woken:
                woken = target.t
            if woken + self.window < horizon:
                horizon = woken + self.window
        if horizon <= t:
            return 0
        most = min(ahead, -(-(horizon - t) // period))  # the call ending at or past it is the last
        if self.inbox:
            most = min(most, -(-(self.inbox[0][0] - t) // period))
        if sim.attack_at > entered:
            most = min(most, sim.attack_at - entered)
        return most if most > 0 else 0

    def deliver(self, when: int, messages: list) -> None:
        sim = self.sim
        sim.order += 1
        heapq.heappush(self.inbox, (when, sim.order, messages))
        if self.blocked:
            self.poke(when)

    def on_stall(self) -> None:
        """The watchdog found this variant waiting longer than the stall timeout."""
        self.t = max(self.t, self.env.now)
        self.apply(self.monitor.stalled())
        if self.state is not ENDED:
            return
        self._wake(None)  # type: ignore[arg-type]

    # -- the process ---------------------------------------------------------------

    def run(self) -> ProcessGenerator:
        # The hot loop. ``t`` is the variant's clock and the counters are
        # locals; they are written back to ``self`` / ``self.stats`` only
        # where other code may read them: around :meth:`apply` (which stamps
        # sends with ``self.t`` and may end the run), the simulation's
        # callbacks, and every yield. Reading the inbox and the common
        # one-action answers (Execute, Skip, Wait, one Send) are handled
        # inline: at a million calls a run, every avoided method call shows.
        env = self.env
        sim = self.sim
        mon = self.monitor
        call_entered = mon.call_entered
        call_exited = mon.call_exited
        received = mon.message_received
        per_read, per_message = sim.monitor_receive, sim.monitor_receive_per_message
        heappop = heapq.heappop
        interception = self.interception
        inbox = self.inbox
        stats = self.stats
        steps = self.steps
        apply = self.apply
        is_leader = self.is_leader
        record_time = sim.outcome.leader_times.append
        samples_t = stats.samples_t
        samples_seq = stats.samples_seq
        connector = sim.connectors[self.host]
        post = connector.post
        others = sim.others[self.index]
        compare = sim.compare
        copy_per_byte = sim.copy_per_byte
        cb_append = sim.cb_append
        sync_compare = compare * (sim.n_variants - 1)
        sample_every = self.sample_every
        attack_at = sim.attack_at
        io_owner = self.io_owner
        LOCAL = Route.LOCAL
        # Real mode's in-process path: a wrapped call the broker routes
        # asynchronously to the leader costs the program the wrapper; the
        # monitor's work on it runs beside the program (module docstring).
        dipmon = sim.dipmon
        fast_calls = dipmon.calls if dipmon is not None else frozenset()
        drain_per_byte = copy_per_byte if dipmon is None or dipmon.drain_per_byte is None else dipmon.drain_per_byte
        fast_routes = (Route.REPLICATE, Route.PREDICT)
        ring = self.ring
        ring_bytes = sum(nbytes for _, nbytes in ring)
        fast = False
        # The core's one-step paths of this variant's monitor (the other one
        # is never called: ``is_leader`` picks).
        replicated = mon.call_replicated if isinstance(mon, LeaderMonitor) else _no_replicated
        skipped_call = mon.call_skipped if isinstance(mon, FollowerMonitor) else _no_skipped
        kept = mon.entries_kept if isinstance(mon, FollowerMonitor) else None
        skipped_on = mon.call_skipped_on if isinstance(mon, FollowerMonitor) else _no_skipped_on
        wakeup = sim.wakeup
        # Runs of equal calls (the leader's, :meth:`_run_length`): a stream
        # that can tell how many of one step come next (sim.workload.Repeat),
        # and a single destination for the entries.
        ahead = steps.ahead if isinstance(steps, Repeat) else None
        drop = steps.drop if isinstance(steps, Repeat) else _no_drop
        single = others[0] if len(others) == 1 else None
        replicated_run = mon.calls_replicated if isinstance(mon, LeaderMonitor) else _no_replicated_run
        leader_times = sim.outcome.leader_times
        one_step_step: WorkloadStep | None = None
        #: The core's one-step path has just refused the pending step and no
        #: message has reached the monitor since: it would refuse it again.
        refused = False
        one_step = False
        #: A step taken from ``steps`` by the loop of one-step calls and not
        #: entered there: the next one (``has_pending``: None is a step too, the end).
        pending: WorkloadStep | None = None
        has_pending = False
        entered = executed = skipped = 0
        t = self.t = env.now
        sim.running = self
        self.horizon = self.next_horizon()
        while True:
            if inbox and inbox[0][0] <= t:
                # Hand the monitor every message that has arrived by ``t``: one
                # read of the CONNECTOR per delivery, then each message.
                stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                drained = False
                while inbox and inbox[0][0] <= t:
                    t += per_read
                    stats.reads += 1
                    refused = False
                    messages = heappop(inbox)[2]
                    if kept is not None and self.state is not ENDED:
                        # Entries for calls not reached yet, in one core call.
                        taken = kept(messages)
                        if taken:
                            t += per_message * taken
                            messages = messages[taken:]
                    for message in messages:
                        if self.state is ENDED:
                            drained = True
                            break
                        t += per_message
                        actions = received(message)
                        if actions:
                            # The entry a held call waited for, most often:
                            # one Skip or Execute resolves it (apply's common
                            # cases, inline, as after call_entered below).
                            kind = type(actions[0]) if len(actions) == 1 else None
                            if kind is Skip:
                                self.res = SKIP
                            elif kind is Execute:
                                self.res = EXECUTE
                            else:
                                self.t = t
                                apply(actions)
                                t = self.t
                    # (A break here rather than in the loop's condition: mypyc
                    # 2.4 emits a jump to no label for the latter in a generator.)
                    if drained:
                        break
                self.t = t
            state = self.state
            if state is ENDED:
                break
            if state is READY:
                if has_pending:
                    step, pending, has_pending = pending, None, False
                else:
                    step = next(steps, None)
                end = step.end if step is not None else None
                if step is None or end is not None:
                    self.state = FINISHING
                    self.res = NONE
                    self.t = t
                    stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                    if end is not None and end[0] == "killed":
                        apply(mon.process_killed(end[1]))
                    else:
                        apply(mon.process_exited(end[1] if end is not None else 0))
                    t = self.t
                    continue
                if entered == attack_at:
                    self.t = t
                    stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                    sim.on_attack_point(self, attack_at)
                entered += 1
                if step is not one_step_step:
                    # Whether this step may take the core's one-step path:
                    # nothing happens between its entry and its exit (no
                    # server I/O to wait for, nothing harmful to record), and
                    # it is priced as an interception (no in-process path).
                    one_step_step = step
                    one_step = dipmon is None and not step.harmful and not (io_owner and step.io)
                if one_step:
                    # The core's one-step paths, and a tight loop over the
                    # calls that follow while they are the same step, nothing
                    # has arrived, the horizon and the attack point are not
                    # reached and the core keeps taking them so: the loop of
                    # a microbenchmark, priced as the general path below
                    # prices each call.
                    call = step.call
                    assert call is not None  # a step without an end is a call
                    outcome = step.outcome
                    took = held = False
                    again, refused = refused, False
                    if is_leader:
                        entry = None if again else replicated(call, outcome)
                        if entry is not None:
                            took = True
                            # call_entered + Execute + call_exited + Send(EVERYONE, entry).
                            decision = mon.last_decision
                            assert decision is not None
                            enter_ns = step.gap + interception[decision.route] + step.args_ns
                            native = step.native
                            heartbeat = native >= HEARTBEAT_EVERY
                            size = entry.size
                            # A call of this step takes ``period`` from its
                            # start; its entry is posted ``to_post`` in.
                            to_post = enter_ns + native
                            period = to_post + cb_append + int(copy_per_byte * size) + step.read_ns
                            while True:
                                t += enter_ns
                                record_time(t)
                                t += native
                                if heartbeat:
                                    self.heard_until = t
                                executed += 1
                                for dest in others:
                                    post(dest, entry, size, t)
                                t += period - to_post
                                if t >= self.horizon or (inbox and inbox[0][0] <= t) or entered == attack_at:
                                    break
                                if ahead is not None and single is not None:
                                    # The calls that follow, as one core event
                                    # while nothing else can happen in between
                                    # (_run_length says how many may).
                                    most = self._run_length(t, period, to_post, entered, ahead(step))
                                    run = replicated_run(call, outcome, most) if most else None
                                    # (Fewer than ``most``, or none, when the connector
                                    # buffer fills: the next call finds it full below.)
                                    if run:
                                        count = len(run)
                                        if mon.last_decision is not decision:
                                            raise AssertionError("sim: a call's decision changed in a loop")
                                        drop(count)
                                        start = t + enter_ns
                                        leader_times.extend(range(start, start + count * period, period))
                                        connector.post_run(single, run, size, start + native, period)
                                        t += count * period
                                        if heartbeat:
                                            self.heard_until = t - period + to_post
                                        executed += count
                                        entered += count
                                        if t >= self.horizon or (inbox and inbox[0][0] <= t) or entered == attack_at:
                                            break
                                following = next(steps, None)
                                if following is not step:
                                    pending, has_pending = following, True
                                    break
                                entry = replicated(call, outcome)
                                if entry is None or mon.last_decision is not decision:
                                    pending, has_pending, refused = step, True, entry is None
                                    if entry is not None:  # a new decision: priced by the general path
                                        raise AssertionError("sim: a call's decision changed in a loop")
                                    break
                                entered += 1
                    else:
                        acks = None if again else skipped_call(call)
                        delivered = None
                        if acks is None and inbox and inbox[0][0] <= self.horizon:
                            # Caught up with its leader: the entry is not here
                            # yet, and the next delivery brings it first.
                            delivered = inbox[0][2]
                            acks = skipped_on(call, delivered)
                        if acks is not None:
                            took = True
                            # call_entered + Skip (+ Send(LEADER, ack)).
                            decision = mon.last_decision
                            assert decision is not None
                            enter_ns = (
                                step.gap + interception[decision.route] + compare + step.compare_ns + step.args_ns
                            )
                            copy_ns = step.copy_ns
                            while True:
                                t += enter_ns
                                if mon.seq % sample_every == 0:
                                    samples_t.append(t)
                                    samples_seq.append(mon.seq)
                                if delivered is None:
                                    for message in acks:
                                        size = message.size
                                        post(LEADER, message, size, t)
                                        t += cb_append + int(copy_per_byte * size)
                                else:
                                    # call_entered + Wait, the wait for the
                                    # delivery, its read, and message_received
                                    # of each message: Skip (+ Send(LEADER,
                                    # ack)) for the first, nothing for the
                                    # rest, priced as the general path and
                                    # the loop's top price them
                                    # (FollowerMonitor.call_skipped_on).
                                    when = inbox[0][0]
                                    if when > t:
                                        stats.wait_time += when + wakeup - t
                                        t = when + wakeup
                                    heappop(inbox)
                                    stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                                    stats.reads += 1
                                    t += per_read + per_message
                                    for message in acks:
                                        size = message.size
                                        self.t = t
                                        post(LEADER, message, size, t)
                                        t += cb_append + int(copy_per_byte * size)
                                    t += per_message * (len(delivered) - 1)
                                    if inbox and inbox[0][0] <= t:
                                        # A later delivery by then: the loop's
                                        # top reads it; the call ends as a skip.
                                        self.t = t
                                        self.step = step
                                        self.state = AT_CALL
                                        self.res = SKIP
                                        self.fast = False
                                        held = True
                                        break
                                t += copy_ns
                                skipped += 1
                                if t >= self.horizon or (inbox and inbox[0][0] <= t) or entered == attack_at:
                                    break
                                following = next(steps, None)
                                if following is not step:
                                    pending, has_pending = following, True
                                    break
                                acks = skipped_call(call)
                                delivered = None
                                if acks is None and inbox and inbox[0][0] <= self.horizon:
                                    delivered = inbox[0][2]
                                    acks = skipped_on(call, delivered)
                                if acks is None or mon.last_decision is not decision:
                                    pending, has_pending, refused = step, True, acks is None
                                    if acks is not None:
                                        raise AssertionError("sim: a call's decision changed in a loop")
                                    break
                                entered += 1
                    if took:
                        if t >= self.horizon and not held:
                            self.t = t
                            connector.emit_taken(t)
                            self.horizon = self.next_horizon()
                            if t >= self.horizon:
                                stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                                yield env.timeout(t - env.now)
                                sim.running = self
                                self.horizon = self.next_horizon()
                        continue
                seq = mon.seq
                assert step.call is not None  # a step without an end is a call
                actions = call_entered(step.call)
                # The interception, priced by the route the monitor's broker
                # just chose; then comparing, for calls in the sequence.
                decision = mon.last_decision
                assert decision is not None  # call_entered has just decided
                route = decision.route
                fast = self.fast = (
                    dipmon is not None and route in fast_routes and not decision.sync and step.call.name in fast_calls
                )
                if fast:
                    assert dipmon is not None
                    t += step.gap + dipmon.call
                    if not is_leader:
                        # Its argument buffers are in its record: no reading
                        # them from the variant (args_ns), only comparing. A
                        # record equal to the one before is checked in its
                        # run; any other begins one (dipmon.follow_run).
                        last = self.last_record
                        if dipmon.follow_per_byte is None:
                            stats.monitor_busy += dipmon.follow + step.compare_ns
                        else:  # the entry's bytes, laid in and compared, all in
                            stats.monitor_busy += dipmon.follow + int(
                                dipmon.follow_per_byte * (step.out_bytes + step.arg_bytes)
                            )
                        if not (
                            last is step
                            or (last is not None and last.call == step.call and last.outcome == step.outcome)
                        ):
                            stats.monitor_busy += dipmon.follow_run
                        self.last_record = step
                else:
                    if dipmon is not None:
                        self.last_record = None  # a stopped call ends a run
                    t += step.gap + interception[route]
                if route is not LOCAL and not fast:
                    if is_leader:
                        t += step.args_ns
                        if decision.sync:
                            t += sync_compare
                    else:
                        t += compare + step.compare_ns + step.args_ns
                if mon.seq != seq:
                    if is_leader:
                        record_time(t)
                    elif mon.seq % sample_every == 0:
                        samples_t.append(t)
                        samples_seq.append(mon.seq)
                kind = type(actions[0]) if len(actions) == 1 else None
                if kind is Execute:
                    res = EXECUTE
                elif kind is Skip:
                    res = SKIP
                elif kind is Wait:
                    # Held at the call until a message resolves it (a
                    # follower ahead of the leader's entries, often).
                    self.step = step
                    state = self.state = AT_CALL
                    res = self.res = NONE
                    wait = actions[0]
                    assert isinstance(wait, Wait)
                    self.awaiting = wait.awaiting
                else:
                    self.step = step
                    self.state = AT_CALL
                    self.res = NONE
                    self.t = t
                    stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                    apply(actions)
                    t = self.t
                    state = self.state
                    if state is ENDED:
                        break
                    res = self.res
            else:
                res = self.res
                step = self.step
                fast = self.fast
            if res == EXECUTE:
                assert step is not None  # resolved: the step of the call it was held at
                if step.io and io_owner:
                    if step.io == IO_WAIT_CONNECTION:
                        ready = self._io_ready(t, self.horizon)
                        if ready is None:
                            self.step = step
                            self.state = AT_CALL
                            self.res = EXECUTE
                            self.t = t
                            stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                            connector.emit()
                            event = self._sleep()
                            if self.socket.ready:  # type: ignore[union-attr]
                                self.poke(self.socket.ready[0][0])  # type: ignore[union-attr]
                            yield event
                            sim.running = self
                            self.blocked = False
                            if env.now > self.t:
                                stats.io_wait_time += env.now - self.t
                            t = self.t = max(self.t, env.now)
                            self.horizon = self.next_horizon()
                            continue
                        stats.io_wait_time += ready - t
                        t = ready
                    t += step.native
                    self._do_io(step, t)
                else:
                    t += step.native
                if step.native >= HEARTBEAT_EVERY:
                    self.heard_until = t
                executed += 1
                if step.harmful:
                    self.t = t
                    sim.on_harmful(self, step)
                if state is not READY:
                    self.state = READY
                    self.res = NONE
                actions = call_exited(step.outcome)
                if fast and is_leader:
                    # The record goes into the ring; the monitor drains it
                    # when it is done with the ones before, hands the entry
                    # on from there; the program waits only for a full ring.
                    assert dipmon is not None
                    # A record equal to the one before (but for its number)
                    # that comes while the monitor still has that one to
                    # drain joins its run, which the path takes as one event
                    # down to the CONNECTORs; any other begins a run
                    # (dipmon.drain_run, send_run, receive_run).
                    last = self.last_record
                    joins = self.monitor_t > t and (
                        last is step or (last is not None and last.call == step.call and last.outcome == step.outcome)
                    )
                    self.last_record = step
                    work = dipmon.drain if joins else dipmon.drain + dipmon.drain_run
                    mt = (self.monitor_t if self.monitor_t > t else t) + work
                    action = actions[0] if len(actions) == 1 else None
                    if type(action) is Send:
                        message = action.message
                        size = message.size
                        for dest in others if action.to == EVERYONE else (action.to,):
                            post(dest, message, size, mt)
                            if not joins:  # in the batch post has just opened or added to
                                connector.runs[dest] = connector.runs.get(dest, 0) + 1
                        # dipmon.drain is the record's all in, its hand-over
                        # included (no cb_append): the bytes it carries apart,
                        # which are in the record (no buffer read: read_ns).
                        extra = int(drain_per_byte * size)
                        mt += extra
                        work += extra
                    elif actions:
                        self.t = t
                        stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                        apply(actions)
                        t = self.t
                        if self.state is ENDED:
                            break
                    self.monitor_t = mt
                    stats.monitor_busy += work
                    # The record carries the call's buffers: what it wrote
                    # and what it was given (the bytes a writev sends).
                    record = RECORD_BYTES + step.out_bytes + step.arg_bytes
                    stats.ring_records += 1
                    stats.ring_bytes += record
                    ring.append((mt, record))
                    ring_bytes += record
                    while ring and (ring[0][0] <= t or ring_bytes > dipmon.ring):
                        drained_at, nbytes = ring.popleft()
                        ring_bytes -= nbytes
                        if drained_at > t:
                            stats.wait_time += drained_at - t
                            t = drained_at
                elif actions:
                    action = actions[0]
                    if len(actions) == 1 and type(action) is Send:
                        message = action.message
                        size = message.size
                        if action.to == EVERYONE:
                            for dest in others:
                                post(dest, message, size, t)
                        else:
                            post(action.to, message, size, t)
                        t += cb_append + int(copy_per_byte * size) + step.read_ns
                    else:
                        self.t = t
                        stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                        apply(actions)
                        t = self.t
                        if self.state is ENDED:
                            break
            elif res == SKIP:
                assert step is not None  # resolved: the step of the call it was held at
                if fast:  # the library copies; the monitor laid the bytes into its ring
                    if dipmon is not None and dipmon.follow_per_byte is None:  # (else priced with follow)
                        stats.monitor_busy += step.copy_ns - step.read_ns  # per byte: no buffer written by ptrace
                else:
                    t += step.copy_ns
                skipped += 1
                if state is not READY:
                    self.state = READY
                    self.res = NONE
            else:
                # Waiting on the monitor: jump to the next arrival if it is
                # inside the horizon, else sleep until something arrives.
                if inbox:
                    when = inbox[0][0]
                    if when <= self.horizon:
                        resumed = when + sim.wakeup if when > t else t
                        stats.wait_time += resumed - t
                        t = resumed
                        continue
                self.t = t
                stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                connector.emit()
                self.monitor_wait = True
                self.block_since = t
                yield self._sleep()
                sim.running = self
                self.blocked = False
                self.monitor_wait = False
                now = env.now
                t = self.t
                if now > t:
                    stats.wait_time += now - t
                    t = now
                self.horizon = self.next_horizon()
                continue
            if t >= self.horizon:
                self.t = t
                connector.emit_taken(t)
                self.horizon = self.next_horizon()
                if t >= self.horizon:
                    stats.entered, stats.executed, stats.skipped = entered, executed, skipped
                    yield env.timeout(t - env.now)
                    sim.running = self
                    self.horizon = self.next_horizon()
        stats.entered, stats.executed, stats.skipped = entered, executed, skipped
        stats.routes = mon.routes


def _no_replicated(call: Call, outcome: Outcome) -> Entry | None:
    raise AssertionError("sim: a follower's monitor has no call_replicated")


def _no_skipped(call: Call) -> tuple[Message, ...] | None:
    raise AssertionError("sim: the leader's monitor has no call_skipped")


def _no_skipped_on(call: Call, messages: Sequence[Message]) -> tuple[Message, ...] | None:
    raise AssertionError("sim: the leader's monitor has no call_skipped_on")


def _no_replicated_run(call: Call, outcome: Outcome, most: int) -> list[Entry]:
    raise AssertionError("sim: a follower's monitor has no calls_replicated")


def _no_drop(count: int) -> None:
    raise AssertionError("sim: a run of steps from a stream that cannot tell what comes")


class NativeProgram(_Proc):
    """The same workload run once, natively: no monitor, no interception."""

    __slots__ = ("calls", "end_time")

    def __init__(self, sim: Simulation, host: str, steps: Iterator[WorkloadStep]) -> None:
        super().__init__(sim, 0, host, steps)
        self.calls = 0
        self.end_time = 0

    def run(self) -> ProcessGenerator:
        env = self.env
        sim = self.sim
        self.t = env.now
        sim.running = self
        self.horizon = self.next_horizon()
        for step in self.steps:
            if step.end is not None:
                break
            self.t += step.gap
            if step.io == IO_WAIT_CONNECTION and self.socket is not None:
                while True:
                    ready = self._io_ready(self.t, self.horizon)
                    if ready is not None:
                        self.t = ready
                        break
                    event = self._sleep()
                    if self.socket.ready:
                        self.poke(self.socket.ready[0][0])
                    yield event
                    sim.running = self
                    self.blocked = False
                    self.t = max(self.t, env.now)
                    self.horizon = self.next_horizon()
            self.t += step.native
            if step.io and self.socket is not None:
                self._do_io(step, self.t)
            self.calls += 1
            if self.t >= self.horizon:
                self.horizon = self.next_horizon()
                if self.t >= self.horizon:
                    yield env.timeout(self.t - env.now)
                    sim.running = self
                    self.horizon = self.next_horizon()
        self.end_time = self.t
        self.sim.native_ended(self)


# ---------------------------------------------------------------------------
# The simulation
# ---------------------------------------------------------------------------


@dataclass
class VariantSetup:
    host: str
    arch: str
    steps: Iterator[WorkloadStep]


@dataclass
class ClientSetup:
    host: str
    requests: int
    concurrency: int
    request_size: int


class Simulation:
    """One run: variants (or one native program), CONNECTORs, links, a client."""

    def __init__(
        self,
        topology_network: Network,
        profile: CostProfile,
        *,
        policy: Policy | None,
        variants: Sequence[VariantSetup],
        client: ClientSetup | None = None,
        stall_timeout: int = 1_000_000_000,
        attack_at: int = -1,
        sample_every: int = 1,
    ) -> None:
        self.env = Clock()
        self.network = topology_network
        # Every message is sent at or after env.now, so the links may forget
        # reservations that ended before it (a long run's memory stays flat).
        topology_network.env = self.env
        self.profile = profile
        self.policy = policy
        self.outcome = RunOutcome(0, [])
        self.stall_timeout = stall_timeout
        self.attack_at = attack_at
        #: Breaks ties between inbox entries delivered at the same time, in the
        #: order they were sent (heap order must not depend on the messages).
        self.order = 0
        self._ended = 0
        #: The process whose generator is running (its horizon may shrink).
        self.running: _Proc | None = None
        self.attack_hook: Callable[[Simulation, Variant], None] | None = None
        self.harmful_hook = None
        p = profile
        self.wakeup = p.wakeup
        self.compare = p.compare
        self.compare_per_byte = p.compare_per_byte
        self.copy_per_byte = p.copy_per_byte
        self.cb_append = p.cb_append
        self.connector_wakeup = p.connector_wakeup_for(policy.name) if policy is not None else 0
        self.connector_receive_wakeup = p.connector_receive_wakeup_for(policy.name) if policy is not None else 0
        self.max_batch_messages, self.max_batch_bytes = p.max_batch_messages, p.max_batch_bytes
        #: Real mode's in-process path, where the profile has one and the
        #: policy replicates asynchronously (under dmon nothing is fast).
        self.dipmon = p.dipmon if policy is not None and policy.async_replication else None
        # Moving entries: the path's own costs per entry on it (CostProfile.handover).
        h = p.handover(self.dipmon is not None)
        self.monitor_receive, self.monitor_receive_per_message = h.monitor_receive, h.monitor_receive_per_message
        self.send_fixed, self.send_per_message, self.send_per_byte = h.send, h.send_per_message, h.send_per_byte
        self.receive_fixed, self.receive_per_message = h.receive, h.receive_per_message
        self.receive_per_byte = h.receive_per_byte
        self.send_run = self.dipmon.send_run if self.dipmon is not None else 0
        self.receive_run = self.dipmon.receive_run if self.dipmon is not None else 0
        self.n_variants = len(variants)
        self.connectors = {host: Connector(self, host) for host in dict.fromkeys(v.host for v in variants)}
        self.others = [tuple(j for j in range(len(variants)) if j != i) for i in range(len(variants))]
        self.native: NativeProgram | None = None
        self.variants: list[Variant] = []
        if policy is None:
            assert len(variants) == 1
            self.native = NativeProgram(self, variants[0].host, variants[0].steps)
            procs: list[_Proc] = [self.native]
        else:
            interception = {Route(k): v for k, v in profile.interception_costs(policy.name).items()}
            n = len(variants)
            for i, setup in enumerate(variants):
                monitor = LeaderMonitor(policy, n) if i == 0 else FollowerMonitor(policy, i, n)
                self.variants.append(
                    Variant(self, i, setup.host, setup.arch, setup.steps, monitor, interception, sample_every)
                )
            procs = list(self.variants)
        self.socket: ServerSocket | None = None
        self.client = client
        if client is not None:
            owner = procs[0]
            self.socket = ServerSocket(self, owner.host, client.host)
            owner.socket = self.socket
            self.socket.owner = owner
            if isinstance(owner, Variant):
                owner.io_owner = True
        self._set_windows(procs)
        self._procs = procs

    # -- lookahead -------------------------------------------------------------

    def _set_windows(self, procs: Sequence[_Proc]) -> None:
        """Each process's horizon step: the least time any message takes to reach it."""
        fixed = self.send_fixed + self.send_per_message + self.receive_fixed + self.receive_per_message
        for proc in procs:
            bounds = [fixed + self.network.min_latency(other.host, proc.host) for other in procs if other is not proc]
            if self.client is not None and proc.socket is not None:
                bounds.append(self.network.min_latency(self.client.host, proc.host))
            proc.window = max(1, min(bounds)) if bounds else 1_000_000

    # -- plumbing used by the processes ---------------------------------------------

    def scheduled(self, at: int) -> None:
        """An event was scheduled at ``at``: whoever acts then may send to the
        process now running, so its horizon may come no later than
        ``at`` plus its lookahead window."""
        running = self.running
        if running is not None and at + running.window < running.horizon:
            running.horizon = at + running.window

    def ship(self, src_host: str, dest: int, messages: list, nbytes: int, t: int) -> None:
        """A CONNECTOR sends a batch to variant ``dest``'s host at ``t``."""
        target = self.variants[dest]
        path = self.connectors[src_host].path_to(dest)
        arrival = self.network.deliver_along(path, nbytes, t, path)
        if arrival is None:
            self.outcome.lost_messages += len(messages)
            return
        # The receiving CONNECTOR (inline): it sleeps in epoll when idle.
        connector = self.connectors[target.host]
        free = connector.rfree.get(src_host, -INF)
        start = free if free >= arrival else arrival + self.connector_receive_wakeup
        done = (
            start + self.receive_fixed + self.receive_per_message * len(messages) + int(self.receive_per_byte * nbytes)
        )
        connector.busy += done - start
        connector.rfree[src_host] = done
        connector.received_batches += 1
        connector.received_messages += len(messages)
        connector.received_bytes += nbytes
        target.deliver(done, messages)

    def on_halt(self, variant: Variant, verdict: Verdict) -> None:
        out = self.outcome
        if out.verdict is None:
            out.verdict = verdict
            out.verdict_time = variant.t
            out.verdict_by = variant.index
            for v in self.variants:
                v.stats.entered_at_verdict = v.stats.entered

    def on_attack_point(self, variant: Variant, entered: int) -> None:
        out = self.outcome
        variant.stats.entered_at_attack = entered
        if out.attack_time is None or variant.t < out.attack_time:
            out.attack_time = variant.t
        if self.attack_hook is not None:
            self.attack_hook(self, variant)

    def on_harmful(self, variant: Variant, step: WorkloadStep) -> None:
        self.outcome.harmful.append(
            HarmfulCall(variant.index, step.call.name if step.call else "", step.harmful, variant.t)
        )

    def variant_ended(self, variant: Variant) -> None:
        self._ended += 1

    def native_ended(self, native: NativeProgram) -> None:
        self._ended += 1

    # -- the client ----------------------------------------------------------------

    def _client_user(self, counter: list[int]) -> ProcessGenerator:
        client = self.client
        socket = self.socket
        assert client is not None and socket is not None
        env, net, p = self.env, self.network, self.profile
        while counter[0] < client.requests:
            number = counter[0]
            counter[0] += 1
            started = env.now
            t = started + p.client_per_request
            syn = net.transmit(client.host, socket.host, p.syn_bytes, t).arrival
            syn_ack = net.transmit(socket.host, client.host, p.syn_bytes, syn).arrival if syn is not None else None
            request = (
                net.transmit(client.host, socket.host, client.request_size, syn_ack).arrival
                if syn_ack is not None
                else None
            )
            if request is None:
                continue  # given up after the retransmission limit
            connection = Connection(number, started, env.event())
            socket.push(request, connection)
            yield connection.done
            self.outcome.requests_done += 1
            self.outcome.latencies.append(env.now - started)
            self.outcome.last_response = env.now

    # -- the watchdog --------------------------------------------------------------

    def _watchdog(self) -> ProcessGenerator:
        """Call ``stalled()`` on monitors that waited longer than the stall
        timeout for peers that are stuck too; end the run when nothing can
        happen any more.

        A waiting monitor whose awaited peer is alive (running, or blocked in
        a native call such as epoll_wait) has its timer restarted, as the
        CONNECTOR's heartbeats would do in real mode.
        """
        env = self.env
        stall = self.stall_timeout
        total = len(self._procs)
        while self._ended < total:
            waiting = [v for v in self.variants if v.monitor_wait and v.state is not ENDED]
            target = min((v.block_since + stall for v in waiting), default=env.now + stall)
            yield env.timeout(max(1, target - env.now))
            if self._ended >= total:
                return
            now = env.now
            idle = env.peek() == simpy.core.Infinity
            for v in self.variants:
                if not v.monitor_wait or v.state is ENDED or now - v.block_since < stall:
                    continue
                peers = [self.variants[p] for p in v.awaiting if 0 <= p < len(self.variants)]
                heard = max((p.heard_until for p in peers), default=0)
                if now - heard < stall:
                    # The peer spent the wait in a long native call, telling
                    # this monitor so; its word may still be on the way.
                    v.block_since = max(v.block_since, heard)
                    continue
                if not idle and any(self._alive(p.index) for p in peers):
                    v.block_since = now  # a heartbeat: the peer is slow, not stuck
                    continue
                v.on_stall()
            if env.peek() == simpy.core.Infinity and not any(
                v.monitor_wait and v.state is not ENDED for v in self.variants
            ):
                # Nothing is scheduled and no monitor waits: what is left
                # waits for input that will never come (a request given up).
                self.outcome.ended_by_starvation = True
                for proc in self._procs:
                    if isinstance(proc, Variant) and proc.state is not ENDED:
                        proc.stats.ended_by = "starved"
                        proc.stats.end_time = max(proc.t, now)
                    elif isinstance(proc, NativeProgram) and not proc.end_time:
                        proc.end_time = max(proc.t, now)
                return

    def _alive(self, index: int) -> bool:
        v = self.variants[index]
        return v.state is not ENDED and not (v.blocked and v.monitor_wait)

    # -- running -------------------------------------------------------------------

    def run(self) -> RunOutcome:
        env = self.env
        for proc in self._procs:
            env.process(proc.run())
        if self.client is not None:
            counter = [0]
            for _ in range(min(self.client.concurrency, self.client.requests)):
                env.process(self._client_user(counter))
        env.process(self._watchdog())
        # A run allocates millions of short-lived, acyclic objects (actions,
        # entries, tuples); reference counting frees them. The cyclic
        # collector would only spend time scanning them (about 6% of a run),
        # so it is off for the run: a 1,000,000-call run peaks at the same
        # memory either way.
        collecting = gc.isenabled()
        gc.disable()
        try:
            env.run()
        finally:
            if collecting:
                gc.enable()
        out = self.outcome
        for connector in self.connectors.values():
            connector.emit()
        if self.native is not None:
            out.makespan = self.native.end_time
        else:
            out.variants = [v.stats for v in self.variants]
            for v in self.variants:
                if not v.stats.end_time:
                    v.stats.end_time = v.t
                v.stats.routes = v.stats.routes or v.monitor.routes
            out.makespan = max(v.stats.end_time for v in self.variants)
            leader = self.variants[0].monitor
            assert isinstance(leader, LeaderMonitor)
            out.cb = {
                "max_entries": leader.cb.max_entries,
                "mean_entries": leader.cb.mean_entries,
                "max_bytes": leader.cb.max_bytes,
            }
        out.links = self.network.stats()
        out.connectors = {host: c.stats() for host, c in sorted(self.connectors.items())} if self.variants else {}
        return out
