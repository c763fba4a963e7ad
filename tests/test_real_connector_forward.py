"""Real mode: a follower's CONNECTOR passes a batch of the leader's entries
on unread, and its monitor, which decodes it anyway, refuses a bad one with
the verdict the CONNECTOR gives a bad frame (``connector.FORWARDED``).

The CONNECTOR decoded every batch only to check it, and the monitor decoded
it again: on lighttpd four fifths of the follower's CONNECTOR's Python.
"""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

import pytest

from dmvx import codec
from dmvx.calls import Call, Outcome
from dmvx.messages import Entry, EntryBatch, EntryKind, Stop
from dmvx.verdict import Verdict, VerdictKind
from realmode import connector, monitor_socket
from realmode.tracer.process import TracerProcess

KEY = bytes(range(32))
BATCH = EntryBatch(
    "0",
    (
        Entry("0", 1, Call("read", (3, 4096)), EntryKind.FULL, Outcome(5, ((1, b"hello"),))),
        Entry("0", 2, Call("close", (3,)), EntryKind.FULL, Outcome(0)),
    ),
)
#: An authentic frame can carry it (the leader's CONNECTOR frames its
#: monitor's records as they are), but it is no batch: a byte past the encoding.
BAD = codec.dumps(BATCH) + b"\x00"


@pytest.fixture(autouse=True)
def _unshielded(monkeypatch):
    """CONNECTORs in threads of this process: no shield raised on pytest."""
    monkeypatch.setattr(connector.isolation, "shield", lambda: None)


def _through_the_link(records: list[bytes]) -> list[tuple[int, bytes]]:
    """``records`` from the leader's monitor to follower 1's, through both
    CONNECTORs (threads, loopback): what the follower's monitor receives."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=connector.BACKLOG)
    address = listener.getsockname()[:2]
    mon, mon_theirs = socket.socketpair()
    f_mon, f_theirs = socket.socketpair()
    threads = [
        threading.Thread(
            target=connector.run_connector, args=(0, 2, KEY, "run", mon_theirs, listener, None), daemon=True
        ),
        threading.Thread(target=connector.run_connector, args=(1, 2, KEY, "run", f_theirs, None, address), daemon=True),
    ]
    for thread in threads:
        thread.start()
    got: list[tuple[int, bytes]] = []
    try:
        mon.sendall(b"".join(monitor_socket.encode_record(1, record) for record in records))
        reader = monitor_socket.RecordReader()
        f_mon.settimeout(10)
        while len(got) < len(records) and not any(codec.loads(p).__class__ is Stop for _, p in got if p):
            got += monitor_socket.receive(f_mon, reader)
    finally:
        for sock in (mon, f_mon):
            sock.close()
        for thread in threads:
            thread.join(5)
        mon_theirs.close()
        f_theirs.close()
    assert not any(thread.is_alive() for thread in threads)
    return got


def test_a_batch_reaches_the_followers_monitor_as_the_leaders_monitor_sent_it() -> None:
    good = codec.dumps(BATCH)
    assert _through_the_link([good]) == [(0, good)]


def test_a_bad_batch_reaches_the_monitor_unread_and_ends_the_run_there() -> None:
    got = _through_the_link([BAD])
    assert got == [(0, BAD)]  # passed on, not a Stop from the CONNECTOR (before: its verdict)
    # The follower's monitor reads it: the verdict the CONNECTOR gave before.
    link, theirs = socket.socketpair()
    halted: list[Verdict] = []
    tracer = SimpleNamespace(
        link=link, link_reader=monitor_socket.RecordReader(), finished=False, leader=False, index=1, procs={}
    )

    def halt(verdict: Verdict) -> None:
        halted.append(verdict)
        tracer.finished = True

    tracer.halt = halt
    try:
        theirs.sendall(monitor_socket.encode_record(0, BAD))
        TracerProcess._read_link(tracer)  # type: ignore[arg-type]
    finally:
        link.close()
        theirs.close()
    with pytest.raises(codec.CodecError) as refused:
        codec.loads(BAD)
    assert halted == [Verdict(VerdictKind.PROTOCOL_ERROR, 0, detail=f"link to variant 0: {refused.value}")]


def test_a_bad_message_of_another_kind_is_still_refused_by_the_connector() -> None:
    cut = codec.dumps(BATCH.entries[0])[:-1]  # an entry cut short: not forwarded
    [(_, record)] = _through_the_link([cut])
    stop = codec.loads(record)
    assert isinstance(stop, Stop) and stop.verdict.kind is VerdictKind.PROTOCOL_ERROR
    assert "link to variant 0" in stop.verdict.detail
