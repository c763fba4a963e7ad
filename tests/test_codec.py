"""The payload codec: exact round trips, canonical bytes, and fail-closed
decoding of anything else."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmvx import codec
from dmvx.calls import Call, Outcome
from dmvx.codec import CodecError, ProtocolError, decode_message, dumps, encode_message, loads
from dmvx.messages import Ack, Entry, EntryBatch, EntryKind, Report, Stop
from dmvx.protocol import FRAME_OVERHEAD
from dmvx.verdict import Verdict, VerdictKind
from typed_values import typed

# --------------------------------------------------------------------------
# Strategies and a type-strict comparison.

ints = st.one_of(
    st.integers(-300, 300),
    st.integers(-(2**64), 2**64),
    st.integers(-(2**codec.MAX_INT_BITS) + 1, 2**codec.MAX_INT_BITS - 1),
)
# Paths as real mode makes them: arbitrary bytes through os.fsdecode.
fs_paths = st.binary(max_size=24).map(os.fsdecode)
scalars = st.one_of(st.none(), st.booleans(), ints, st.binary(max_size=40), st.text(max_size=20), fs_paths)
arg_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4).map(tuple), max_leaves=12)
calls = st.builds(Call, st.text(min_size=1, max_size=12), st.lists(arg_values, max_size=6).map(tuple))
outcomes = st.builds(
    Outcome, ints, st.lists(st.tuples(st.integers(0, 6), st.binary(max_size=64)), max_size=3).map(tuple)
)
verdicts = st.builds(
    Verdict,
    kind=st.sampled_from(VerdictKind),
    seq=ints,
    calls=st.dictionaries(st.integers(-2, 40), st.none() | calls, max_size=4),
    odd_one_out=st.lists(st.integers(0, 40), max_size=3).map(tuple),
    detail=st.text(max_size=30),
)
streams = st.text(max_size=6)


def _batch(stream: str, first: int, parts: list) -> EntryBatch:
    return EntryBatch(
        stream,
        tuple(
            Entry(stream, first + n, call, kind, outcome, digest, 9 if kind is EntryKind.SIGNAL else 0)
            for n, (call, kind, outcome, digest) in enumerate(parts)
        ),
    )


entry_parts = st.tuples(calls, st.sampled_from(EntryKind), st.none() | outcomes, st.binary(max_size=8))
batches = st.builds(_batch, streams, ints, st.lists(entry_parts, min_size=1, max_size=4))
messages = st.one_of(
    st.builds(Entry, streams, ints, calls, st.sampled_from(EntryKind), st.none() | outcomes, st.binary(max_size=32)),
    batches,
    st.builds(Report, streams, ints, calls, ints),
    st.builds(Ack, streams, ints, ints),
    st.builds(Stop, streams, verdicts),
)


def roundtrip(message):
    code, payload = encode_message(message)
    return decode_message(code, payload)


SMALL_ENTRY = Entry("0", 7, Call("write", (1, b"hello\n", 6)), EntryKind.RESULT, Outcome(6))

# --------------------------------------------------------------------------
# Round trips.


@settings(
    max_examples=1500, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(messages)
def test_every_message_round_trips_exactly(message):
    code, payload = encode_message(message)
    decoded = decode_message(code, payload)
    assert typed(decoded) == typed(message)
    # Deterministic: equal messages give equal bytes.
    assert encode_message(decoded) == (code, payload)


def test_argument_types_are_kept_apart():
    call = Call("x", (1, True, 0, False, None, b"1", "1", (1,), ((),), -1, 2**200, -(2**200)))
    back = roundtrip(Report("0", 1, call, 0)).call
    assert typed(back) == typed(call)
    assert [type(a) for a in back.args] == [int, bool, int, bool, type(None), bytes, str, tuple, tuple, int, int, int]


def test_integer_range_edges():
    top = 2**codec.MAX_INT_BITS
    for n in (-top, top - 1, -(2**63), 2**64 - 1):
        assert roundtrip(Ack("0", n, 0)).seq == n
    for n in (top, -top - 1):
        with pytest.raises(CodecError, match="4096 bits"):
            encode_message(Ack("0", n, 0))


def test_undecodable_path_bytes_survive():
    raw = b"/tmp/\xff\xfe-\xc3(-\xed\xa0\x80"
    path = os.fsdecode(raw)
    back = roundtrip(Report("0", 1, Call("openat", (-100, path, 0)), 0)).call.args[1]
    assert back == path and os.fsencode(back) == raw


def test_bytes_like_arguments_encode_as_bytes():
    a = roundtrip(Report("0", 1, Call("write", (bytearray(b"ab"), memoryview(b"cd"))), 0))
    assert a.call.args == (b"ab", b"cd") and all(type(x) is bytes for x in a.call.args)


def test_verdict_bytes_do_not_depend_on_dict_order():
    one = Verdict(VerdictKind.CALL_MISMATCH, 4, {0: Call("a"), 2: None, 1: Call("b")}, (2,), "d")
    two = Verdict(VerdictKind.CALL_MISMATCH, 4, {2: None, 1: Call("b"), 0: Call("a")}, (2,), "d")
    assert encode_message(Stop("0", one)) == encode_message(Stop("0", two))
    assert roundtrip(Stop("0", one)).verdict == one


def test_one_mebibyte_output_round_trips():
    big = os.urandom(1 << 20)
    entry = Entry("0", 1, Call("read", (3, 1 << 20)), EntryKind.FULL, Outcome(1 << 20, ((1, big),)))
    assert roundtrip(entry) == entry


def test_dumps_loads_is_self_describing():
    assert loads(dumps(SMALL_ENTRY)) == SMALL_ENTRY
    with pytest.raises(CodecError, match="empty record"):
        loads(b"")


def test_golden_bytes_match_docs():
    # The example worked through byte by byte in docs/protocol.md. A change
    # here is a wire-format change: bump PROTOCOL_VERSION and update the doc.
    assert (
        dumps(SMALL_ENTRY).hex(" ")
        == "10 01 30 0e 05 77 72 69 74 65 03 03 02 04 06 68 65 6c 6c 6f 0a 03 0c 06 72 65 73 75 6c 74 01 0c 00 00"
    )


# --------------------------------------------------------------------------
# Encoding refuses what it cannot carry exactly.


@pytest.mark.parametrize(
    "message, needle",
    [  # some ill-typed on purpose: the codec refuses what the types forbid
        (Report("0", 1, Call("x", (1.5,)), 0), "float"),
        (Report("0", 1, Call("x", ([1],)), 0), "list"),
        (Report("0", 1, Call("x", ({1: 2},)), 0), "dict"),
        (Report("0", 1, Call("x", [1]), 0), "args must be a tuple"),  # type: ignore[arg-type]
        (Report("0", True, Call("x"), 0), "bool"),
        (Report(0, 1, Call("x"), 0), "stream"),  # type: ignore[arg-type]
        (Report("0", 1, "x", 0), "expected Call"),  # type: ignore[arg-type]
        (Entry("0", 1, Call("x"), "nope"), "not a EntryKind"),  # type: ignore[arg-type]
        (Entry("0", 1, Call("x"), EntryKind.FULL, Outcome(0, ((1, "text"),))), "output data"),  # type: ignore[arg-type]
        # (sized by hand: an entry is sized when made, and this outcome has no size)
        (Entry("0", 1, Call("x"), EntryKind.FULL, Outcome(0, ((1,),)), size=0), "pairs"),  # type: ignore[arg-type]
        (Report("0", 1, Call("x", (2**codec.MAX_INT_BITS,)), 0), "4096 bits"),
        (Report("0", 1, Call("x", ("\ud800",)), 0), "surrogates"),
        (Report("0", 1, Call("x", ("\udcc3\udca9",)), 0), "surrogates"),
        (Stop("0", Verdict(VerdictKind.CRASH, 1, {"a": None})), "verdict variant"),  # type: ignore[dict-item]
        (Stop("0", Verdict(VerdictKind.CRASH, 1, {}, [1])), "odd_one_out"),  # type: ignore[arg-type]
    ],
)
def test_encoding_bad_values_raises_codec_error(message, needle):
    with pytest.raises(CodecError, match=needle):
        encode_message(message)


def test_encoding_nesting_is_bounded():
    value: Any = ()
    for _ in range(codec.MAX_DEPTH - 1):
        value = (value,)  # MAX_DEPTH levels of tuples in one argument
    deepest = Report("0", 1, Call("x", (value,)), 0)
    assert roundtrip(deepest) == deepest
    with pytest.raises(CodecError, match="nested deeper"):
        encode_message(Report("0", 1, Call("x", ((value,),)), 0))
    # The decoder draws the line at the same depth.
    code, payload = encode_message(deepest)
    too_deep = payload[:6] + b"\x06\x01" + payload[6:]  # after "stream, seq, name, argc"
    with pytest.raises(CodecError, match="nested deeper"):
        decode_message(code, too_deep)


def test_encoding_an_unknown_message_type_raises_codec_error():
    with pytest.raises(CodecError, match="not a monitor message"):
        encode_message(Call("x"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Decoding rejects every malformation with CodecError.

ACK = codec.TYPE_ACK
REPORT = codec.TYPE_REPORT


def report_payload(args_bytes: bytes, count: int) -> bytes:
    # stream "0", seq 1, call name "x", <count> args, then variant 0
    return b"\x01" + b"0" + b"\x02" + b"\x01x" + bytes([count]) + args_bytes + b"\x00"


@pytest.mark.parametrize(
    "code, payload, needle",
    [
        (0x7F, b"", "unknown message type"),
        (ACK, b"", "truncated"),
        (ACK, b"\x010\x02", "truncated"),
        (ACK, b"\x010\x02\x00\x00", "trailing"),
        (ACK, b"\x010\x82\x00\x00", "non-canonical varint"),
        (ACK, b"\x010" + b"\xff" * 700 + b"\x01\x00", "too long"),
        (ACK, b"\x7f0\x02\x00", "exceeds"),
        (ACK, b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f", "exceeds"),
        (ACK, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "too long"),
        (REPORT, report_payload(b"\x09", 1), "unknown argument tag"),
        (REPORT, report_payload(b"\x06\xff\xff\xff\x7f", 1), "exceeds"),
        (REPORT, report_payload(b"\x06" * 5000, 1), "nested deeper"),
        (REPORT, report_payload(b"\x04\x05ab", 1), "exceeds"),
        (REPORT, report_payload(b"\x03" + b"\xff" * 590 + b"\x01", 1), "too long"),
        (REPORT, report_payload(b"\x03" + b"\xff" * 585 + b"\x7f", 1), "larger than 4096 bits"),
        (REPORT, report_payload(b"", 100), "exceeds"),
        (codec.TYPE_ENTRY, b"\x010\x02\x01x\x00\x04nope\x00\x00", "unknown entry kind 'nope'"),
        (codec.TYPE_ENTRY, b"\x010\x02\x01x\x00\x04full\x02\x00", "outcome presence"),
        (codec.TYPE_STOP, b"\x010\x05crash\x02\x02\x02\x00\x02\x00\x00\x00", "strictly increasing"),
        (codec.TYPE_STOP, b"\x010\x05crash\x02\x02\x04\x00\x02\x00\x00\x00", "strictly increasing"),
        (codec.TYPE_STOP, b"\x010\x05crash\x02\x01\x02\x07\x00\x00", "call presence"),
    ],
)
def test_malformed_payloads_raise_codec_error(code, payload, needle):
    with pytest.raises(CodecError, match=needle) as caught:
        decode_message(code, payload)
    assert "\n" not in str(caught.value)


def test_codec_error_is_a_protocol_error():
    assert issubclass(CodecError, ProtocolError)


def _mutations(payload: bytes, data: st.DataObject) -> bytes:
    how = data.draw(st.sampled_from(["flip", "cut", "insert", "delete", "splice", "set"]))
    buf = bytearray(payload)
    if how == "flip" and buf:
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        del buf[data.draw(st.integers(0, len(buf))) :]
    elif how == "insert":
        i = data.draw(st.integers(0, len(buf)))
        buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    elif how == "delete" and buf:
        i = data.draw(st.integers(0, len(buf) - 1))
        del buf[i : i + data.draw(st.integers(1, 8))]
    elif how == "splice":
        other = encode_message(data.draw(messages))[1]
        buf = buf[: data.draw(st.integers(0, len(buf)))] + other[data.draw(st.integers(0, len(other))) :]
    elif buf:
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
    return bytes(buf)


def test_fuzzed_payloads_fail_closed_or_stay_canonical():
    """Random and mutated payloads: decoding raises CodecError and nothing
    else, and whatever does decode re-encodes to exactly the same bytes."""
    seen = {"inputs": 0, "decoded": 0}

    @settings(
        max_examples=2500, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(st.data())
    def run(data):
        if data.draw(st.booleans()):
            code, payload = encode_message(data.draw(messages))
            payload = _mutations(payload, data)
        else:
            code = data.draw(st.sampled_from(sorted(codec.MESSAGE_TYPES)))
            payload = data.draw(st.binary(max_size=64))
        seen["inputs"] += 1
        try:
            message = decode_message(code, payload)
        except CodecError as error:
            assert "\n" not in str(error)
            return
        seen["decoded"] += 1
        assert encode_message(message) == (code, payload)

    run()
    print(f"codec fuzz: {seen['inputs']} payloads, {seen['decoded']} decoded and re-encoded identically")
    assert seen["inputs"] >= 2500
    assert 0 < seen["decoded"] < seen["inputs"]


# --------------------------------------------------------------------------
# Entry batches (what a leader's monitor sends its core's entries in).


def _getpids(first: int, count: int, stream: str = "0") -> EntryBatch:
    call = Call("getpid", ())
    return EntryBatch(stream, tuple(Entry(stream, first + n, call, EntryKind.FULL, Outcome(42)) for n in range(count)))


def test_a_batch_round_trips_entry_by_entry():
    batch = _getpids(10, 5)
    decoded = roundtrip(batch)
    assert typed(decoded) == typed(batch)
    assert [e.seq for e in decoded.entries] == [10, 11, 12, 13, 14]
    assert all(e.size == batch.entries[0].size for e in decoded.entries)  # what the CB and acks count


def test_a_batch_takes_a_third_of_the_wire_its_entries_take_one_by_one():
    """One frame (24-byte header, 16-byte tag) instead of a hundred."""
    batch = _getpids(10, 100)
    alone = sum(len(encode_message(entry)[1]) + FRAME_OVERHEAD for entry in batch.entries)
    assert len(encode_message(batch)[1]) + FRAME_OVERHEAD < alone / 3


def _segment_at(payload: bytes, number: int) -> tuple[int, int]:
    """(start, end) of entry ``number``'s segment in a batch payload (small values)."""
    r = codec.PayloadReader(payload)
    r.text(), r.integer(), r.length()
    for _ in range(number):
        r.blob()
    start = r._pos
    length = r.length()
    return start, r._pos + length


def test_a_forged_entry_in_the_middle_of_a_batch_is_named():
    """A segment that does not decode names its entry and sequence number;
    none of the batch is taken (the frame's reader refuses it whole)."""
    code, payload = encode_message(_getpids(10, 5))
    _, end = _segment_at(payload, 2)
    forged = bytearray(payload)
    forged[end - 8 : end - 4] = b"fuII"  # the kind: "full" no more (then result, outputs, digest)
    with pytest.raises(CodecError, match=r"entry 2 \(seq 12\) of the batch: unknown entry kind 'fuII' at byte 8"):
        decode_message(code, bytes(forged))


def test_a_batch_cut_inside_an_entry_is_named():
    code, payload = encode_message(_getpids(10, 5))
    start, _ = _segment_at(payload, 3)
    with pytest.raises(CodecError, match=r"entry 3 \(seq 13\) of the batch"):
        decode_message(code, payload[: start + 3])


def test_a_segment_with_bytes_to_spare_is_refused():
    """Each segment is exactly one entry's encoding: trailing bytes inside it
    are not canonical, even where the batch's own length covers them."""
    code, payload = encode_message(_getpids(10, 2))
    start, end = _segment_at(payload, 1)
    padded = payload[:start] + bytes((payload[start] + 1,)) + payload[start + 1 : end] + b"\x00"
    with pytest.raises(CodecError, match=r"entry 1 \(seq 11\) of the batch: 1 unexpected trailing bytes"):
        decode_message(code, padded)


@pytest.mark.parametrize(
    "entries, needle",
    [
        ((), "1 to 4096 entries"),
        (
            (
                Entry("0", 1, Call("getpid", ()), EntryKind.FULL, Outcome(1)),
                Entry("0", 3, Call("getpid", ()), EntryKind.FULL, Outcome(1)),
            ),
            "its entry 1 is not entry 2 of stream '0'",
        ),
        ((Entry("1", 1, Call("getpid", ()), EntryKind.FULL, Outcome(1)),), "its entry 0 is not entry 1 of stream '0'"),
    ],
)
def test_only_consecutive_entries_of_the_stream_make_a_batch(entries, needle):
    with pytest.raises(CodecError, match=re.escape(needle)):
        encode_message(EntryBatch("0", entries))


def test_an_empty_or_oversized_batch_does_not_decode():
    code, payload = encode_message(_getpids(10, 1))
    empty = payload[:3] + b"\x00"  # stream "0", first 10, no entry
    with pytest.raises(CodecError, match="an entry batch of 0 entries"):
        decode_message(code, empty)


def test_remembered_segments_keep_true_and_one_apart():
    """The encoder remembers segments per call object, so equal-but-differently
    typed arguments (``1 == True``) never share an encoding."""
    one = EntryBatch("0", (Entry("0", 1, Call("x", (1,)), EntryKind.FULL, Outcome(0)),))
    true = EntryBatch("0", (Entry("0", 1, Call("x", (True,)), EntryKind.FULL, Outcome(0)),))
    assert dumps(one) != dumps(true)
    assert typed(loads(dumps(true))) == typed(true)
    assert typed(loads(dumps(one))) == typed(one)


def test_a_run_of_equal_entries_round_trips_and_is_read_in_place():
    """A leader's run of equal calls (one call object, one outcome object:
    ``calls_replicated``) is encoded as each entry alone would be, and the
    decoder takes the repeated segments in place: the same entries, and a
    different entry between runs is read as itself."""
    getpid, read = Call("getpid", ()), Call("read", (3, 4096, 1))
    same, data = Outcome(42), Outcome(1, ((1, b"x"),))
    parts = [(getpid, same)] * 5 + [(read, data)] + [(getpid, same)] * 3 + [(read, Outcome(1, ((1, b"y"),)))]
    batch = EntryBatch("0", tuple(Entry("0", 20 + n, c, EntryKind.FULL, o) for n, (c, o) in enumerate(parts)))
    alone = EntryBatch(
        "0",
        tuple(
            Entry("0", e.seq, Call(e.call.name, e.call.args), e.kind, Outcome(o.result, o.outputs))
            for e in batch.entries
            if (o := e.outcome) is not None
        ),
    )
    assert encode_message(batch) == encode_message(alone)
    decoded = roundtrip(batch)
    assert isinstance(decoded, EntryBatch)
    assert typed(decoded) == typed(batch)
    assert [(e.seq, e.call.name, e.outcome) for e in decoded.entries] == [
        (e.seq, e.call.name, e.outcome) for e in batch.entries
    ]


def test_a_batch_promising_more_equal_entries_than_it_holds_is_named():
    """A count larger than the repeated segments there: the first entry
    missing is named, as for any batch cut short."""
    code, payload = encode_message(_getpids(10, 5))
    forged = payload[:3] + bytes((payload[3] + 1,)) + payload[4:]  # 6 entries promised, 5 there
    whole = decode_message(code, payload)
    assert isinstance(whole, EntryBatch) and whole.entries[-1].seq == 14
    with pytest.raises(CodecError, match=r"entry 5 \(seq 15\) of the batch"):
        decode_message(code, forged)
