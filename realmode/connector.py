"""The CONNECTOR: one process per variant that carries monitor traffic between hosts.

It sits between its monitor (a local socketpair, :mod:`realmode.monitor_socket`) and
the other variants' CONNECTORs (TCP with ``TCP_NODELAY``), and speaks the
core's authenticated protocol (:mod:`dmvx.protocol`) on the network side:
every frame is sequenced, encrypted and authenticated (ChaCha20-Poly1305)
under a per-direction key derived from the link's session key, and each link opens with a :class:`~dmvx.protocol.Hello`.
The leader's CONNECTOR listens and every follower's connects: the core only
ever sends leader <-> follower, so that star is all the topology needed. A
connection gets a follower's slot only once it has passed the
challenge-response of :class:`~dmvx.protocol.Admission` under the run key;
strangers, silent connections and impostors are dropped and the wait goes
on, up to :data:`ADMISSION_TIMEOUT`.

Anything the protocol layer refuses (forged, replayed, reordered, garbage,
a peer that hangs up mid-run) becomes a :class:`~dmvx.messages.Stop` with the
matching verdict, handed to the local monitor, which halts its variant. A
variant is therefore never left running on a link nobody can trust.
"""

from __future__ import annotations

import os
import select
import socket
import time

from dmvx.actions import LEADER
from dmvx.hostcheck import arch_of_machine
from dmvx.messages import Stop
from dmvx.protocol import (
    Admission,
    AdmissionFailed,
    FrameReader,
    FrameWriter,
    Heartbeat,
    Hello,
    Join,
    ProtocolError,
    check_hello,
)
from dmvx.syscalls import Arch
from dmvx.verdict import Verdict, VerdictKind, variant_name
from realmode import isolation, monitor_socket

#: How long the leader's CONNECTOR waits for every follower to be admitted,
#: and a follower's for its admission, before the run ends (connector-lost).
ADMISSION_TIMEOUT = 10.0
#: How long one connection may take over its handshake before it is dropped
#: (a silent connection must not hold anything for long).
HANDSHAKE_TIMEOUT = 2.0
#: Connections in handshake at once; the oldest is dropped to make room, so
#: a flood of silent connections delays a real follower by one handshake at
#: most rather than locking it out.
MAX_PENDING = 16
#: The architecture each hello names: this machine's own, as ``uname -m``
#: says (an agent on an aarch64 board says aarch64), x86_64 if dmvx does not
#: know the name.
HOST_ARCH = arch_of_machine(os.uname().machine) or Arch.X86_64
#: The listen backlog the leader's listening socket is made with: room for
#: the followers' connections behind a few strangers'.
BACKLOG = 64


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


def run_connector(
    index: int,
    n: int,
    key: bytes | bytearray,
    run_id: str,
    monitor: socket.socket,
    listener: socket.socket | None,
    address: tuple[str, int] | None,
    admission_timeout: float = ADMISSION_TIMEOUT,
) -> None:
    """Serve until the monitor hangs up (the normal end) or a link fails.

    The leader's CONNECTOR (``listener`` given) admits followers one
    handshake at a time (:class:`~dmvx.protocol.Admission`) and closes the
    listener once every follower is in; a follower's connects to ``address``
    and proves itself (:class:`~dmvx.protocol.Join`). A wait that outlasts
    ``admission_timeout`` ends the run with ``connector-lost``, naming who
    is missing; the peers already in are served, so the stop reaches them."""
    isolation.shield()
    deadline = time.monotonic() + admission_timeout
    peers: dict[int, _Peer] = {}
    if index == LEADER:
        assert listener is not None
        admitted = _admit(listener, n, key, deadline)
        for number, (sock, session, rest) in sorted(admitted.items()):
            peer = _Peer(sock, session, LEADER, number)
            peers[number] = peer
            sock.sendall(peer.writer.encode(Hello(run_id, LEADER, HOST_ARCH)))
            if rest and not _feed(peer, rest, monitor, run_id):
                del peers[number]
                sock.close()
        missing = [i for i in range(1, n) if i not in admitted]
        if missing:
            names = ", ".join(variant_name(i) for i in missing)
            _lost(
                monitor, VerdictKind.CONNECTOR_LOST, f"no CONNECTOR proved to be {names} within {admission_timeout:g} s"
            )
            if not peers:
                _drain_until_closed(monitor)
                return
    else:
        if listener is not None:
            listener.close()  # only the leader's CONNECTOR listens
        assert address is not None
        joined = _join(index, key, address, deadline, monitor, admission_timeout)
        if joined is None:
            _drain_until_closed(monitor)
            return
        sock, session, rest = joined
        peer = _Peer(sock, session, index, LEADER)
        peers[LEADER] = peer
        sock.sendall(peer.writer.encode(Hello(run_id, index, HOST_ARCH)))
        if rest and not _feed(peer, rest, monitor, run_id):
            sock.close()
            _drain_until_closed(monitor)
            return
    _serve(index, peers, monitor, run_id)


def _admit(
    listener: socket.socket, n: int, key: bytes | bytearray, deadline: float
) -> dict[int, tuple[socket.socket, bytes, bytes]]:
    """Accept connections until every follower has authenticated or
    ``deadline`` passes; each admitted follower's socket, session key and
    the bytes it sent after its answer. Whoever fails the handshake, says
    nothing for :data:`HANDSHAKE_TIMEOUT`, or hangs up is dropped, and the
    wait goes on. The listener is closed on return."""
    waiting = set(range(1, n))
    admitted: dict[int, tuple[socket.socket, bytes, bytes]] = {}
    pending: dict[socket.socket, tuple[Admission, float]] = {}  # insertion order: oldest first

    def drop(conn: socket.socket) -> None:
        del pending[conn]
        conn.close()

    listener.setblocking(False)
    try:
        while waiting:
            now = time.monotonic()
            for conn, (_, until) in list(pending.items()):
                if now >= until:
                    drop(conn)
            if now >= deadline:
                break
            wake = min([deadline, *(until for _, until in pending.values())])
            readable, _, _ = select.select([listener, *pending], [], [], max(0.0, wake - now))
            for sock in readable:
                if sock is listener:
                    try:
                        conn, _ = listener.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        continue
                    conn.setblocking(True)
                    if len(pending) >= MAX_PENDING:
                        drop(next(iter(pending)))
                    admission = Admission(key, waiting)
                    try:
                        _nodelay(conn).sendall(admission.challenge)
                    except OSError:
                        conn.close()
                        continue
                    pending[conn] = (admission, time.monotonic() + HANDSHAKE_TIMEOUT)
                    continue
                if sock not in pending:
                    continue  # dropped earlier in this pass
                admission = pending[sock][0]
                try:
                    data = sock.recv(4096)
                    if not data:
                        drop(sock)
                        continue
                    variant = admission.receive(data)
                    if variant is None:
                        continue
                    assert admission.session_key is not None and admission.welcome is not None
                    sock.sendall(admission.welcome)
                except (AdmissionFailed, OSError):
                    drop(sock)  # a stranger or an impostor: its slot stays free
                    continue
                del pending[sock]
                waiting.discard(variant)
                admitted[variant] = (sock, admission.session_key, admission.rest)
    finally:
        listener.close()
        for conn in list(pending):
            conn.close()
    return admitted


def _join(
    index: int,
    key: bytes | bytearray,
    address: tuple[str, int],
    deadline: float,
    monitor: socket.socket,
    timeout: float,
) -> tuple[socket.socket, bytes, bytes] | None:
    """Connect to the leader's CONNECTOR and pass its challenge; None (the
    monitor told why) if that fails or outlasts ``deadline``."""
    join = Join(key, index)
    where = f"the leader's CONNECTOR at {address[0]}:{address[1]}"
    try:
        sock = socket.create_connection(address, timeout=max(0.001, deadline - time.monotonic()))
    except OSError as error:
        _lost(monitor, VerdictKind.CONNECTOR_LOST, f"cannot reach {where}: {error.strerror or error}")
        return None
    try:
        _nodelay(sock)
        while join.session_key is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            data = sock.recv(4096)
            if not data:
                raise ConnectionResetError(f"{where} hung up during the handshake")
            sent = join.answer
            join.receive(data)
            if join.answer is not None and sent is None:
                sock.sendall(join.answer)
        sock.settimeout(None)
    except AdmissionFailed as error:
        sock.close()
        _lost(monitor, VerdictKind.AUTH_FAILURE, f"link to {where}: {error}")
        return None
    except TimeoutError:
        sock.close()
        _lost(monitor, VerdictKind.CONNECTOR_LOST, f"{where} did not admit {variant_name(index)} within {timeout:g} s")
        return None
    except OSError as error:
        sock.close()
        _lost(monitor, VerdictKind.CONNECTOR_LOST, f"{where}: {error.strerror or error}")
        return None
    return sock, join.session_key, join.rest


def _lost(monitor: socket.socket, kind: VerdictKind, detail: str) -> None:
    try:
        monitor.sendall(monitor_socket.encode(LEADER, Stop("0", Verdict(kind, 0, detail=detail))))
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
                out.append(monitor_socket.encode_record(peer.peer, b""))
            elif isinstance(frame, Hello):
                raise ProtocolError("a second hello on an open link")
            else:
                out.append(monitor_socket.encode_record(peer.peer, record))
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
    reader = monitor_socket.RecordReader()
    by_sock = {p.sock: p for p in peers.values()}
    while True:
        readable, _, _ = select.select([monitor, *by_sock], [], [])
        for sock in readable:
            if sock is monitor:
                try:
                    records = monitor_socket.receive(monitor, reader)
                except (monitor_socket.SocketClosed, OSError):
                    for peer in peers.values():
                        peer.sock.close()
                    return
                batches: dict[int, list[bytes]] = {}
                for dest, payload in records:
                    targets = (
                        peers.values() if dest == monitor_socket.BROADCAST else [peers[dest]] if dest in peers else []
                    )
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
