"""The CONNECTOR: one process per variant that carries monitor traffic between hosts.

It sits between its monitor (a local socketpair, :mod:`realmode.link`) and
the other variants' CONNECTORs (TCP with ``TCP_NODELAY``), and speaks the
core's authenticated protocol (:mod:`dmvx.protocol`) on the network side:
every frame is sequenced and HMAC-tagged under a per-direction key derived
from the run key, and each link opens with a :class:`~dmvx.protocol.Hello`.
The leader's CONNECTOR listens and every follower's connects: the core only
ever sends leader <-> follower, so that star is all the topology needed.

Anything the protocol layer refuses (forged, replayed, reordered, garbage,
a peer that hangs up mid-run) becomes a :class:`~dmvx.messages.Stop` with the
matching verdict, handed to the local monitor, which halts its variant. A
variant is therefore never left running on a link nobody can trust.
"""

from __future__ import annotations

import select
import socket

from dmvx.messages import Stop
from dmvx.protocol import (
    HEADER_SIZE,
    FrameReader,
    FrameWriter,
    Heartbeat,
    Hello,
    ProtocolError,
    check_hello,
)
from dmvx.syscalls import Arch
from dmvx.verdict import Verdict, VerdictKind
from realmode import link

LEADER = 0


class _Peer:
    def __init__(self, sock: socket.socket, key: bytes, me: int, peer: int) -> None:
        self.sock = sock
        self.peer = peer
        self.reader = FrameReader(key, peer, me)
        self.writer = FrameWriter(key, me, peer)
        self.greeted = False


def _nodelay(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run_connector(index: int, n: int, key: bytes, run_id: str, monitor: socket.socket,
                  listener: socket.socket | None, address: tuple[str, int] | None) -> None:
    """Serve until the monitor hangs up (the normal end) or a link fails."""
    peers: dict[int, _Peer] = {}
    if index == LEADER:
        assert listener is not None
        pending = []
        while len(peers) < n - 1:
            conn, _ = listener.accept()
            _nodelay(conn)
            head = b""
            while len(head) < HEADER_SIZE:
                chunk = conn.recv(HEADER_SIZE - len(head))
                if not chunk:
                    break
                head += chunk
            sender = int.from_bytes(head[16:20], "big") if len(head) == HEADER_SIZE else -1
            if not 1 <= sender < n or sender in peers:
                conn.close()  # not one of ours: the frame cannot authenticate anyway
                continue
            peer = _Peer(conn, key, LEADER, sender)
            peers[sender] = peer
            pending.append((peer, head))
        listener.close()
        for peer, head in pending:
            peer.sock.sendall(peer.writer.encode(Hello(run_id, LEADER, Arch.X86_64)))
            _feed(peer, head, monitor, run_id)
    else:
        assert address is not None
        sock = _nodelay(socket.create_connection(address))
        peer = _Peer(sock, key, index, LEADER)
        peers[LEADER] = peer
        sock.sendall(peer.writer.encode(Hello(run_id, index, Arch.X86_64)))
    _serve(index, peers, monitor, run_id)


def _lost(monitor: socket.socket, kind: VerdictKind, detail: str) -> None:
    try:
        monitor.sendall(link.encode(LEADER, Stop("0", Verdict(kind, 0, detail=detail))))
    except OSError:
        pass


def _feed(peer: _Peer, data: bytes, monitor: socket.socket, run_id: str) -> bool:
    """Pass ``data`` from ``peer`` through the protocol to the monitor, in
    one write; False once the link is done."""
    out: list[bytes] = []
    try:
        peer.reader.feed(data)
        # Each message is decoded by the reader (so a bad one ends the link
        # here) and passed on as the record it came as, not encoded again.
        for frame, record in peer.reader.records():
            if not peer.greeted:
                check_hello(frame, run_id=run_id, variant=peer.peer)
                peer.greeted = True
            elif isinstance(frame, Heartbeat):
                out.append(link.encode_record(peer.peer, b""))
            elif isinstance(frame, Hello):
                raise ProtocolError("a second hello on an open link")
            else:
                out.append(link.encode_record(peer.peer, record))
    except ProtocolError as error:
        if out:
            monitor.sendall(b"".join(out))  # what arrived before the bad frame is genuine
        kind = getattr(error, "verdict_kind", VerdictKind.PROTOCOL_ERROR)
        _lost(monitor, kind, f"link to variant {peer.peer}: {error}")
        return False
    if out:
        monitor.sendall(b"".join(out))
    return True


def _serve(index: int, peers: dict[int, _Peer], monitor: socket.socket, run_id: str) -> None:
    reader = link.LinkReader()
    by_sock = {p.sock: p for p in peers.values()}
    while True:
        readable, _, _ = select.select([monitor, *by_sock], [], [])
        for sock in readable:
            if sock is monitor:
                try:
                    records = link.receive(monitor, reader)
                except (link.LinkClosed, OSError):
                    for peer in peers.values():
                        peer.sock.close()
                    return
                batches: dict[int, list[bytes]] = {}
                for dest, payload in records:
                    targets = peers.values() if dest == link.BROADCAST else [peers[dest]] if dest in peers else []
                    # The monitor's record is framed as it is: no decoding
                    # and encoding again on the way out.
                    for peer in targets:
                        frame = peer.writer.encode_record(payload) if payload else peer.writer.heartbeat()
                        batches.setdefault(peer.peer, []).append(frame)
                for number, frames in batches.items():
                    try:
                        peers[number].sock.sendall(b"".join(frames))  # one write per batch
                    except OSError:
                        pass  # the peer is gone; its reading side reports it
                continue
            peer = by_sock[sock]
            try:
                data = sock.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                peer.reader.close()
                try:
                    list(peer.reader)
                except ProtocolError as error:
                    _lost(monitor, getattr(error, "verdict_kind", VerdictKind.CONNECTOR_LOST), str(error))
                else:
                    _lost(monitor, VerdictKind.CONNECTOR_LOST, f"variant {peer.peer}'s CONNECTOR hung up")
                del by_sock[sock]
                sock.close()
                if not by_sock:
                    _drain_until_closed(monitor)
                    return
                continue
            if not _feed(peer, data, monitor, run_id):
                del by_sock[sock]
                sock.close()


def _drain_until_closed(monitor: socket.socket) -> None:
    """Every peer is gone: wait for the monitor to finish, then leave."""
    try:
        while monitor.recv(1 << 16):
            pass
    except OSError:
        pass
