"""Link delay and loss without netem: a userspace frame relay.

The kernels here have no ``netem`` qdisc, so a link with a delay is built as
``a -- dN -- b``: ``dN`` is a small Mininet node (a network namespace with two
interfaces and no address) and this relay copies Ethernet frames between its
two interfaces through ``AF_PACKET`` sockets, holding each frame until its
arrival time plus the link's one-way delay for that direction. Every frame
on the link is delayed -- ARP, the client's requests, the CONNECTORs' TCP
stream -- so the link behaves like a cable of that length, and TCP between
the hosts runs end to end over it (the attacker's forged segments and RSTs
travel the same way).

Precision: the arrival time is the kernel's receive timestamp
(``SO_TIMESTAMPNS``), so time the relay spends waking up to read a frame is
not added to the delay, and timer slack is set to 1 ns. Waking up for a
departure still costs time (an idle vCPU of these VMs takes 20-50 us to
wake, and the send itself some more), so the relay learns its own lateness:
it wakes up ``lead`` seconds before a frame is due, and after each send
moves ``lead`` by a fraction of how late (or early) the send completed
(capped, so one descheduled wake-up does not teach it much). It runs at
real-time priority where allowed, so busy CPUs do not lengthen the link. On
average a frame then leaves the relay at its arrival time plus the delay,
instead of some 60 us after it. Frames of one direction leave in arrival
order (the delay is constant, so a FIFO per direction is a schedule). Loss
drops a frame with the link's probability from a seeded generator.

One relay process serves every delayed link of a run: it enters each relay
node's namespace only to open that node's two sockets (a socket stays in the
namespace it was made in), then waits on all of them in one loop.

Offloads: frames must be complete on the wire for a packet socket to copy
them, so the network turns off TCP segmentation and transmit checksum
offload on the interfaces that feed a relay (:mod:`realmode.net.network`).
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import select
import signal
import socket
import struct
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from realmode.net import netns

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
PR_SET_TIMERSLACK = 29
_TIMESPEC = struct.Struct("qq")
RT_PRIORITY = 10
_SOCKET_BUFFER = 4 << 20
#: Frames held per direction at most; more are dropped, as a full queue would.
MAX_HELD = 20000
#: How fast the relay's estimate of its own wake-up lateness follows what it
#: measures, and the most it may wake up early.
_LEARN = 0.1
_MAX_STEP = 0.00005
_MAX_LEAD = 0.0002


@dataclass(frozen=True)
class Hop:
    """One delayed link: the relay node's pid and its two interfaces."""

    node_pid: int
    if_a: str  # faces the link's ``a`` end
    if_b: str  # faces the link's ``b`` end
    delay_ab: float  # seconds, a -> b
    delay_ba: float
    loss: float = 0.0
    label: str = ""


@dataclass
class Counts:
    frames: int = 0
    bytes: int = 0
    dropped: int = 0
    #: Frames and bytes of the TCP flow on ``watch_port`` (the CONNECTORs').
    flow_frames: int = 0
    flow_bytes: int = 0


@dataclass
class _Direction:
    source: socket.socket
    dest: socket.socket
    delay: float
    loss: float
    label: str
    held: deque = field(default_factory=deque)
    counts: Counts = field(default_factory=Counts)


def _open(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    for option in (SO_RCVBUFFORCE, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        except OSError:
            pass
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def _tcp_port_match(frame: bytes, port: int) -> bool:
    """Whether an Ethernet frame is IPv4 TCP to or from ``port``."""
    if len(frame) < 38 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return False
    start = 14 + (frame[14] & 0x0F) * 4
    return port in (
        int.from_bytes(frame[start : start + 2], "big"),
        int.from_bytes(frame[start + 2 : start + 4], "big"),
    )


class Relay:
    """Copies frames between the two interfaces of each hop, late by its delay."""

    def __init__(self, hops: list[Hop], seed: int = 0, watch_port: int | None = None) -> None:
        self.random = random.Random(seed)
        self.watch_port = watch_port
        self.directions: list[_Direction] = []
        self.by_source: dict[int, _Direction] = {}
        for hop in hops:
            with netns.inside(hop.node_pid):
                a, b = _open(hop.if_a), _open(hop.if_b)
            for source, dest, delay, label in (
                (a, b, hop.delay_ab, f"{hop.label}>"),
                (b, a, hop.delay_ba, f"{hop.label}<"),
            ):
                direction = _Direction(source, dest, delay, hop.loss, label)
                self.directions.append(direction)
                self.by_source[source.fileno()] = direction
        self.running = True
        #: Seconds before a frame's due time the relay wakes up to send it.
        self.lead = 0.0
        #: How late each timed send completed, for reports (seconds).
        self.lateness: list[float] = []

    def serve(self, wakeup: int | None = None, control: int | None = None) -> None:
        """Relay until :meth:`stop`. ``wakeup`` is a file descriptor that
        becomes readable when it is time to look at ``running`` (a signal's
        wake-up pipe: select is restarted after a signal, not interrupted).
        ``control`` carries commands, one JSON object a line (see
        :meth:`command`); its end of file (the orchestrator is gone) ends the
        relay too."""
        sources: list = [d.source for d in self.directions]
        sources += [fd for fd in (wakeup, control) if fd is not None]
        pending = b""
        while self.running:
            due = self._release(time.time())
            timeout = None if due is None else max(0.0, due - self.lead - time.time())
            try:
                readable, _, _ = select.select(sources, [], [], timeout)
            except InterruptedError:
                continue
            for sock in readable:
                if sock == wakeup:
                    os.read(sock, 512)
                elif sock == control:
                    data = os.read(sock, 4096)
                    if not data:
                        self.running = False
                        break
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self.command(json.loads(line))
                else:
                    self._receive(self.by_source[sock.fileno()])

    def command(self, order: dict[str, Any]) -> None:
        """``{"link": LABEL, "delay_ab": S, "delay_ba": S}``: new one-way
        delays for a hop (frames already held keep their departure time);
        ``"loss": P``: the hop's loss rate, both ways."""
        for direction in self.directions:
            label, way = direction.label[:-1], direction.label[-1]
            if label == order.get("link"):
                key = "delay_ab" if way == ">" else "delay_ba"
                if key in order:
                    direction.delay = float(order[key])
                if "loss" in order:
                    direction.loss = float(order["loss"])

    def stop(self) -> None:
        self.running = False

    def _receive(self, direction: _Direction) -> None:
        counts = direction.counts
        while True:
            try:
                frame, ancillary, _, _ = direction.source.recvmsg(65536, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # the interface went away (the run is ending)
            arrived = time.time()
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(data)
                    arrived = sec + nsec * 1e-9
            counts.frames += 1
            counts.bytes += len(frame)
            if self.watch_port is not None and _tcp_port_match(frame, self.watch_port):
                counts.flow_frames += 1
                counts.flow_bytes += len(frame)
            if (direction.loss and self.random.random() < direction.loss) or len(direction.held) >= MAX_HELD:
                counts.dropped += 1
                continue
            if direction.delay <= 0 and not direction.held:
                self._send(direction, frame)
            else:
                direction.held.append((arrived + direction.delay, frame))

    def _release(self, now: float) -> float | None:
        """Send every frame that is due (within ``lead``); the next departure
        time, if any."""
        nxt = None
        for direction in self.directions:
            held = direction.held
            while held and held[0][0] - self.lead <= now:
                due, frame = held.popleft()
                self._send(direction, frame)
                now = time.time()
                late = now - due
                if len(self.lateness) < 100000:
                    self.lateness.append(late)
                # One descheduled wake-up must not teach the relay to send
                # everything early: each lesson is capped.
                step = _LEARN * min(_MAX_STEP, max(-_MAX_STEP, late))
                self.lead = min(_MAX_LEAD, max(0.0, self.lead + step))
            if held and (nxt is None or held[0][0] < nxt):
                nxt = held[0][0]
        return nxt

    def _send(self, direction: _Direction, frame: bytes) -> None:
        try:
            direction.dest.send(frame)
        except OSError:
            direction.counts.dropped += 1  # a full device queue, or the link is down

    def counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = {d.label: asdict(d.counts) for d in self.directions}
        late = sorted(self.lateness)
        if late:
            counts["lateness_us"] = {
                "median": round(late[len(late) // 2] * 1e6, 1),
                "p90": round(late[int(len(late) * 0.9)] * 1e6, 1),
                "samples": len(late),
            }
        return counts


def run(
    hops: list[Hop], seed: int, watch_port: int | None, report_fd: int | None, control_fd: int | None = None
) -> None:
    """Entry of the relay process: serve until SIGTERM, then report counts."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(1), 0, 0, 0)
    try:
        # The relay is the cable: like netem in the kernel, it must not wait
        # behind the programs it carries traffic for. Real-time priority
        # (RT throttling still caps it) keeps busy CPUs from adding delay.
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except (OSError, AttributeError):
        pass
    relay = Relay(hops, seed, watch_port)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, lambda *_: relay.stop())
    if report_fd is not None:
        os.write(report_fd, b'{"event": "ready"}\n')
    relay.serve(wake_r, control_fd)
    if report_fd is not None:
        os.write(report_fd, (json.dumps({"event": "counts", "counts": relay.counts()}) + "\n").encode())
