"""What crossed a CONNECTOR's links, and how far the leader ran ahead.

A net-mode CONNECTOR process wraps its end of the monitor link in
:class:`LoggedLink`, which notes the time and bytes of every chunk between
monitor and CONNECTOR (one list append per chunk; decoding waits until the
run is over). Every record on that link is one frame on the network, so
:func:`summarise` can count the messages (a batch of entries as the
entries it carries) and frame bytes per peer, and -- on
the leader's side -- follow the entries sent and the acknowledgements
received to measure the leader's lead: in compared calls (the entry sent
last minus the highest acknowledged) and in time (how long after sending an
entry the leader learned that every follower had consumed it). The
CONNECTOR sees an entry a moment after its monitor sent it and an
acknowledgement a moment before its monitor reads it, so the lead measured
here is never larger than the lead the leader's monitor itself had.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from dmvx import codec
from dmvx.messages import Ack, Entry, EntryBatch, EntryKind, Report
from dmvx.protocol import FRAME_OVERHEAD
from realmode import monitor_socket

if TYPE_CHECKING:
    from typing_extensions import Buffer

OUT, IN = 0, 1
_RECORD_CODES = {codec.TYPE_ENTRY, codec.TYPE_ENTRY_BATCH, codec.TYPE_ACK, codec.TYPE_REPORT}
_CB_KINDS = frozenset({EntryKind.FULL, EntryKind.DIGEST, EntryKind.PREDICTED})


class LoggedLink(socket.socket):
    """A CONNECTOR's end of the monitor link that remembers what passed."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(fileno=sock.detach())
        self.log: list[tuple[float, int, bytes]] = []

    def recv(self, bufsize: int, flags: int = 0) -> bytes:  # from the monitor: outgoing
        data = super().recv(bufsize, flags)
        if data:
            self.log.append((time.monotonic(), OUT, data))
        return data

    def recv_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0) -> int:  # from the monitor: outgoing
        """As :meth:`recv`: :func:`monitor_socket.receive` reads into the
        reader's own buffer, and what it read must be logged as well."""
        got = super().recv_into(buffer, nbytes, flags)
        if got:
            with memoryview(buffer) as view:
                self.log.append((time.monotonic(), OUT, bytes(view[:got])))
        return got

    def sendall(self, data: Buffer, flags: int = 0) -> None:  # to the monitor: incoming
        self.log.append((time.monotonic(), IN, bytes(data)))
        super().sendall(data, flags)


def _records(log: list[tuple[float, int, bytes]]) -> list[tuple[float, int, int, bytes]]:
    """(time, direction, peer, payload) per link record, in order."""
    readers = {OUT: monitor_socket.RecordReader(), IN: monitor_socket.RecordReader()}
    out = []
    for when, direction, data in log:
        for peer, payload in readers[direction].feed(data):
            out.append((when, direction, peer, payload))
    return out


def summarise(log: list[tuple[float, int, bytes]], index: int, n_variants: int) -> dict[str, Any]:
    """Counts per peer and, for the leader (index 0), the lead."""
    peers = [p for p in range(n_variants) if p != index] if index == 0 else [0]
    counts = {
        p: {
            "messages_out": 0,
            "messages_in": 0,
            "heartbeats_out": 0,
            "heartbeats_in": 0,
            "frame_bytes_out": 0,
            "frame_bytes_in": 0,
        }
        for p in peers
    }
    sent: dict[int, float] = {}
    in_cb: deque[int] = deque()  # buffered (asynchronous) entries not yet acknowledged by all
    acked = dict.fromkeys(peers, 0)
    last_sent = 0
    max_lead = 0
    max_cb = 0
    waits: list[float] = []
    pending: deque[int] = deque()  # sequence numbers sent and not yet acknowledged by all, in order
    for when, direction, peer, payload in _records(log):
        targets = peers if (direction == OUT and peer == monitor_socket.BROADCAST) else [peer]
        size = FRAME_OVERHEAD + max(0, len(payload) - 1)
        key = "out" if direction == OUT else "in"
        # A batch of entries counts as the entries it carries (one frame).
        batch = codec.loads(payload) if payload and payload[0] == codec.TYPE_ENTRY_BATCH else None
        for target in targets:
            if target in counts:
                counts[target][("heartbeats_" if not payload else "messages_") + key] += (
                    len(batch.entries) if isinstance(batch, EntryBatch) else 1
                )
                counts[target][f"frame_bytes_{key}"] += size
        if index != 0 or not payload or payload[0] not in _RECORD_CODES:
            continue
        message = codec.loads(payload)
        if direction == OUT and isinstance(message, (Entry, EntryBatch)):
            for entry in message.entries if isinstance(message, EntryBatch) else (message,):
                if entry.seq not in sent:
                    sent[entry.seq] = when
                    pending.append(entry.seq)
                    if entry.kind in _CB_KINDS:
                        in_cb.append(entry.seq)
                last_sent = max(last_sent, entry.seq)
        elif direction == IN and isinstance(message, (Ack, Report)):
            seq = message.seq if isinstance(message, Ack) else message.seq - 1
            if peer in acked and seq > acked[peer]:
                acked[peer] = seq
                low = min(acked.values())
                while pending and pending[0] <= low:
                    waits.append(when - sent[pending.popleft()])
                while in_cb and in_cb[0] <= low:
                    in_cb.popleft()
        low = min(acked.values()) if acked else 0
        max_lead = max(max_lead, last_sent - low)
        max_cb = max(max_cb, len(in_cb))
    summary: dict[str, Any] = {"variant": index, "links": {str(p): c for p, c in counts.items()}}
    if index == 0:
        summary["lead"] = {
            "max_calls": max_lead,
            "max_cb_entries": max_cb,
            "max_seconds": round(max(waits), 6) if waits else 0.0,
            "median_seconds": round(statistics.median(waits), 6) if waits else 0.0,
            "entries": len(sent),
        }
    return summary
