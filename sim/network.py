"""Links and routes: when a message sent now arrives over there.

Each direction of each topology link is a FIFO server: a message waits for
the messages ahead of it, takes ``bytes * 8 / bandwidth`` to put on the wire
(serialisation) and ``delay`` to cross it (propagation). All traffic here is
TCP (CONNECTOR links, HTTP), so a full queue (its limit in packets or bytes)
does not drop: the sender's TCP holds the message back until the backlog has
room, as flow and congestion control do at equilibrium. A loss rate drops
packets at random; TCP sends the message again one round trip plus the
profile's ``loss_recovery`` later (fast retransmit), so a lossy link shows up
in the results as delay, not as missing data.

Messages between hosts follow the lowest-delay path of the topology graph,
hop by hop. A message of several packets is pipelined: its first packet goes
on to the next hop while the rest are still being serialised on this one,
so a multi-hop path costs the serialisation of the bottleneck once, not once
per hop.

Nothing here is a SimPy process. A link's state is the time its transmitter
is free and its backlog, so the arrival of a message is computed the moment
it is sent, in a few arithmetic steps: that is what lets a simulation move a
million messages in seconds. The one approximation is that messages reach a
link in the order the simulation computes them, which may differ from their
virtual time order by less than the lookahead window of :mod:`sim.engine`
when several hosts share a link direction.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect_right
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import networkx as nx
from mypy_extensions import mypyc_attr

from dmvx.topology import Topology
from dmvx.units import QueueLimit
from sim.profile import CostProfile

#: Longer than any simulation (ns).
INF = 1 << 62

#: A reservation's end (the key both bisections search by).
_END = itemgetter(2)


# A model of one's own subclasses it (Network's ``link=``), compiled or not.
@mypyc_attr(allow_interpreted_subclasses=True)
class LinkDirection:
    """One direction of one link: a transmitter scheduled in time order.

    Reservations ``(ready, start, end, packets, bytes)`` are kept sorted by
    start, and so by end too (none overlaps another). A message takes the first idle stretch at or after the time it
    is ready that is long enough for it: messages computed in time order
    queue FIFO behind each other, and one computed late but ready early (a
    sender that was behind in the simulation) takes the gap the link really
    had then, instead of queueing behind traffic of its future. Reservations
    that ended before ``floor`` (nothing can be sent before ``env.now``) are
    dropped.
    """

    __slots__ = (
        "name",
        "delay",
        "ns_per_byte",
        "loss",
        "limit_packets",
        "limit_bytes",
        "room_packets",
        "room_bytes",
        "res",
        "head",
        "qhead",
        "qpackets",
        "qbytes",
        "last_ready",
        "messages",
        "bytes",
        "packets",
        "held",
        "max_queued",
        "losses",
        "rng",
        "tail_flow",
        "tail_room",
        "last_end",
    )

    def __init__(
        self, name: str, delay_s: float, bw_bps: float | None, loss: float, queue: QueueLimit, seed: int
    ) -> None:
        self.name = name
        self.delay = int(round(delay_s * 1e9))
        #: Nanoseconds to serialise one byte; 0 for an unshaped link.
        self.ns_per_byte = 8e9 / bw_bps if bw_bps else 0.0
        self.loss = loss
        self.limit_packets = queue.amount if queue.unit == "packets" else None
        self.limit_bytes = queue.amount if queue.unit == "bytes" else None
        #: The most packets and bytes one message may have to go on an empty
        #: queue without waiting for room (:meth:`send`'s common case).
        self.room_packets = self.limit_packets if self.limit_packets is not None else INF
        self.room_bytes = self.limit_bytes if self.limit_bytes is not None else INF
        self.res: list[tuple[int, int, int, int, int]] = []
        #: ``res[:head]`` ended before anything can still be sent: forgotten.
        self.head = 0
        #: ``res[qhead:]`` is the backlog at the latest time a message was
        #: ready (the queue), with its packets and bytes summed.
        self.qhead = 0
        self.qpackets = 0
        self.qbytes = 0
        #: The latest time a queued message was ready: one ready no earlier
        #: keeps time order and simply queues behind everything.
        self.last_ready = -(1 << 62)
        self.messages = 0
        self.bytes = 0
        self.packets = 0
        self.held = 0
        self.max_queued = 0
        #: The connection whose data was queued last, and the free bytes in
        #: its last packet (for coalescing, see :meth:`Network.arrival`).
        self.tail_flow: object = None
        self.tail_room = 0
        #: When the latest reservation ends (the link is idle after it).
        self.last_end = -(1 << 62)
        self.losses = 0
        # A seeded stream per direction: loss on one link does not shift the
        # random choices of another, so changing one link changes only it.
        self.rng = random.Random(f"{seed}:{name}")

    def send(
        self,
        first_ready: int,
        last_ready: int,
        nbytes: int,
        packets: int,
        first_bytes: int,
        last_bytes: int,
        floor: int = 0,
    ) -> tuple[int, int] | None:
        """Queue a message whose first packet is here at ``first_ready`` and
        last at ``last_ready``; return when its first and last packets reach
        the far end, or None if a packet was lost."""
        self.messages += 1
        self.bytes += nbytes
        self.packets += packets
        per_byte = self.ns_per_byte
        if not per_byte:
            first_out, finish = first_ready, last_ready
        else:
            res = self.res
            n = len(res)
            if (
                first_ready >= self.last_end
                and self.messages & 255
                and packets <= self.room_packets
                and nbytes <= self.room_bytes
            ):
                # The common case (every hop of most batches): the link has
                # sent everything queued by the time this message is ready,
                # it fits the empty queue, and no reservations are forgotten
                # now. The backlog and the room for it below would come out
                # empty and enough.
                self.qhead = n
                self.qpackets = self.qbytes = 0
            else:
                if self.messages & 255 == 0:
                    self._forget(floor)
                    n = len(res)
                # The backlog when this message is ready: what has not left yet.
                q = self.qhead
                if q < n and res[q][2] <= first_ready:
                    qp, qb = self.qpackets, self.qbytes
                    while q < n and res[q][2] <= first_ready:
                        r = res[q]
                        qp -= r[3]
                        qb -= r[4]
                        q += 1
                    self.qhead, self.qpackets, self.qbytes = q, qp, qb
                limit_p = self.limit_packets
                if (
                    (self.qpackets + packets > limit_p)
                    if limit_p is not None
                    else (self.qbytes + nbytes > self.limit_bytes)  # type: ignore[operator]
                ):
                    first_ready, last_ready = self._room(first_ready, last_ready, packets, nbytes)
            if first_ready >= self.last_ready or not n:
                # In time order (ready no earlier than anything queued):
                # behind the last reservation, or after it.
                self.last_ready = first_ready
                start = first_ready if not n or first_ready >= res[-1][2] else res[-1][2]
                finish = start + int(nbytes * per_byte)
                if packets > 1:
                    last_out = last_ready + int(last_bytes * per_byte)
                    if last_out > finish:
                        finish = last_out
                    first_out = start + int(first_bytes * per_byte)
                else:
                    first_out = finish
                res.append((first_ready, start, finish, packets, nbytes))
                self.last_end = finish
                qp = self.qpackets = self.qpackets + packets
                self.qbytes += nbytes
                # Exact here: everything queued was ready before this message.
                if qp > self.max_queued:
                    self.max_queued = qp
            else:
                last_out = last_ready + int(last_bytes * per_byte)
                start, finish = self._insert(first_ready, int(nbytes * per_byte), last_out, packets, nbytes)
                first_out = start + int(first_bytes * per_byte)
        if self.loss and self.rng.random() < 1.0 - (1.0 - self.loss) ** packets:
            self.losses += 1
            return None
        delay = self.delay
        return first_out + delay, finish + delay

    def _forget(self, floor: int) -> None:
        """Drop reservations that ended before ``floor`` (nothing can be
        sent before it, so none of them can matter again)."""
        res = self.res
        # The first that ends after ``floor``, by bisection on the ends
        # (sorted): a scan of every reservation since the last call cost a
        # few per cent of a simulation.
        head = bisect_right(res, floor, lo=self.head, key=_END)
        if head > self.qhead:
            self._recount(head)
        if head > 1024:
            del res[:head]
            self.qhead -= head
            head = 0
        self.head = head

    def _room(self, first_ready: int, last_ready: int, packets: int, nbytes: int) -> tuple[int, int]:
        """Backpressure: hold a message back until the queue has room for it
        (the sender's TCP keeps it until enough of the backlog has left)."""
        self.held += 1
        res = self.res
        limit_p, limit_b = self.limit_packets, self.limit_bytes
        q, qp, qb = self.qhead, self.qpackets, self.qbytes
        while q < len(res) and (
            (limit_p is not None and qp + packets > limit_p) or (limit_b is not None and qb + nbytes > limit_b)
        ):
            leaves = res[q][2]
            qp -= res[q][3]
            qb -= res[q][4]
            q += 1
            if leaves > first_ready:
                last_ready += leaves - first_ready
                first_ready = leaves
        self.qhead, self.qpackets, self.qbytes = q, qp, qb
        return first_ready, last_ready

    def _recount(self, qhead: int) -> None:
        self.qhead = qhead
        self.qpackets = sum(r[3] for r in self.res[qhead:])
        self.qbytes = sum(r[4] for r in self.res[qhead:])

    def _insert(self, ready: int, duration: int, last_out: int, packets: int, nbytes: int) -> tuple[int, int]:
        """Place a message ready before the last reservation started: in the
        first idle stretch at or after ``ready`` that fits it."""
        res = self.res
        i = bisect_right(res, ready, lo=self.head, key=_END)  # first reservation busy after ``ready``
        start = ready
        while i < len(res):
            finish = max(start + duration, last_out)
            if finish <= res[i][1]:
                break
            if res[i][2] > start:
                start = res[i][2]
            i += 1
        finish = max(start + duration, last_out)
        res.insert(i, (ready, start, finish, packets, nbytes))
        if finish > self.last_end:
            self.last_end = finish
        if i >= self.qhead:
            self.qpackets += packets
            self.qbytes += nbytes
        else:
            self._recount(min(i, self.qhead))
        return start, finish

    def stats(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "packets": self.packets,
            "held_back": self.held,
            "max_queue_packets": self.max_queued,
            "losses": self.losses,
        }


class LinkPath:
    """The link directions from one host to another, and their least delay.

    A CONNECTOR keeps one per peer and passes it as the *flow* of its
    messages: one object per TCP connection, compared by identity."""

    __slots__ = ("src", "dst", "hops", "latency")

    def __init__(self, src: str, dst: str, hops: tuple[LinkDirection, ...], latency: int) -> None:
        self.src = src
        self.dst = dst
        self.hops = hops
        self.latency = latency


@dataclass(slots=True)
class Delivery:
    """What :meth:`Network.transmit` found: arrival of the last byte (None if
    the message was given up) and how many retransmissions it took."""

    arrival: int | None
    retransmits: int


@mypyc_attr(allow_interpreted_subclasses=True)
class Network:
    """Every link direction of a topology, and the routes between hosts.

    The link model is passed in, as Mininet takes ``Mininet(link=Link)``:
    ``link`` is the class of each direction of each link, built as
    :class:`LinkDirection` is (name, delay in seconds, bandwidth in bit/s or
    None, loss rate, queue limit, seed) and used through its ``send``,
    ``delay`` and ``stats``. A different model of a link (say, one with
    jitter) is a subclass passed here; nothing else changes."""

    def __init__(
        self, topology: Topology, profile: CostProfile, seed: int, link: type[LinkDirection] = LinkDirection
    ) -> None:
        self.profile = profile
        self.graph = topology.graph()
        self.links: dict[tuple[str, str], LinkDirection] = {}
        for u, v, data in self.graph.edges(data=True):
            queue = data["queue"] if data["queue"] is not None else profile.default_queue
            self.links[(u, v)] = link(f"{u}->{v}", data["delay_s"], data["bw_bps"], data["loss"], queue, seed)
        self._routes: dict[tuple[str, str], tuple[LinkDirection, ...]] = {}
        self._latency: dict[tuple[str, str], int] = {}
        self._delivered: dict[object, int] = {}
        self._paths: dict[tuple[str, str], LinkPath] = {}
        self._retransmits = 0
        #: The simulation's environment, once one runs on this network: links
        #: forget reservations that ended before ``env.now``.
        self.env: Any = None
        self._mss = profile.mss
        self._overhead = profile.packet_overhead
        self._recovery = profile.loss_recovery
        self._max_retransmits = profile.max_retransmits

    def route(self, src: str, dst: str) -> tuple[LinkDirection, ...]:
        """The link directions from ``src`` to ``dst`` (empty on one host)."""
        key = (src, dst)
        hops = self._routes.get(key)
        if hops is None:
            nodes = [src] if src == dst else nx.shortest_path(self.graph, src, dst, weight="delay_s")
            hops = tuple(self.links[(a, b)] for a, b in itertools.pairwise(nodes))
            self._routes[key] = hops
        return hops

    def min_latency(self, src: str, dst: str) -> int:
        """A lower bound on the time any message takes from ``src`` to ``dst``."""
        key = (src, dst)
        latency = self._latency.get(key)
        if latency is None:
            latency = self._latency[key] = sum(hop.delay for hop in self.route(src, dst))
        return latency

    def wire_size(self, payload: int) -> tuple[int, int, int, int]:
        """``(bytes on the wire, packets, first packet bytes, last packet bytes)``."""
        mss, overhead = self._mss, self._overhead
        if payload <= mss:
            size = payload + overhead
            return size, 1, size, size
        packets = -(-payload // mss)
        last = (payload - (packets - 1) * mss) + overhead
        return payload + packets * overhead, packets, mss + overhead, last

    def transmit(self, src: str, dst: str, payload: int, t: int, flow: object = None) -> Delivery:
        """Send ``payload`` bytes from ``src`` at ``t``; TCP retransmits what
        a link loses, a round trip plus ``loss_recovery`` later.

        Messages of one ``flow`` (a TCP connection) are delivered in order: one
        that arrives while an earlier one is still being retransmitted waits
        for it (head-of-line blocking)."""
        self._retransmits = 0
        return Delivery(self.arrival(src, dst, payload, t, flow), self._retransmits)

    def arrival(self, src: str, dst: str, payload: int, t: int, flow: object = None) -> int | None:
        """:meth:`transmit`, returning only the arrival time."""
        return self.deliver_along(self.path(src, dst), payload, t, flow)

    def path(self, src: str, dst: str) -> LinkPath:
        """The path from ``src`` to ``dst`` (cached: one object per pair)."""
        key = (src, dst)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = LinkPath(src, dst, self.route(src, dst), self.min_latency(src, dst))
        return path

    def deliver_along(self, path: LinkPath, payload: int, t: int, flow: object = None) -> int | None:
        """The hot path of :meth:`transmit`: the arrival time along ``path``
        (None if given up), for ``payload`` bytes sent at ``t``."""
        hops = path.hops
        if not hops:
            return t
        mss = self._mss
        first_hop = hops[0]
        if flow is not None and first_hop.tail_flow is flow and first_hop.last_end > t:
            # The connection's earlier data still waits on the first link:
            # this write fills its last, partly empty packet before it needs
            # headers of its own, as the kernel coalesces queued small writes
            # into full segments (autocorking).
            fill = min(payload, first_hop.tail_room)
            if payload > fill:
                nbytes, packets, first_bytes, last_bytes = self.wire_size(payload - fill)
                nbytes += fill
                first_bytes += fill
            else:
                nbytes, packets, first_bytes, last_bytes = fill, 0, fill, fill
        elif payload <= mss:
            fill = 0
            nbytes = first_bytes = last_bytes = payload + self._overhead
            packets = 1
        else:
            fill = 0
            nbytes, packets, first_bytes, last_bytes = self.wire_size(payload)
        first_hop.tail_flow = flow
        if payload > fill:
            rest = (payload - fill) % mss
            first_hop.tail_room = mss - rest if rest else 0
        else:
            first_hop.tail_room -= fill
        retransmits = 0
        start = t
        floor = self.env.now if self.env is not None else 0
        if t < floor:
            # Reservations before env.now may have been forgotten already.
            raise RuntimeError(f"sim: a message from {path.hops[0].name} sent at {t} ns, before now ({floor} ns)")
        while True:
            first = last = start
            for hop in hops:
                out = hop.send(first, last, nbytes, packets, first_bytes, last_bytes, floor)
                if out is None:
                    break
                first, last = out
            else:
                if (retransmits and flow is not None) or (self._delivered and flow in self._delivered):
                    # After a loss, later messages of the connection wait for
                    # the retransmitted one (lossless routes never get here).
                    previous = self._delivered.get(flow, 0)
                    if last < previous:
                        last = previous
                    self._delivered[flow] = last
                self._retransmits = retransmits
                return last
            if retransmits >= self._max_retransmits:
                self._retransmits = retransmits
                return None
            retransmits += 1
            start = start + self._recovery + 2 * path.latency

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per link direction: messages, bytes (with headers), packets, how many
        messages waited for queue room, the longest queue, losses."""
        return {hop.name: hop.stats() for hop in sorted(self.links.values(), key=lambda h: h.name)}
