"""Batching what a monitor process sends to its CONNECTOR.

Entries of asynchronous calls and acknowledgements are sent in batches (one
write per batch, at the latest after ``flush_delay``); anything somebody may
be waiting for goes at once.

Consecutive entries of one stream to one destination travel as one
:class:`~dmvx.messages.EntryBatch` (one link record, so one CONNECTOR frame,
one encryption and one decode at each hop instead of one per entry): a
leader whose in-process ring hands its core thousands of calls a second
sends them so. The order of everything sent stays the order of
:meth:`Outbox.send`: another message closes the batch open before it.
"""

from __future__ import annotations

import socket
import time

from dmvx.codec import MAX_BATCH
from dmvx.messages import Entry, EntryBatch, Message, StarvedNote
from realmode import monitor_socket

#: A batch this big goes at once.
_BATCH_BYTES = 1 << 16
#: Entries packed into one EntryBatch at most (well under the codec's bound,
#: so that a follower gets the first ones without waiting for a huge frame).
_BATCH_ENTRIES = min(512, MAX_BATCH)


class Outbox:
    """Link records waiting to be written to the CONNECTOR in one go."""

    def __init__(self, sock: socket.socket, flush_delay: float) -> None:
        self.sock = sock
        self.flush_delay = flush_delay
        self.records: list[bytes] = []
        self.size = 0
        #: When the open batch must go at the latest (None: no batch open).
        self.flush_at: float | None = None
        #: Consecutive entries of one stream for ``_entries_to``, not yet encoded.
        self._entries: list[Entry] = []
        self._entries_to = 0

    @property
    def pending(self) -> bool:
        """Whether anything waits to be written."""
        return bool(self.records or self._entries)

    def send(self, to: int, message: Message | StarvedNote | None, batch: bool = False) -> None:
        """Send ``message`` (None: a heartbeat) to variant ``to``; with
        ``batch``, it may wait up to ``flush_delay`` for company."""
        if batch and type(message) is Entry:
            entries = self._entries
            if entries:
                last = entries[-1]
                if to != self._entries_to or message.stream != last.stream or message.seq != last.seq + 1:
                    self._close_entries()
            if not entries:
                self._entries_to = to
            entries.append(message)
            self.size += message.size
            if len(entries) >= _BATCH_ENTRIES:
                self._close_entries()
        else:
            self._close_entries()
            record = monitor_socket.encode(to, message)
            self.records.append(record)
            self.size += len(record)
        if not batch or self.size >= _BATCH_BYTES:
            self.flush()
        elif self.flush_at is None:
            self.flush_at = time.monotonic() + self.flush_delay

    def send_entries(self, to: int, entries: list[Entry]) -> None:
        """:meth:`send` with ``batch`` of each of ``entries`` -- consecutive
        entries of one stream, a run of equal calls -- in one go: the open
        batch takes as many as it has room for, and so on."""
        if not entries:
            return
        first = entries[0]
        open_ = self._entries
        if open_:
            last = open_[-1]
            if to != self._entries_to or first.stream != last.stream or first.seq != last.seq + 1:
                self._close_entries()
        at = 0
        while at < len(entries):
            if not open_:
                self._entries_to = to
            room = _BATCH_ENTRIES - len(open_)
            part = entries[at : at + room]
            open_ += part
            self.size += sum(entry.size for entry in part)
            at += len(part)
            if len(open_) >= _BATCH_ENTRIES:
                self._close_entries()
            if self.size >= _BATCH_BYTES:
                self.flush()
        if self.flush_at is None and self.pending:
            self.flush_at = time.monotonic() + self.flush_delay

    def _close_entries(self) -> None:
        """The open run of entries becomes one link record."""
        entries = self._entries
        if not entries:
            return
        message = entries[0] if len(entries) == 1 else EntryBatch(entries[0].stream, tuple(entries))
        self.records.append(monitor_socket.encode(self._entries_to, message))
        entries.clear()

    def flush(self) -> None:
        self.flush_at = None
        self._close_entries()
        if not self.records:
            return
        data = b"".join(self.records)
        self.records.clear()
        self.size = 0
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the CONNECTOR is gone; the peers see the link drop
