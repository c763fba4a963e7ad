"""Real mode: a CONNECTOR gives a slot only to a peer that authenticated.

The red team's attacks on the leader CONNECTOR's listening socket -- a
silent connection, garbage, a frame header claiming to be follower 1, an
answer replayed from another connection -- each arrive before the real
follower does. Each is dropped and the run goes on; a wait for a follower
that never comes ends with a clear ``connector-lost``; followers do not
keep the leader's listening socket.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from dmvx import codec
from dmvx.messages import Stop
from dmvx.protocol import MAGIC, PROTOCOL_VERSION, Admission, FrameWriter, Hello, Join
from dmvx.syscalls import Arch
from dmvx.verdict import VerdictKind
from realmode import connector, isolation, monitor_socket
from realmode import orchestrator as orch
from test_real_support import captured, no_strays  # noqa: F401 - fixture

#: How every handshake message begins: magic and protocol version.
_HS = MAGIC + bytes([PROTOCOL_VERSION])

KEY = bytes(range(32))


def _attacks(address: tuple[str, int]) -> list[socket.socket]:
    """Connect the four attacks of the red team to ``address``; the sockets
    (kept open: a silent connection that closed would prove nothing)."""
    recorded = Join(KEY, 1)  # a genuine answer, to another connection's challenge
    recorded.receive(Admission(KEY, {1}).challenge)
    claims_follower_1 = FrameWriter(bytes(32), 1, 0).encode(Hello("run", 1, Arch.X86_64))
    socks = []
    for payload in (None, b"GET / HTTP/1.0\r\n\r\n" * 8, claims_follower_1, recorded.answer):
        sock = socket.create_connection(address)
        if payload is not None:
            sock.sendall(payload)
        socks.append(sock)
    return socks


@pytest.fixture(autouse=True)
def _unshielded(request, monkeypatch):
    """The CONNECTOR tests here run CONNECTORs in threads of this process:
    its shield (an unprivileged uid, not dumpable; realmode.isolation) would
    be raised on pytest itself. The runs through ``dmvx run`` keep it."""
    if "dmvx_run" not in request.node.name and "listening_socket" not in request.node.name:
        monkeypatch.setattr(connector.isolation, "shield", lambda: None)


def _leader_in_thread(n: int, listener: socket.socket, timeout: float = connector.ADMISSION_TIMEOUT):
    ours, theirs = socket.socketpair()
    thread = threading.Thread(
        target=connector.run_connector, args=(0, n, KEY, "run", theirs, listener, None, timeout), daemon=True
    )
    thread.start()
    return ours, theirs, thread


def _records(sock: socket.socket, timeout: float) -> list[tuple[int, bytes]]:
    reader = monitor_socket.RecordReader()
    sock.settimeout(timeout)
    return monitor_socket.receive(sock, reader)


#: The handshake timeout in the tests that show a silent connection holds
#: nothing up (s): held up, the follower or the run would take at least
#: this; not held up, under 1 s on a quiet machine. The real 2 s left a
#: loaded machine too little room between the two.
_SLOW_HANDSHAKE = 10.0


def test_attackers_first_then_the_real_follower_gets_its_slot(monkeypatch) -> None:
    monkeypatch.setattr(connector, "HANDSHAKE_TIMEOUT", _SLOW_HANDSHAKE)
    listener = socket.create_server(("127.0.0.1", 0), backlog=connector.BACKLOG)
    address = listener.getsockname()[:2]
    attackers = _attacks(address)
    mon, mon_theirs, thread = _leader_in_thread(2, listener)
    f_mon, f_theirs = socket.socketpair()
    follower = threading.Thread(
        target=connector.run_connector, args=(1, 2, KEY, "run", f_theirs, None, address), daemon=True
    )
    started = time.monotonic()
    follower.start()
    try:
        # A record from the follower's monitor reaches the leader's monitor:
        # the link is up, and it is the follower's.
        f_mon.sendall(monitor_socket.encode_record(0, b""))  # a heartbeat to the leader
        got = _records(mon, 5.0)
        assert got == [(1, b"")], got
        assert time.monotonic() - started < connector.HANDSHAKE_TIMEOUT  # not held up by the silent one
        # The listener is closed once every follower is in.
        with pytest.raises(OSError):
            socket.create_connection(address, timeout=1).close()
    finally:
        for sock in (*attackers, mon, f_mon):
            sock.close()
        thread.join(5)
        follower.join(5)
        mon_theirs.close()
        f_theirs.close()
    assert not thread.is_alive() and not follower.is_alive()


def test_the_attackers_were_dropped() -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=connector.BACKLOG)
    address = listener.getsockname()[:2]
    attackers = _attacks(address)
    mon, mon_theirs, thread = _leader_in_thread(2, listener)
    try:
        for sock in attackers[1:]:  # the ones that spoke are cut at once
            sock.settimeout(3)
            data = sock.recv(4096)  # the challenge
            assert data.startswith(_HS + b"C")
            assert sock.recv(4096) == b""  # then the hang-up, never a welcome
        silent = attackers[0]
        silent.settimeout(connector.HANDSHAKE_TIMEOUT + 3)
        assert silent.recv(4096).startswith(_HS + b"C")
        assert silent.recv(4096) == b""  # dropped after HANDSHAKE_TIMEOUT
    finally:
        for sock in (*attackers, mon):
            sock.close()
        thread.join(connector.ADMISSION_TIMEOUT + 2)
        mon_theirs.close()


def test_a_follower_that_never_comes_ends_the_wait_with_a_clear_verdict() -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=connector.BACKLOG)
    attackers = _attacks(listener.getsockname()[:2])
    mon, mon_theirs, thread = _leader_in_thread(3, listener, timeout=0.5)
    try:
        [(_, record)] = _records(mon, 5.0)
        stop = codec.loads(record)
        assert isinstance(stop, Stop) and stop.verdict.kind is VerdictKind.CONNECTOR_LOST
        assert stop.verdict.detail == "no CONNECTOR proved to be follower 1, follower 2 within 0.5 s"
    finally:
        for sock in (*attackers, mon):
            sock.close()
        thread.join(5)
        mon_theirs.close()
    assert not thread.is_alive()


def test_a_follower_refuses_an_impostor_leader() -> None:
    impostor = socket.create_server(("127.0.0.1", 0))
    f_mon, f_theirs = socket.socketpair()
    follower = threading.Thread(
        target=connector.run_connector, args=(1, 2, KEY, "run", f_theirs, None, impostor.getsockname()[:2]), daemon=True
    )
    follower.start()
    conn, _ = impostor.accept()
    try:
        conn.sendall(Admission(bytes(32), {1}).challenge)
        assert conn.recv(4096).startswith(_HS + b"R")
        conn.sendall(_HS + b"W" + bytes(32))
        [(_, record)] = _records(f_mon, 5.0)
        stop = codec.loads(record)
        assert isinstance(stop, Stop), stop
        assert stop.verdict.kind is VerdictKind.AUTH_FAILURE and "welcome does not authenticate" in stop.verdict.detail
    finally:
        conn.close()
        impostor.close()
        f_mon.close()
        follower.join(5)
        f_theirs.close()


@pytest.mark.root
@pytest.mark.usefixtures("no_strays")
@pytest.mark.parametrize("n", [2, 3])
def test_dmvx_run_survives_the_attacks_on_its_listening_socket(monkeypatch, tmp_path, n: int) -> None:
    """``dmvx run`` end to end: the attacks reach the leader CONNECTOR's
    listening socket before any follower does, and the run ends as it would
    without them."""
    real_create_server = socket.create_server
    held: list[socket.socket] = []

    def create_server(address, **kwargs):
        listener = real_create_server(address, **kwargs)
        held.extend(_attacks(listener.getsockname()[:2]))
        return listener

    monkeypatch.setattr(connector, "HANDSHAKE_TIMEOUT", _SLOW_HANDSHAKE)
    key_file = tmp_path / "run.key"  # the run's key is one the attacker recorded an answer under
    key_file.write_bytes(KEY)
    monkeypatch.setattr(isolation.RunKey, "source", str(key_file))
    monkeypatch.setattr(orch.socket, "create_server", create_server)
    try:
        result, out, _ = captured(lambda: orch.run([["/bin/echo", "hi"]] * n, "dmvx"))
    finally:
        for sock in held:
            sock.close()
    assert len(held) == 4
    assert result.verdict is None and result.error is None, result.verdict
    assert result.program_status == 0 and out == b"hi\n"
    assert result.elapsed < _SLOW_HANDSHAKE  # not held up by the silent one


@pytest.mark.root
@pytest.mark.usefixtures("no_strays")
def test_followers_do_not_keep_the_leaders_listening_socket(monkeypatch) -> None:
    """Only the leader's CONNECTOR holds the listening socket, and only until
    the followers are in: in the middle of a run, no process of it listens."""
    seen: list[set[int]] = []
    real_collect = orch.reports.collect

    def collect(*args, **kwargs):
        # Once every follower is in, which a loaded machine may take a while
        # to get to (a fixed 0.5 s was the whole wait before): the variants
        # sleep 5 s, so this is still the middle of the run.
        deadline = time.monotonic() + 4
        while (listening := _listening_pids(_children_of(os.getpid()))) and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(listening)
        return real_collect(*args, **kwargs)

    monkeypatch.setattr(orch.reports, "collect", collect)
    result, _, _ = captured(lambda: orch.run([["/bin/sleep", "5"]] * 3, "dmvx"))
    assert result.verdict is None and result.error is None
    assert seen == [set()]


def _children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


def _listening_pids(pids: list[int]) -> set[int]:
    """Which of ``pids`` hold a listening TCP socket."""
    listening = set()
    with open("/proc/net/tcp") as handle:
        next(handle)
        inodes = {line.split()[9] for line in handle if line.split()[3] == "0A"}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    listening.add(pid)
        except FileNotFoundError:
            continue
    return listening
