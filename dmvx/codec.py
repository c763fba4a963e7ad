"""Payload encoding of monitor messages: a small, canonical, tagged binary format.

Why a format of our own rather than pickle, JSON or msgpack: pickle executes
code chosen by the sender, and the sender is exactly what the CONNECTOR must
not trust. JSON has no bytes, no tuples and no arbitrary integers. msgpack has
no arbitrary-size integers (64 bits at most), no tuple/list distinction, and
allows several encodings of one value, so "decodes and re-encodes to the same
bytes" cannot be asked of it. What the monitors exchange is a handful of fixed
records (:mod:`dmvx.messages`) whose only open-ended part is a system call's
canonical arguments: ``int`` (any size, any sign), ``bytes``, ``str``,
``None``, ``bool`` and tuples of those. That fits in a few dozen lines, and
owning them lets the decoder promise two things:

* **Fail closed.** Any input that is not exactly an encoding of a message
  raises :class:`CodecError` and nothing else: every read is bounds-checked,
  lengths and counts are checked against the bytes actually present before
  anything is allocated, tuple nesting is bounded by :data:`MAX_DEPTH` and
  integers by :data:`MAX_INT_BITS`.
* **Canonical.** Every value has exactly one encoding and the decoder accepts
  only that one (no over-long varints, no unknown tags or flags, no trailing
  bytes, map keys strictly increasing). So ``encode(decode(b)) == b`` for
  every ``b`` that decodes, which the tests check on mutated input.

The byte-level layout is in ``docs/protocol.md``. Records are positional (no
field names on the wire); integers are zigzag LEB128 varints, lengths and
counts plain LEB128 varints; strings are UTF-8 with ``surrogateescape`` so
paths that are not valid UTF-8 (``os.fsdecode``) survive the trip; enums are
sent as their string value.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from dmvx.calls import Call, Outcome
from dmvx.messages import (
    Ack,
    Carried,
    ClockNote,
    Entry,
    EntryBatch,
    EntryKind,
    PidNote,
    Report,
    ResultNote,
    StarvedNote,
    Stop,
    call_size,
    entry_size,
)
from dmvx.verdict import Verdict, VerdictKind

#: Deepest tuple nesting accepted inside call arguments (the argument tuple
#: itself is depth 0). Real arguments are flat or one level deep (iovecs).
MAX_DEPTH = 32

#: Integers from -2**MAX_INT_BITS to 2**MAX_INT_BITS - 1 are accepted.
#: "Arbitrary size" means "not limited to a machine word"; the bound stops a
#: peer from making us build a megabyte-long integer.
MAX_INT_BITS = 4096

# The zigzag form of an integer within MAX_INT_BITS has at most this many bits,
# hence at most _MAX_INT_VARINT bytes of 7 bits.
_MAX_ZIGZAG_BITS = MAX_INT_BITS + 1
_MAX_INT_VARINT = (_MAX_ZIGZAG_BITS + 6) // 7
# Lengths and counts: 63 bits at most (they are then checked against the data).
_MAX_LEN_VARINT = 9

# Value tags inside call arguments.
T_NONE = 0x00
T_FALSE = 0x01
T_TRUE = 0x02
T_INT = 0x03
T_BYTES = 0x04
T_STR = 0x05
T_TUPLE = 0x06

#: Message type codes, as carried in the frame header (see dmvx.protocol,
#: which adds its own control types below 0x10).
TYPE_ENTRY = 0x10
TYPE_REPORT = 0x11
TYPE_ACK = 0x12
TYPE_STOP = 0x13
TYPE_PID_NOTE = 0x14
TYPE_RESULT_NOTE = 0x15
TYPE_CLOCK_NOTE = 0x16
TYPE_ENTRY_BATCH = 0x17
TYPE_STARVED_NOTE = 0x18

#: Entries of one :class:`~dmvx.messages.EntryBatch` at most (a bound on what
#: a decoder builds from one payload; the sender packs far fewer).
MAX_BATCH = 4096
#: Entry segments (call and outcome) remembered by the batch encoder and
#: decoder: a loop repeats one call, whose segment is then made or read once.
_SEGMENT_CACHE = 256
#: Segments longer than this are not remembered (a read's data rarely repeats).
_SEGMENT_CACHED_BYTES = 512


class ProtocolError(Exception):
    """Base of every error raised on bad CONNECTOR input.

    ``str(error)`` is one line naming what happened and, where known, the
    frame's sequence number and its byte offset in the stream. ``verdict_kind``
    says how a monitor should report the run it ends.
    """

    verdict_kind: VerdictKind = VerdictKind.PROTOCOL_ERROR

    def __init__(self, reason: str, *, seq: int | None = None, offset: int | None = None) -> None:
        self.reason = reason
        self.seq = seq
        self.offset = offset
        super().__init__(reason)

    def __str__(self) -> str:
        where = []
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.offset is not None:
            where.append(f"stream offset {self.offset}")
        return f"{self.reason} ({', '.join(where)})" if where else self.reason

    def at(self, *, seq: int | None = None, offset: int | None = None) -> ProtocolError:
        """A copy of this error located at ``seq``/``offset`` (same type)."""
        located = type(self).__new__(type(self))
        ProtocolError.__init__(located, self.reason, seq=seq, offset=offset)
        return located


class CodecError(ProtocolError):
    """A payload is not a valid encoding, or a value cannot be encoded."""


# --------------------------------------------------------------------------
# Encoding: module-level functions appending to a bytearray (the hot path).


def put_uint(out: bytearray, n: int) -> None:
    """Append ``n >= 0`` as an LEB128 varint (lengths and counts)."""
    if n < 0x80:
        out.append(n)
        return
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def put_int(out: bytearray, n: int, what: str = "integer") -> None:
    """Append a signed integer of any size as a zigzag LEB128 varint."""
    if type(n) is not int and (not isinstance(n, int) or isinstance(n, bool)):
        raise CodecError(f"cannot encode {what}: expected int, got {type(n).__name__}")
    z = (n << 1) if n >= 0 else ((-n << 1) - 1)
    if z < 0x80:
        out.append(z)
        return
    if z.bit_length() > _MAX_ZIGZAG_BITS:
        raise CodecError(f"cannot encode {what}: larger than {MAX_INT_BITS} bits")
    put_uint(out, z)


def put_bytes(out: bytearray, data: bytes, what: str = "bytes") -> None:
    """Append a length-prefixed byte string (bytes-like objects accepted)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"cannot encode {what}: expected bytes, got {type(data).__name__}")
    if isinstance(data, memoryview):
        data = data.tobytes()
    put_uint(out, len(data))
    out += data


def put_str(out: bytearray, text: str, what: str = "string") -> None:
    """Append a length-prefixed UTF-8 string.

    Lone surrogates from ``surrogateescape`` (undecodable path bytes) are
    written as the original bytes. A string that would not come back
    unchanged (surrogates not produced by ``surrogateescape``) is refused
    rather than silently altered.
    """
    if not isinstance(text, str):
        raise CodecError(f"cannot encode {what}: expected str, got {type(text).__name__}")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            escaped: bytes | None = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            escaped = None
        if escaped is None or escaped.decode("utf-8", "surrogateescape") != text:
            raise CodecError(f"cannot encode {what}: contains surrogates that are not escaped bytes") from None
        data = escaped
    put_uint(out, len(data))
    out += data


def put_enum(out: bytearray, value: Enum | str, enum: type[Enum], what: str) -> None:
    """Append an enum member by its string value."""
    try:
        member = enum(value)
    except ValueError:
        raise CodecError(f"cannot encode {what}: {value!r} is not a {enum.__name__}") from None
    put_str(out, member.value, what)


def put_value(out: bytearray, value: Any, depth: int = 1) -> None:
    """Append one canonical call-argument value with its type tag."""
    kind = type(value)
    if value is None:
        out.append(T_NONE)
    elif value is True:
        out.append(T_TRUE)
    elif value is False:
        out.append(T_FALSE)
    elif kind is int or (isinstance(value, int) and not isinstance(value, bool)):
        out.append(T_INT)
        put_int(out, value, "argument")
    elif kind is bytes or isinstance(value, (bytes, bytearray, memoryview)):
        out.append(T_BYTES)
        put_bytes(out, value, "argument")
    elif isinstance(value, str):
        out.append(T_STR)
        put_str(out, value, "argument")
    elif isinstance(value, tuple):
        if depth > MAX_DEPTH:
            raise CodecError(f"cannot encode argument: tuples nested deeper than {MAX_DEPTH}")
        out.append(T_TUPLE)
        put_uint(out, len(value))
        for item in value:
            put_value(out, item, depth + 1)
    else:
        raise CodecError(
            f"cannot encode argument of type {kind.__name__}: "
            "arguments are int, bytes, str, None, bool or tuples of those"
        )


def _put_call(out: bytearray, call: Call) -> None:
    if not isinstance(call, Call):
        raise CodecError(f"cannot encode call: expected Call, got {type(call).__name__}")
    put_str(out, call.name, "call name")
    args = call.args
    if not isinstance(args, tuple):
        raise CodecError(f"cannot encode call {call.name!r}: args must be a tuple, got {type(args).__name__}")
    put_uint(out, len(args))
    for value in args:
        put_value(out, value)


def _put_optional_call(out: bytearray, call: Call | None) -> None:
    if call is None:
        out.append(0)
    else:
        out.append(1)
        _put_call(out, call)


def _put_outcome(out: bytearray, outcome: Outcome) -> None:
    if not isinstance(outcome, Outcome):
        raise CodecError(f"cannot encode outcome: expected Outcome, got {type(outcome).__name__}")
    put_int(out, outcome.result, "outcome result")
    outputs = outcome.outputs
    if not isinstance(outputs, tuple):
        raise CodecError("cannot encode outcome: outputs must be a tuple of (index, bytes) pairs")
    put_uint(out, len(outputs))
    for pair in outputs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise CodecError("cannot encode outcome: outputs must be a tuple of (index, bytes) pairs")
        put_int(out, pair[0], "output index")
        put_bytes(out, pair[1], "output data")


def _put_verdict(out: bytearray, verdict: Verdict) -> None:
    if not isinstance(verdict, Verdict):
        raise CodecError(f"cannot encode verdict: expected Verdict, got {type(verdict).__name__}")
    put_enum(out, verdict.kind, VerdictKind, "verdict kind")
    put_int(out, verdict.seq, "verdict seq")
    try:
        items = sorted(verdict.calls.items())
    except (AttributeError, TypeError):
        raise CodecError("cannot encode verdict: calls must map int variant -> Call or None") from None
    put_uint(out, len(items))
    for variant, call in items:
        put_int(out, variant, "verdict variant")
        _put_optional_call(out, call)
    odd = verdict.odd_one_out
    if not isinstance(odd, tuple):
        raise CodecError("cannot encode verdict: odd_one_out must be a tuple of ints")
    put_uint(out, len(odd))
    for variant in odd:
        put_int(out, variant, "odd-one-out variant")
    put_str(out, verdict.detail, "verdict detail")


def _put_entry(out: bytearray, m: Entry) -> None:
    put_str(out, m.stream, "stream")
    put_int(out, m.seq, "entry seq")
    _put_call(out, m.call)
    put_enum(out, m.kind, EntryKind, "entry kind")
    if m.outcome is None:
        out.append(0)
    else:
        out.append(1)
        _put_outcome(out, m.outcome)
    put_bytes(out, m.digest, "digest")
    if m.kind == EntryKind.SIGNAL:
        put_int(out, m.signal, "entry signal")


def _entry_segment(m: Entry) -> bytes:
    """An entry's call, kind, outcome, digest and signal: what an
    :class:`EntryBatch` carries per entry (its stream and sequence number are
    the batch's).

    Remembered per call *object* (a leader making one call over and over
    passes the same :class:`Call`) and outcome value: equal Python values are
    not always one encoding (``1 == True``), so the call is matched by
    identity and the outcome only when its fields are of the exact types the
    codec writes."""
    call, outcome, digest, signal = m.call, m.outcome, m.digest, m.signal
    key = None
    if type(digest) is bytes and type(signal) is int and (outcome is None or _plain_outcome(outcome)):
        key = (id(call), m.kind, None if outcome is None else (outcome.result, outcome.outputs), digest, signal)
        known = _ENCODED.get(key)
        if known is not None and known[0] is call:
            return known[1]
    out = bytearray()
    _put_call(out, call)
    put_enum(out, m.kind, EntryKind, "entry kind")
    if outcome is None:
        out.append(0)
    else:
        out.append(1)
        _put_outcome(out, outcome)
    put_bytes(out, digest, "digest")
    if m.kind == EntryKind.SIGNAL:
        put_int(out, signal, "entry signal")
    segment = bytes(out)
    if key is not None and len(segment) <= _SEGMENT_CACHED_BYTES:
        if len(_ENCODED) >= _SEGMENT_CACHE:
            _ENCODED.clear()
        _ENCODED[key] = (call, segment)  # the call is kept: its id is not reused meanwhile
    return segment


def _plain_outcome(outcome: Outcome) -> bool:
    """Whether ``outcome``'s fields are exactly an int and (int, bytes) pairs."""
    if type(outcome.result) is not int or type(outcome.outputs) is not tuple:
        return False
    for pair in outcome.outputs:
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not int or type(pair[1]) is not bytes:
            return False
    return True


_ENCODED: dict[tuple[object, ...], tuple[Call, bytes]] = {}


def _put_entry_batch(out: bytearray, m: EntryBatch) -> None:
    entries = m.entries
    if not isinstance(entries, tuple) or not entries or len(entries) > MAX_BATCH:
        raise CodecError(f"cannot encode an entry batch: 1 to {MAX_BATCH} entries in a tuple expected")
    first = entries[0].seq
    put_str(out, m.stream, "stream")
    put_int(out, first, "batch first seq")
    put_uint(out, len(entries))
    # An entry made of the very objects of the one before it (a run of equal
    # calls: one call, one outcome) has its segment: only its number differs.
    last: tuple[object, ...] = ()
    prefixed = b""
    for number, entry in enumerate(entries):
        if type(entry) is not Entry or entry.stream != m.stream or entry.seq != first + number:
            raise CodecError(
                f"cannot encode an entry batch: its entry {number} is not entry {first + number} of stream {m.stream!r}"
            )
        same = last and (
            entry.call is last[0]
            and entry.kind is last[1]
            and entry.outcome is last[2]
            and entry.digest is last[3]
            and entry.signal is last[4]
        )
        if not same:
            segment = _entry_segment(entry)
            head = bytearray()
            put_uint(head, len(segment))
            prefixed = bytes(head) + segment
            last = (entry.call, entry.kind, entry.outcome, entry.digest, entry.signal)
        out += prefixed


def _put_report(out: bytearray, m: Report) -> None:
    put_str(out, m.stream, "stream")
    put_int(out, m.seq, "report seq")
    _put_call(out, m.call)
    put_int(out, m.variant, "report variant")


def _put_ack(out: bytearray, m: Ack) -> None:
    put_str(out, m.stream, "stream")
    put_int(out, m.seq, "ack seq")
    put_int(out, m.variant, "ack variant")


def _put_stop(out: bytearray, m: Stop) -> None:
    put_str(out, m.stream, "stream")
    _put_verdict(out, m.verdict)


def _put_pid_note(out: bytearray, m: PidNote) -> None:
    put_str(out, m.stream, "stream")
    put_int(out, m.pid, "pid")


def _put_result_note(out: bytearray, m: ResultNote) -> None:
    put_str(out, m.stream, "stream")
    put_int(out, m.seq, "note seq")
    put_int(out, m.result, "note result")


def _put_clock_note(out: bytearray, m: ClockNote) -> None:
    put_str(out, m.stream, "stream")
    put_int(out, m.clock, "clock")
    put_int(out, m.ns, "clock reading")


def _put_starved_note(out: bytearray, m: StarvedNote) -> None:
    put_int(out, m.ns, "starved ns")


_ENCODERS: dict[type, tuple[int, Callable[[bytearray, Any], None]]] = {
    Entry: (TYPE_ENTRY, _put_entry),
    Report: (TYPE_REPORT, _put_report),
    Ack: (TYPE_ACK, _put_ack),
    Stop: (TYPE_STOP, _put_stop),
    PidNote: (TYPE_PID_NOTE, _put_pid_note),
    ClockNote: (TYPE_CLOCK_NOTE, _put_clock_note),
    ResultNote: (TYPE_RESULT_NOTE, _put_result_note),
    EntryBatch: (TYPE_ENTRY_BATCH, _put_entry_batch),
    StarvedNote: (TYPE_STARVED_NOTE, _put_starved_note),
}


def encode_message(message: Carried) -> tuple[int, bytes]:
    """Encode a monitor message: ``(type code, payload)``.

    Raises :class:`CodecError` if the message holds a value outside the
    canonical types (a float argument, a list, a bool where an int belongs).
    """
    try:
        code, put = _ENCODERS[type(message)]
    except KeyError:
        raise CodecError(f"cannot encode {type(message).__name__}: not a monitor message") from None
    out = bytearray()
    put(out, message)
    return code, bytes(out)


# --------------------------------------------------------------------------
# Decoding.

E = TypeVar("E", bound=Enum)


class PayloadReader:
    """A bounds-checked cursor over one payload.

    Every method either returns a value read from the bytes actually present
    or raises :class:`CodecError`; none can raise anything else.
    """

    __slots__ = ("_data", "_pos", "_end")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data)

    def _varint(self, limit: int, what: str) -> int:
        data = self._data
        pos = self._pos
        if pos >= self._end:
            raise CodecError(f"payload truncated: {what} missing at byte {pos}")
        byte = data[pos]
        if byte < 0x80:
            self._pos = pos + 1
            return byte
        start = pos
        value = byte & 0x7F
        shift = 7
        pos += 1
        while True:
            if pos >= self._end:
                raise CodecError(f"payload truncated inside {what} at byte {pos}")
            if pos - start >= limit:
                raise CodecError(f"{what} at byte {start} is too long")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if byte == 0:
            raise CodecError(f"non-canonical varint for {what} at byte {start}")
        self._pos = pos
        return value

    def length(self, what: str = "length") -> int:
        """A length or count; at most the bytes left (each item takes >= 1)."""
        start = self._pos
        n = self._varint(_MAX_LEN_VARINT, what)
        if n > self._end - self._pos:
            raise CodecError(f"{what} {n} at byte {start} exceeds the {self._end - self._pos} bytes left")
        return n

    def integer(self, what: str = "integer") -> int:
        start = self._pos
        z = self._varint(_MAX_INT_VARINT, what)
        if z.bit_length() > _MAX_ZIGZAG_BITS:
            raise CodecError(f"{what} at byte {start} is larger than {MAX_INT_BITS} bits")
        return (z >> 1) if not z & 1 else -((z + 1) >> 1)

    def byte(self, what: str) -> int:
        pos = self._pos
        if pos >= self._end:
            raise CodecError(f"payload truncated: {what} missing at byte {pos}")
        self._pos = pos + 1
        return self._data[pos]

    def flag(self, what: str) -> bool:
        """A presence byte: 0 or 1, nothing else."""
        pos = self._pos
        value = self.byte(what)
        if value > 1:
            raise CodecError(f"bad {what} byte 0x{value:02x} at byte {pos} (0 or 1 expected)")
        return value == 1

    def blob(self, what: str = "bytes") -> bytes:
        n = self.length(f"{what} length")
        pos = self._pos
        self._pos = pos + n
        return self._data[pos : pos + n]

    def text(self, what: str = "string") -> str:
        n = self.length(f"{what} length")
        pos = self._pos
        self._pos = pos + n
        # surrogateescape cannot fail and round-trips every byte string, so
        # any bytes are a valid (and canonical) string.
        return self._data[pos : pos + n].decode("utf-8", "surrogateescape")

    def enum(self, enum: type[E], what: str) -> E:
        pos = self._pos
        value = self.text(what)
        try:
            return enum(value)
        except ValueError:
            raise CodecError(f"unknown {what} {value[:40]!r} at byte {pos}") from None

    def value(self, depth: int = 1) -> Any:
        pos = self._pos
        tag = self.byte("argument tag")
        if tag == T_INT:
            return self.integer("argument")
        if tag == T_BYTES:
            return self.blob("argument")
        if tag == T_STR:
            return self.text("argument")
        if tag == T_NONE:
            return None
        if tag == T_TRUE:
            return True
        if tag == T_FALSE:
            return False
        if tag == T_TUPLE:
            if depth > MAX_DEPTH:
                raise CodecError(f"tuples nested deeper than {MAX_DEPTH} at byte {pos}")
            count = self.length("tuple length")
            return tuple([self.value(depth + 1) for _ in range(count)])
        raise CodecError(f"unknown argument tag 0x{tag:02x} at byte {pos}")

    def call(self) -> Call:
        name = self.text("call name")
        count = self.length("argument count")
        return Call(name, tuple([self.value() for _ in range(count)]))

    def optional_call(self) -> Call | None:
        return self.call() if self.flag("call presence") else None

    def outcome(self) -> Outcome:
        result = self.integer("outcome result")
        count = self.length("output count")
        outputs = tuple([(self.integer("output index"), self.blob("output data")) for _ in range(count)])
        return Outcome(result, outputs)

    def verdict(self) -> Verdict:
        kind = self.enum(VerdictKind, "verdict kind")
        seq = self.integer("verdict seq")
        calls: dict[int, Call | None] = {}
        last = None
        for _ in range(self.length("verdict call count")):
            pos = self._pos
            variant = self.integer("verdict variant")
            if last is not None and variant <= last:
                raise CodecError(f"verdict variants not strictly increasing at byte {pos}")
            last = variant
            calls[variant] = self.optional_call()
        odd = tuple([self.integer("odd-one-out variant") for _ in range(self.length("odd-one-out count"))])
        detail = self.text("verdict detail")
        return Verdict(kind=kind, seq=seq, calls=calls, odd_one_out=odd, detail=detail)

    def done(self) -> None:
        """Insist the payload is used up: trailing bytes are not canonical."""
        if self._pos != self._end:
            raise CodecError(f"{self._end - self._pos} unexpected trailing bytes at byte {self._pos}")


def _read_entry(r: PayloadReader) -> Entry:
    stream = r.text("stream")
    seq = r.integer("entry seq")
    call = r.call()
    kind = r.enum(EntryKind, "entry kind")
    outcome = r.outcome() if r.flag("outcome presence") else None
    digest = r.blob("digest")
    signal = r.integer("entry signal") if kind is EntryKind.SIGNAL else 0
    return Entry(stream, seq, call, kind, outcome, digest, signal)


def _read_segment(segment: bytes) -> tuple[Call, EntryKind, Outcome | None, bytes, int]:
    """The inverse of :func:`_entry_segment`; the whole segment must be used."""
    r = PayloadReader(segment)
    call = r.call()
    kind = r.enum(EntryKind, "entry kind")
    outcome = r.outcome() if r.flag("outcome presence") else None
    digest = r.blob("digest")
    signal = r.integer("entry signal") if kind is EntryKind.SIGNAL else 0
    r.done()
    return call, kind, outcome, digest, signal


_DECODED: dict[bytes, tuple[Call, EntryKind, Outcome | None, bytes, int, int]] = {}


def _read_entry_batch(r: PayloadReader) -> EntryBatch:
    """Each entry's segment is decoded on its own (an error names the entry
    and its sequence number), and a segment met before is looked up: equal
    canonical bytes are equal values, and Call and Outcome are values."""
    stream = r.text("stream")
    first = r.integer("batch first seq")
    count = r.length("batch entry count")
    if not 1 <= count <= MAX_BATCH:
        raise CodecError(f"an entry batch of {count} entries (1 to {MAX_BATCH} allowed)")
    entries = []
    decoded = _DECODED
    data = r._data
    number = 0
    while number < count:
        start = r._pos
        try:
            segment = r.blob("entry segment")
        except CodecError as error:
            raise CodecError(f"entry {number} (seq {first + number}) of the batch: {error.reason}") from None
        known = decoded.get(segment)
        if known is None:
            try:
                call, kind, outcome, digest, signal = _read_segment(segment)
            except CodecError as error:
                raise CodecError(f"entry {number} (seq {first + number}) of the batch: {error.reason}") from None
            size = entry_size(call_size(call), outcome, digest)
            known = (call, kind, outcome, digest, signal, size)
            if len(segment) <= _SEGMENT_CACHED_BYTES:
                if len(decoded) >= _SEGMENT_CACHE:
                    decoded.clear()
                decoded[segment] = known
        call, kind, outcome, digest, signal, size = known
        entries.append(Entry(stream, first + number, call, kind, outcome, digest, signal, size))
        number += 1
        # The same length and segment again (a run of equal calls: only the
        # number differs) is the same entry: compared in place, not read.
        pos = r._pos
        piece = data[start:pos]
        width = len(piece)
        while number < count and data.startswith(piece, pos):
            entries.append(Entry(stream, first + number, call, kind, outcome, digest, signal, size))
            number += 1
            pos += width
        r._pos = pos
    return EntryBatch(stream, tuple(entries))


def _read_report(r: PayloadReader) -> Report:
    return Report(r.text("stream"), r.integer("report seq"), r.call(), r.integer("report variant"))


def _read_ack(r: PayloadReader) -> Ack:
    return Ack(r.text("stream"), r.integer("ack seq"), r.integer("ack variant"))


def _read_stop(r: PayloadReader) -> Stop:
    return Stop(r.text("stream"), r.verdict())


def _read_pid_note(r: PayloadReader) -> PidNote:
    return PidNote(r.text("stream"), r.integer("pid"))


def _read_clock_note(r: PayloadReader) -> ClockNote:
    return ClockNote(r.text("stream"), r.integer("clock"), r.integer("clock reading"))


def _read_result_note(r: PayloadReader) -> ResultNote:
    return ResultNote(r.text("stream"), r.integer("note seq"), r.integer("note result"))


def _read_starved_note(r: PayloadReader) -> StarvedNote:
    return StarvedNote(r.integer("starved ns"))


_DECODERS: dict[int, Callable[[PayloadReader], Carried]] = {
    TYPE_ENTRY: _read_entry,
    TYPE_REPORT: _read_report,
    TYPE_ACK: _read_ack,
    TYPE_STOP: _read_stop,
    TYPE_PID_NOTE: _read_pid_note,
    TYPE_CLOCK_NOTE: _read_clock_note,
    TYPE_RESULT_NOTE: _read_result_note,
    TYPE_ENTRY_BATCH: _read_entry_batch,
    TYPE_STARVED_NOTE: _read_starved_note,
}

#: The type codes :func:`decode_message` understands.
MESSAGE_TYPES = frozenset(_DECODERS)


def decode_message(code: int, payload: bytes) -> Carried:
    """Decode the payload of a message of type ``code``.

    Raises :class:`CodecError` for an unknown code or any payload that is not
    exactly the canonical encoding of one message.
    """
    try:
        read = _DECODERS[code]
    except KeyError:
        raise CodecError(f"unknown message type 0x{code:02x}") from None
    reader = PayloadReader(payload)
    message = read(reader)
    reader.done()
    return message


def dumps(message: Carried) -> bytes:
    """One self-describing record: type code byte + payload.

    For storing entries outside a frame (a connector-buffer slot, a trace
    file). Carries no authentication: that is the frame's job.
    """
    code, payload = encode_message(message)
    return bytes((code,)) + payload


def loads(data: bytes) -> Carried:
    """Inverse of :func:`dumps`; raises :class:`CodecError` on bad input."""
    if not data:
        raise CodecError("empty record: message type missing")
    return decode_message(data[0], data[1:])
