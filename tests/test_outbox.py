"""The monitor's outbox: consecutive entries of a stream travel as one batch, in order."""

from __future__ import annotations

import socket
from typing import Any

from dmvx.calls import Call, Outcome
from dmvx.messages import Ack, Entry, EntryBatch, EntryKind
from realmode import monitor_socket
from realmode.tracer.outbox import Outbox


def _entry(seq: int, stream: str = "0") -> Entry:
    return Entry(stream, seq, Call("getpid", ()), EntryKind.FULL, Outcome(7))


def _sent(outbox: Outbox, peer: socket.socket) -> list[tuple[int, Any]]:
    outbox.flush()
    reader = monitor_socket.RecordReader()
    return [(to, monitor_socket.decode(payload)) for to, payload in monitor_socket.receive(peer, reader)]


def test_consecutive_entries_go_as_one_batch_and_the_order_holds() -> None:
    mine, peer = socket.socketpair()
    with mine, peer:
        outbox = Outbox(mine, flush_delay=10.0)
        for seq in (1, 2, 3):
            outbox.send(monitor_socket.BROADCAST, _entry(seq), batch=True)
        outbox.send(0, Ack("0", 9, 1), batch=True)  # closes the batch before it
        outbox.send(monitor_socket.BROADCAST, _entry(4), batch=True)
        outbox.send(monitor_socket.BROADCAST, _entry(6), batch=True)  # not consecutive: a new one
        outbox.send(monitor_socket.BROADCAST, _entry(1, "0.1"), batch=True)  # another stream
        sent = _sent(outbox, peer)
    kinds = [
        (to, type(m).__name__, [e.seq for e in m.entries] if isinstance(m, EntryBatch) else m.seq) for to, m in sent
    ]
    assert kinds == [
        (monitor_socket.BROADCAST, "EntryBatch", [1, 2, 3]),
        (0, "Ack", 9),
        (monitor_socket.BROADCAST, "Entry", 4),
        (monitor_socket.BROADCAST, "Entry", 6),
        (monitor_socket.BROADCAST, "Entry", 1),
    ]


def test_an_entry_nobody_may_wait_for_waits_and_one_somebody_does_goes_at_once() -> None:
    mine, peer = socket.socketpair()
    with mine, peer:
        outbox = Outbox(mine, flush_delay=10.0)
        outbox.send(monitor_socket.BROADCAST, _entry(1), batch=True)
        assert outbox.pending and outbox.flush_at is not None
        outbox.send(monitor_socket.BROADCAST, _entry(2), batch=False)  # sent at once, after entry 1
        assert not outbox.pending
        peer.setblocking(False)
        reader = monitor_socket.RecordReader()
        got = [monitor_socket.decode(p) for _, p in monitor_socket.receive(peer, reader)]
    assert [(type(m).__name__, m.seq) for m in got] == [("Entry", 1), ("Entry", 2)]


def test_the_link_log_counts_a_batch_as_its_entries() -> None:
    """Net mode's link summary counts monitor messages: a batch of three
    entries is three messages (one frame), and the lead follows every entry."""
    from realmode.net import linklog

    batch = EntryBatch("0", tuple(_entry(seq) for seq in (1, 2, 3)))
    log = [
        (0.0, linklog.OUT, monitor_socket.encode(monitor_socket.BROADCAST, batch)),
        (0.5, linklog.IN, monitor_socket.encode(1, Ack("0", 3, 1))),
    ]
    summary = linklog.summarise(log, 0, 2)
    assert summary["links"]["1"]["messages_out"] == 3 and summary["links"]["1"]["messages_in"] == 1
    assert summary["lead"]["entries"] == 3 and summary["lead"]["max_calls"] == 3
