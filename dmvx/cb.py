"""The connector buffer (CB): entries the leader has produced and not every
follower has consumed yet.

In dMVX the CB is a ring buffer between DIP-MON and the CONNECTOR; its size
is what bounds asynchronous replication. Here it is accounting, not storage:
the leader may run ahead on replicated calls while the CB has room (in
entries *and* bytes) and waits when it is full. A follower's cumulative
acknowledgement frees the entries every follower has consumed.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from dmvx.calls import Call, Outcome


class ConnectorBuffer:
    """Bounded FIFO accounting of unacknowledged entries."""

    __slots__ = (
        "capacity_entries",
        "capacity_bytes",
        "_entries",
        "_count",
        "_bytes",
        "max_entries",
        "max_bytes",
        "_samples",
        "_sample_sum",
        "full",
    )

    def __init__(self, capacity_entries: int, capacity_bytes: int) -> None:
        if capacity_entries < 1 or capacity_bytes < 1:
            raise ValueError("connector buffer capacity must be at least one entry and one byte")
        self.capacity_entries = capacity_entries
        self.capacity_bytes = capacity_bytes
        #: Runs of consecutive entries of one size, call and outcome,
        #: ``[first seq, last seq, size, call, outcome]``: a leader repeating
        #: one call pushes a run of them at once (:meth:`push_run`).
        self._entries: deque[list[Any]] = deque()
        self._count = 0
        self._bytes = 0
        self.max_entries = 0
        self.max_bytes = 0
        self._samples = 0
        self._sample_sum = 0
        #: ``not has_room()``, kept up to date by :meth:`push` and
        #: :meth:`release_upto`: the leader asks at every replicated call,
        #: and reading an attribute costs a fraction of a method call.
        self.full = False

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    def has_room(self, size: int = 0) -> bool:
        """Room for one more entry of ``size`` bytes.

        An entry larger than the whole byte capacity still fits into an
        empty buffer: otherwise one big read would stop the leader forever.
        """
        count = self._count
        if not count:
            return True
        return count < self.capacity_entries and self._bytes + size <= self.capacity_bytes

    def push(self, seq: int, size: int, call: Call, outcome: Outcome | None = None) -> None:
        self._entries.append([seq, seq, size, call, outcome])
        occupancy = self._count = self._count + 1
        held = self._bytes = self._bytes + size
        if occupancy > self.max_entries:
            self.max_entries = occupancy
        if held > self.max_bytes:
            self.max_bytes = held
        self._samples += 1
        self._sample_sum += occupancy
        self.full = occupancy >= self.capacity_entries or held > self.capacity_bytes

    def fits(self, size: int) -> int:
        """How many more entries of ``size`` bytes :meth:`push` may take, one
        after another, before the buffer is full (the last of them fills it,
        or the end of the byte budget is reached): each push needs the
        buffer not full, so a leader repeating one call knows at once how
        many of its entries go in before it must wait."""
        if self.full:
            return 0
        count = self.capacity_entries - self._count
        if size > 0:
            # The push that takes the bytes past the capacity still goes in.
            count = min(count, (self.capacity_bytes - self._bytes) // size + 1)
        return count

    def push_run(self, first: int, count: int, size: int, call: Call, outcome: Outcome | None = None) -> None:
        """:meth:`push` of ``count`` entries of ``size`` bytes numbered from
        ``first`` (a run of equal calls), with the same occupancy figures as
        ``count`` pushes, reckoned once. At most :meth:`fits` entries."""
        if count > self.fits(size):
            raise ValueError(f"connector buffer: {count} entries pushed where {self.fits(size)} fit")
        before = self._count
        self._entries.append([first, first + count - 1, size, call, outcome])
        occupancy = self._count = before + count
        held = self._bytes = self._bytes + size * count
        if occupancy > self.max_entries:
            self.max_entries = occupancy
        if held > self.max_bytes:
            self.max_bytes = held
        # Each push samples the occupancy after it: before+1 .. before+count.
        self._samples += count
        self._sample_sum += before * count + count * (count + 1) // 2
        self.full = occupancy >= self.capacity_entries or held > self.capacity_bytes

    def release_upto(self, seq: int) -> int:
        """Drop entries with sequence number <= ``seq``; return how many."""
        released = 0
        entries = self._entries
        while entries and entries[0][0] <= seq:
            run = entries[0]
            if run[1] <= seq:
                entries.popleft()
                count = run[1] - run[0] + 1
            else:
                count = seq - run[0] + 1
                run[0] = seq + 1
            self._bytes -= run[2] * count
            released += count
        if released:
            remaining = self._count = self._count - released
            self.full = bool(remaining) and (remaining >= self.capacity_entries or self._bytes > self.capacity_bytes)
        return released

    def call_at(self, seq: int) -> Call | None:
        """The leader's call at ``seq`` if it is still buffered."""
        for run in self._entries:
            if run[0] <= seq <= run[1]:
                call: Call = run[3]
                return call
        return None

    def unconfirmed(self) -> tuple[tuple[int, Call, Outcome | None], ...]:
        """``(seq, call, outcome)`` of every entry still buffered: calls the
        leader ran that not every follower has acknowledged."""
        return tuple(
            (seq, call, outcome) for first, last, _, call, outcome in self._entries for seq in range(first, last + 1)
        )

    @property
    def mean_entries(self) -> float:
        """Mean occupancy seen by each push (after the push)."""
        return self._sample_sum / self._samples if self._samples else 0.0
