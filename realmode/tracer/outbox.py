"""Batching what a monitor process sends to its CONNECTOR.

Entries of asynchronous calls and acknowledgements are sent in batches (one
write per batch, at the latest after ``flush_delay``); anything somebody may
be waiting for goes at once.
"""

from __future__ import annotations

import socket
import time

from dmvx.messages import Message
from realmode import monitor_socket

#: A batch this big goes at once.
_BATCH_BYTES = 1 << 16


class Outbox:
    """Link records waiting to be written to the CONNECTOR in one go."""

    def __init__(self, sock: socket.socket, flush_delay: float) -> None:
        self.sock = sock
        self.flush_delay = flush_delay
        self.records: list[bytes] = []
        self.size = 0
        #: When the open batch must go at the latest (None: no batch open).
        self.flush_at: float | None = None

    def send(self, to: int, message: Message | None, batch: bool = False) -> None:
        """Send ``message`` (None: a heartbeat) to variant ``to``; with
        ``batch``, it may wait up to ``flush_delay`` for company."""
        record = monitor_socket.encode(to, message)
        self.records.append(record)
        self.size += len(record)
        if not batch or self.size >= _BATCH_BYTES:
            self.flush()
        elif self.flush_at is None:
            self.flush_at = time.monotonic() + self.flush_delay

    def flush(self) -> None:
        self.flush_at = None
        if not self.records:
            return
        data = b"".join(self.records)
        self.records.clear()
        self.size = 0
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the CONNECTOR is gone; the peers see the link drop
