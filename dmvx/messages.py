"""Messages between monitors: the payloads the CONNECTOR carries.

These are plain values; :mod:`dmvx.protocol` frames, authenticates and
encodes them. Every message names a ``stream`` (one per traced process
lineage, ``"0"`` for the first process) so several processes of one variant
can share a CONNECTOR link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dmvx.calls import Call, Outcome
from dmvx.verdict import Verdict


class EntryKind(str, Enum):
    """How much of the leader's outcome an entry carries."""

    FULL = "full"  # result and output bytes: the follower skips with them
    RESULT = "result"  # result only: every variant executed its own call
    PREDICTED = "predicted"  # nothing: the follower derives the result itself
    DIGEST = "digest"  # result and a digest of outputs: local-file reads
    GO = "go"  # lockstep released: every variant may execute
    VOTE = "vote"  # a divergence at ``seq`` is being decided: report your call
    ANNOUNCE = "announce"  # the leader waits at lockstep call ``seq``: report yours
    SIGNAL = "signal"  # call ``seq`` ended interrupted by ``signal`` (dmvx.signals)


@dataclass(slots=True, init=False)
class Entry:
    """Leader -> followers: the leader's call ``seq`` and what it did.

    This is the connector-buffer (CB) entry of dMVX. It is independent of how
    it was produced: a ptrace tracer, a simulated variant or a future
    in-process monitor feeding a shared-memory ring all make the same entries.
    """

    stream: str
    seq: int
    call: Call
    kind: EntryKind
    outcome: Outcome | None = None
    digest: bytes = b""
    #: Kind ``signal``: the signal delivered as the call ended (its
    #: ``outcome`` holds the "interrupted" result, :mod:`dmvx.signals`).
    signal: int = 0
    #: Approximate payload bytes on the wire, for CB and link accounting
    #: (:func:`entry_size`). Computed when the entry is made, unless its maker
    #: passes it: the leader charges it to the CB, the follower to its
    #: acknowledgement budget, a simulated link to its bandwidth -- a plain
    #: attribute, as it is read three times per replicated call.
    size: int = field(default=-1, repr=False, compare=False)

    # Written out rather than generated: one Python call per entry, not two
    # (a generated __init__ and a __post_init__ to size it).
    def __init__(
        self,
        stream: str,
        seq: int,
        call: Call,
        kind: EntryKind,
        outcome: Outcome | None = None,
        digest: bytes = b"",
        signal: int = 0,
        size: int = -1,
    ) -> None:
        self.stream = stream
        self.seq = seq
        self.call = call
        self.kind = kind
        self.outcome = outcome
        self.digest = digest
        self.signal = signal
        self.size = size if size >= 0 else entry_size(call_size(call), outcome, digest)


@dataclass(slots=True)
class EntryBatch:
    """Leader -> followers: consecutive entries of one stream in one message.

    A transport container, not a monitor message: the leader's monitor
    process packs the entries its core sent in a row into one (real mode's
    outbox: one frame, one encryption, one decode instead of one per entry),
    and a follower's unpacks it before its core sees any: the core only ever
    receives :class:`Entry` messages. Its encoding (``docs/protocol.md``)
    carries each entry's call and outcome as a length-prefixed segment, so a
    decoder meets a segment it has decoded before (a loop repeating one call)
    with a lookup instead of a parse.
    """

    stream: str
    entries: tuple[Entry, ...]

    @property
    def first(self) -> int:
        """The sequence number of the first entry; the others follow one by one."""
        return self.entries[0].seq

    @property
    def size(self) -> int:
        """Approximate payload bytes on the wire."""
        return 16 + sum(entry.size for entry in self.entries)


@dataclass(slots=True)
class Report:
    """Follower -> leader: "I am at call ``seq``, and this is it".

    Sent for lockstep and synchronous calls, and whenever a follower finds
    its call differs from the leader's entry. It implies the follower has
    consumed every entry before ``seq``.
    """

    stream: str
    seq: int
    call: Call
    variant: int

    @property
    def size(self) -> int:
        """Approximate payload bytes on the wire."""
        return 24 + call_size(self.call)


@dataclass(slots=True)
class Ack:
    """Follower -> leader: entries up to and including ``seq`` consumed and
    found equal. Cumulative; frees CB space."""

    stream: str
    seq: int
    variant: int

    @property
    def size(self) -> int:
        """Approximate payload bytes on the wire."""
        return 24


@dataclass(slots=True)
class Stop:
    """Any monitor -> all: the run is over with this verdict."""

    stream: str
    verdict: Verdict

    @property
    def size(self) -> int:
        """Approximate payload bytes on the wire."""
        return 64 + sum(24 + call_size(c) for c in self.verdict.calls.values() if c)


@dataclass(slots=True)
class PidNote:
    """Leader -> followers: the leader's process of ``stream`` has pid ``pid``.

    Pids differ from variant to variant, and the canonical value of a pid is
    the leader's. A mode whose processes have pids of their own (real mode)
    maps each follower's to these: the leader's monitor says when
    (:meth:`dmvx.monitor.LeaderMonitor.process_started`), a follower's
    monitor answers with a :class:`~dmvx.actions.LeaderPid` action.
    """

    stream: str
    pid: int

    @property
    def size(self) -> int:
        """Approximate payload bytes on the wire."""
        return 24


@dataclass(slots=True)
class ResultNote:
    """Leader -> followers: what the leader's own run of call ``seq`` returned.

    Sent for a call every variant runs itself (released by a GO entry) whose
    result only timing could make differ (:data:`dmvx.monitor.STEERED`), when
    the monitors steer: a follower holds its own run until it knows the
    leader's result, then runs it steered towards it (``Execute.expect``).
    """

    stream: str
    seq: int
    result: int

    @property
    def size(self) -> int:
        """Approximate payload bytes on the wire."""
        return 24


@dataclass(slots=True)
class ClockNote:
    """Leader -> followers: a thread of the leader read interval clock
    ``clock`` (``CLOCK_MONOTONIC`` and kin) as ``ns`` nanoseconds.

    In a process with threads such reads are not sequenced calls: a thread
    makes as many as the interleaving makes it wait (a lock with a timeout
    reads one per wait), a number no two variants share. A follower's thread
    takes the leader's readings of its stream in order, and reads its own
    clock where the leader made no more (``realmode.tracer.clocks``).
    """

    stream: str
    clock: int
    ns: int

    @property
    def size(self) -> int:
        """Approximate payload bytes on the wire."""
        return 24


@dataclass(slots=True)
class StarvedNote:
    """Any variant -> the others: for ``ns`` nanoseconds since its previous
    note, a process of this variant (or its monitor process) was ready to
    run and had no CPU.

    The stall timeout is meant for a variant that neither computes nor
    waits for the world while another waits for it (a hang, or a loop an
    exploit left it in). Wall-clock time cannot tell that from a variant
    the machine's scheduler has not run: on a loaded machine a follower
    ready to make its next call may wait seconds for a CPU. So the mode
    measures that wait where the variant runs and tells the others, and a
    waiting monitor process does not count it towards the stall timeout
    (real mode: ``realmode.tracer.starvation``). A note for the mode, like
    :class:`ClockNote`: the core never receives one.
    """

    ns: int

    @property
    def size(self) -> int:
        """Approximate payload bytes on the wire."""
        return 8


Message = Entry | Report | Ack | Stop | PidNote | ResultNote | ClockNote
#: What one monitor process sends another: a core's message, a batch of
#: entries the mode packed (:class:`EntryBatch`) or a note of the mode's own
#: (:class:`StarvedNote`).
Carried = Message | EntryBatch | StarvedNote


def call_size(call: Call) -> int:
    """Approximate wire bytes of ``call`` inside a message (name and arguments)."""
    return len(call.name) + _args_size(call.args)


def entry_size(call_bytes: int, outcome: Outcome | None, digest: bytes = b"") -> int:
    """:attr:`Entry.size` of an entry whose call takes ``call_bytes``
    (:func:`call_size`; a leader replicating one call over and over computes
    that once)."""
    size = 24 + call_bytes + len(digest)
    return size + outcome.size if outcome is not None else size


def _args_size(args: tuple[Any, ...]) -> int:
    total = 0
    for value in args:
        if isinstance(value, (bytes, str)):
            total += len(value) + 4
        else:
            total += 8
    return total
