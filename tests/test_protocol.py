"""The CONNECTOR framing: valid streams decode exactly, everything else is a
typed ProtocolError, and a reader that saw a bad frame stays poisoned."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmvx import codec, protocol
from dmvx.calls import Call, Outcome
from dmvx.messages import Ack, Entry, EntryBatch, EntryKind, Message, Report, Stop
from dmvx.protocol import (
    FRAME_OVERHEAD,
    HEADER_SIZE,
    MAGIC,
    AuthenticationFailed,
    BadMagic,
    CodecError,
    Forwarded,
    Frame,
    FrameReader,
    FrameWriter,
    GarbageFrame,
    HandshakeFailed,
    Heartbeat,
    Hello,
    OversizedFrame,
    ProtocolError,
    ReorderedFrame,
    ReplayedFrame,
    TruncatedFrame,
    UnsupportedVersion,
    check_hello,
    direction_key,
    new_run_key,
)
from dmvx.syscalls import Arch
from dmvx.verdict import Verdict, VerdictKind
from typed_values import typed

# Fixed keys keep the tests deterministic; new_run_key() is tested on its own.
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
LEADER, FOLLOWER = 0, 1

ENTRY = Entry("0", 1, Call("read", (3, 4096)), EntryKind.FULL, Outcome(5, ((1, b"hello"),)))
REPORT = Report("0", 2, Call("execve", ("/bin/sh", None, None)), FOLLOWER)
ACK = Ack("0", 2, FOLLOWER)
STOP = Stop("0", Verdict(VerdictKind.CALL_MISMATCH, 2, {0: Call("write"), 1: None}, (), "x"))
HELLO = Hello("run-7", LEADER, Arch.X86_64)
SAMPLE = [HELLO, ENTRY, REPORT, Heartbeat(), ACK, STOP]


def frames_of(messages, key=KEY, sender=LEADER, receiver=FOLLOWER):
    writer = FrameWriter(key, sender, receiver)
    return [writer.encode(m) for m in messages]


def read_all(data: bytes, *, chunk: int | None = None, max_frame: int = protocol.DEFAULT_MAX_FRAME):
    """Feed ``data`` (in chunks), close, and return (messages, error)."""
    reader = FrameReader(KEY, LEADER, FOLLOWER, max_frame=max_frame)
    got: list = []
    error = None
    try:
        step = chunk or max(1, len(data))
        for i in range(0, len(data), step):
            reader.feed(data[i : i + step])
            for message in reader:
                got.append(message)
        reader.close()
        for message in reader:
            got.append(message)
    except ProtocolError as caught:
        error = caught
    return got, error, reader


def seal(header: bytes, payload: bytes, key: bytes = KEY, sender=LEADER, receiver=FOLLOWER) -> bytes:
    """What the AEAD makes of ``payload`` under ``header``: ciphertext and tag,
    with the nonce taken from the header's seq (docs/protocol.md, section 2)."""
    nonce = bytes(4) + header[8:16]
    return ChaCha20Poly1305(direction_key(key, sender, receiver)).encrypt(nonce, payload, header)


def sign(header: bytes, payload: bytes, key: bytes = KEY, sender=LEADER, receiver=FOLLOWER) -> bytes:
    """A frame with a *valid* tag over whatever header and payload: what a
    peer holding the key (a buggy or newer one) could send."""
    return header + seal(header, payload, key, sender, receiver)


def header(
    code=0x12, *, seq=1, flags=0, version=protocol.PROTOCOL_VERSION, sender=LEADER, length=0, magic=MAGIC
) -> bytes:
    return struct.pack(">4sBBHQII", magic, version, code, flags, seq, sender, length)


# --------------------------------------------------------------------------
# Keys.


def test_hkdf_matches_rfc5869_test_case_1():
    okm = protocol._hkdf_sha256(b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)))
    assert okm.hex() == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"


def test_direction_keys_differ_per_direction_and_run():
    keys = {
        direction_key(KEY, 0, 1),
        direction_key(KEY, 1, 0),
        direction_key(KEY, 0, 2),
        direction_key(OTHER_KEY, 0, 1),
    }
    assert len(keys) == 4
    assert direction_key(KEY, 0, 1) == direction_key(bytearray(KEY), 0, 1)


def test_key_and_frame_test_vectors_match_docs():
    # docs/protocol.md sections 1 and 3.4: for implementations in other languages.
    assert direction_key(KEY, 0, 1).hex() == "f5c21c58bd3f614f7b60a4efe98eebfc690c661ef71b99665be366eafa7be12e"
    writer = FrameWriter(KEY, 0, 1)
    writer.heartbeat()
    frame = writer.encode(Entry("0", 7, Call("write", (1, b"hello\n", 6)), EntryKind.RESULT, Outcome(6)))
    assert frame.hex() == (
        "444d5658"
        "02"
        "10"
        "0000"
        "0000000000000002"
        "00000000"
        "00000021"
        "667f29fcaf7450e04b8db88b706bfc019b1c7ff26b780d586d1a6c229a8140b6ea"
        "f009066c7f85023c90745f34a168cf8f"
    )


def test_new_run_keys_are_fresh_32_byte_secrets():
    a, b = new_run_key(), new_run_key()
    assert len(a) == 32 and a != b


@pytest.mark.parametrize(
    "key, sender, receiver, needle",
    [(b"short", 0, 1, "at least 16"), (KEY, 0, 0, "both 0"), (KEY, -1, 1, "sender id"), (KEY, 0, 2**32, "receiver id")],
)
def test_bad_link_configuration_is_a_value_error(key, sender, receiver, needle):
    with pytest.raises(ValueError, match=needle):
        FrameWriter(key, sender, receiver)
    with pytest.raises(ValueError, match=needle):
        FrameReader(key, sender, receiver)


# --------------------------------------------------------------------------
# Valid streams.


@pytest.mark.parametrize("chunk", [None, 1, 7, 100])
def test_valid_stream_decodes_in_any_chunking(chunk):
    got, error, reader = read_all(b"".join(frames_of(SAMPLE)), chunk=chunk)
    assert error is None
    assert typed(got) == typed(SAMPLE)
    assert reader.last_seq == len(SAMPLE) and reader.buffered == 0


def test_writer_numbers_frames_from_one():
    writer = FrameWriter(KEY, LEADER, FOLLOWER)
    assert writer.seq == 0
    frames = [writer.encode(ACK), writer.heartbeat(), writer.encode(ACK)]
    assert [struct.unpack_from(">Q", f, 8)[0] for f in frames] == [1, 2, 3] and writer.seq == 3
    assert frames[0] != frames[2]  # same message, different frame


def test_frame_layout():
    frame = FrameWriter(KEY, 3, 9).encode(Heartbeat())
    assert len(frame) == FRAME_OVERHEAD == HEADER_SIZE + 16 == 40
    assert (
        frame[:HEADER_SIZE]
        == MAGIC
        + bytes([2, protocol.TYPE_HEARTBEAT])
        + b"\0\0"
        + (1).to_bytes(8, "big")
        + (3).to_bytes(4, "big")
        + b"\0\0\0\0"
    )
    assert frame[HEADER_SIZE:] == seal(frame[:HEADER_SIZE], b"", KEY, 3, 9)  # the Poly1305 tag alone


def test_payloads_travel_encrypted():
    # Between machines the frames carry file contents: none of it in clear.
    secret = b"root:x:0:0:secret-line-of-etc-passwd"
    entry = Entry("0", 3, Call("read", (3, 4096)), EntryKind.FULL, Outcome(len(secret), ((1, secret),)))
    writer = FrameWriter(KEY, LEADER, FOLLOWER)
    first, second = writer.encode(entry), writer.encode(entry)
    for frame in (first, second):
        assert secret[:8] not in frame and b"read" not in frame
    # The same message twice is two different ciphertexts (the seq is the nonce).
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]
    got, error, _ = read_all(first + second)
    assert error is None and got == [entry, entry]


def test_one_mebibyte_output_round_trips_through_frames():
    big = os.urandom(1 << 20)
    entry = Entry("0", 9, Call("read", (3, 1 << 20)), EntryKind.FULL, Outcome(1 << 20, ((1, big),)))
    got, error, _ = read_all(b"".join(frames_of([entry, ACK])), chunk=65536)
    assert error is None and got == [entry, ACK]


def test_clean_end_of_stream_at_a_frame_boundary():
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.feed(frames_of([ACK])[0])
    reader.close()
    assert list(reader) == [ACK] and reader.next_message() is None and reader.closed


def test_feed_after_close_is_a_usage_error():
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.close()
    with pytest.raises(RuntimeError, match="after close"):
        reader.feed(b"x")


# --------------------------------------------------------------------------
# One test per error type.


def test_truncated_only_at_close():
    frame = frames_of([ENTRY])[0]
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.feed(frame[:-1])
    assert reader.next_message() is None  # more may come: not an error yet
    reader.close()
    with pytest.raises(TruncatedFrame, match=rf"{len(frame) - 1} bytes of a {len(frame)}-byte frame") as caught:
        reader.next_message()
    assert caught.value.verdict_kind is VerdictKind.CONNECTOR_LOST


def test_truncated_inside_the_header():
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.feed(frames_of([ACK])[0] + MAGIC[:2])
    reader.close()
    assert reader.next_message() == ACK
    with pytest.raises(TruncatedFrame, match=r"2 bytes buffered \(stream offset \d+\)"):
        reader.next_message()


def test_oversized_is_refused_from_the_header_alone():
    reader = FrameReader(KEY, LEADER, FOLLOWER, max_frame=1024)
    reader.feed(header(length=2**32 - 1))  # 24 bytes, no body
    with pytest.raises(OversizedFrame, match=f"{2**32 - 1 + FRAME_OVERHEAD}-byte frame, limit is 1024"):
        reader.next_message()
    assert reader.buffered == 0
    # The limit counts the whole frame: exactly max_frame is fine.
    payload = b"\x010\x02\x00"
    exact = sign(header(length=len(payload)), payload)
    assert read_all(exact, max_frame=len(exact))[0] == [Ack("0", 1, 0)]
    assert isinstance(read_all(exact, max_frame=len(exact) - 1)[1], OversizedFrame)


def test_writer_refuses_oversized_messages_without_using_a_number():
    writer = FrameWriter(KEY, LEADER, FOLLOWER, max_frame=200)
    with pytest.raises(OversizedFrame, match="limit is 200"):
        writer.encode(Entry("0", 1, Call("read"), EntryKind.FULL, Outcome(300, ((1, bytes(300)),))))
    assert writer.seq == 0
    with pytest.raises(CodecError):
        writer.encode(Report("0", 1, Call("x", (1.0,)), 1))
    assert writer.seq == 0


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\n", b"\x00", b"D" + b"\x00" * 40, b"DMVY" + bytes(30)])
def test_garbage_is_bad_magic(junk):
    got, error, _ = read_all(junk)
    assert got == [] and isinstance(error, BadMagic) and isinstance(error, GarbageFrame)
    assert "not a dmvx frame" in str(error) and "stream offset 0" in str(error)


def test_garbage_is_caught_at_its_first_byte():
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.feed(b"D")
    assert reader.next_message() is None
    reader.feed(b"X")
    with pytest.raises(BadMagic):
        reader.next_message()


def test_garbage_after_valid_frames_names_its_offset():
    frames = frames_of([ACK, ACK])
    got, error, _ = read_all(b"".join(frames) + b"\xffjunk")
    assert got == [ACK, ACK] and isinstance(error, BadMagic)
    assert error.offset == sum(map(len, frames))


@pytest.mark.parametrize("version", [1, 3])
def test_unsupported_version(version):
    # Version 1 is the old cleartext format: refused from its header, never read.
    _, error, _ = read_all(header(version=version) + bytes(40))
    assert isinstance(error, UnsupportedVersion) and f"version {version}" in str(error)


@pytest.mark.parametrize(
    "position, what",
    [(30, "payload"), (-1, "tag"), (8, "seq"), (15, "seq"), (5, "type"), (7, "flags")],
)
def test_bit_flips_fail_authentication(position, what):
    frame = bytearray(frames_of([ENTRY])[0])
    frame[position] ^= 0x01
    got, error, _ = read_all(bytes(frame))
    assert got == [] and isinstance(error, AuthenticationFailed), what
    assert error.verdict_kind is VerdictKind.AUTH_FAILURE


def test_edited_sequence_number_fails_authentication_not_replay():
    frames = frames_of([ACK, ACK])
    second = bytearray(frames[1])
    second[8:16] = (1).to_bytes(8, "big")  # pretend it is frame 1 again
    got, error, _ = read_all(frames[0] + bytes(second))
    assert got == [ACK] and isinstance(error, AuthenticationFailed)


def test_wrong_run_key_fails_authentication():
    got, error, _ = read_all(b"".join(frames_of(SAMPLE, key=OTHER_KEY)))
    assert got == [] and isinstance(error, AuthenticationFailed) and "tag mismatch" in str(error)


def test_reflected_frame_fails_authentication():
    # A follower's own frame sent back at it: the header says so...
    reflected = frames_of([ACK], sender=FOLLOWER, receiver=LEADER)[0]
    _, error, _ = read_all(reflected)
    assert isinstance(error, AuthenticationFailed) and "reflected" in str(error)
    # ...and editing the header to claim the leader does not help: the tag
    # was made with the follower->leader key.
    forged = bytearray(reflected)
    forged[16:20] = LEADER.to_bytes(4, "big")
    _, error, _ = read_all(bytes(forged))
    assert isinstance(error, AuthenticationFailed) and "tag mismatch" in str(error)


def test_frame_from_a_third_monitor_is_refused():
    _, error, _ = read_all(frames_of([ACK], sender=2, receiver=FOLLOWER)[0])
    assert isinstance(error, AuthenticationFailed) and "claims sender 2" in str(error)


def test_replayed_frame():
    frames = frames_of([ENTRY, ACK])
    got, error, _ = read_all(frames[0] + frames[1] + frames[0])
    assert got == [ENTRY, ACK] and isinstance(error, ReplayedFrame)
    assert (
        str(error)
        == f"sequence number already used (last accepted 2) (seq 1, stream offset {len(frames[0]) + len(frames[1])})"
    )
    assert error.verdict_kind is VerdictKind.AUTH_FAILURE


def test_reordered_frames():
    frames = frames_of([ENTRY, ACK, REPORT])
    got, error, _ = read_all(frames[0] + frames[2] + frames[1])
    assert got == [ENTRY] and isinstance(error, ReorderedFrame) and "frames 2..2 missing" in str(error)
    assert error.seq == 3 and error.verdict_kind is VerdictKind.AUTH_FAILURE


def test_authentic_but_malformed_payload_is_a_codec_error_with_its_seq():
    _, error, _ = read_all(sign(header(length=3), b"\x010\x02"))
    assert isinstance(error, CodecError) and error.seq == 1 and "truncated" in str(error)


def test_heartbeat_with_a_payload_is_a_codec_error():
    _, error, _ = read_all(sign(header(protocol.TYPE_HEARTBEAT, length=1), b"\x00"))
    assert isinstance(error, CodecError) and "heartbeat" in str(error)


@pytest.mark.parametrize(
    "code, flags, needle", [(0x7E, 0, "unknown message type 0x7e"), (0x12, 0x8000, "flags 0x8000")]
)
def test_authentic_frame_with_unknown_type_or_flags(code, flags, needle):
    payload = b"\x010\x02\x00"
    _, error, _ = read_all(sign(header(code, flags=flags, length=len(payload)), payload))
    assert isinstance(error, UnsupportedVersion) and needle in str(error) and error.seq == 1


def test_bad_hello_payload_is_a_codec_error():
    payload = b"\x03run\x00\x05sparc\x02"
    _, error, _ = read_all(sign(header(protocol.TYPE_HELLO, length=len(payload)), payload))
    assert isinstance(error, CodecError) and "unknown hello arch 'sparc'" in str(error)


# --------------------------------------------------------------------------
# Poisoning.


def test_reader_stays_poisoned_with_the_same_error():
    frames = frames_of([ENTRY, ACK])
    forged = bytearray(frames[1])
    forged[-1] ^= 0x80
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.feed(frames[0] + bytes(forged))
    reader.feed(frames[1])  # the genuine frame arrives later: too late
    assert reader.next_message() == ENTRY  # what came before the bad frame still counts
    with pytest.raises(AuthenticationFailed) as first:
        reader.next_message()
    for call in (reader.next_message, lambda: reader.feed(frames[1]), lambda: list(reader)):
        with pytest.raises(AuthenticationFailed) as again:
            call()
        assert again.value is first.value
    reader.close()  # never raises
    with pytest.raises(AuthenticationFailed):
        reader.next_message()
    assert reader.buffered == 0


def test_errors_are_one_line_protocol_errors_with_a_verdict_kind():
    for cls in (
        TruncatedFrame,
        OversizedFrame,
        GarbageFrame,
        BadMagic,
        AuthenticationFailed,
        ReplayedFrame,
        ReorderedFrame,
        UnsupportedVersion,
        CodecError,
        HandshakeFailed,
    ):
        assert issubclass(cls, ProtocolError) and isinstance(cls.verdict_kind, VerdictKind)
    assert str(ReplayedFrame("x", seq=4, offset=10)) == "x (seq 4, stream offset 10)"
    assert str(OversizedFrame("x", offset=0)) == "x (stream offset 0)"


# --------------------------------------------------------------------------
# Handshake.


def test_check_hello():
    assert check_hello(HELLO, run_id="run-7", variant=LEADER) is HELLO
    cases: list[tuple[Frame, str]] = [
        (ACK, "expected a hello first, got Ack"),
        (Hello("run-8", 0, Arch.I386), "run 'run-8', this is run 'run-7'"),
        (Hello("run-7", 2, Arch.I386), "variant 2, this link expects variant 0"),
        (Hello("run-7", 0, Arch.I386, version=9), "version 9"),
    ]
    for message, needle in cases:
        with pytest.raises(HandshakeFailed, match=needle):
            check_hello(message, run_id="run-7", variant=LEADER)


# --------------------------------------------------------------------------
# The fuzz: >= 10,000 random and mutated frames.

ints = st.one_of(st.integers(-5, 300), st.integers(-(2**70), 2**70))
args = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, st.binary(max_size=24), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=6,
)
calls = st.builds(
    Call, st.sampled_from(["read", "write", "openat", "execve", "<exit>"]), st.lists(args, max_size=4).map(tuple)
)
frames_strategy = st.one_of(
    st.builds(
        Entry,
        st.just("0"),
        ints,
        calls,
        st.sampled_from(EntryKind),
        st.none()
        | st.builds(
            Outcome, ints, st.lists(st.tuples(st.integers(0, 5), st.binary(max_size=48)), max_size=2).map(tuple)
        ),
        st.binary(max_size=8),
    ),
    st.builds(Report, st.just("0"), ints, calls, st.integers(0, 3)),
    st.builds(Ack, st.just("0"), ints, st.integers(0, 3)),
    st.builds(
        Stop,
        st.just("0"),
        st.builds(
            Verdict,
            st.sampled_from(VerdictKind),
            ints,
            st.dictionaries(st.integers(0, 3), st.none() | calls, max_size=3),
        ),
    ),
    st.builds(Hello, st.text(max_size=8), st.integers(0, 3), st.sampled_from(Arch)),
    st.just(Heartbeat()),
)

MUTATIONS = [
    "none",
    "bitflip",
    "truncate",
    "splice_other_run",
    "splice_other_direction",
    "splice_self",
    "duplicate",
    "swap",
    "drop",
    "garbage",
    "garbage_after",
    "magic_then_garbage",
    "huge_length",
    "edit_seq",
    "edit_header",
    "insert",
    "delete",
    "replay_tail",
]


def _mutate(kind: str, frames: list[bytes], data: st.DataObject) -> tuple[bytes, int]:
    """Return (mutated stream, number of frames it was made of)."""
    draw = data.draw
    joined = b"".join(frames)
    n = len(frames)
    pick = lambda: draw(st.integers(0, n - 1))  # noqa: E731
    if kind == "none":
        return joined, n
    if kind == "bitflip":
        buf = bytearray(joined)
        for _ in range(draw(st.integers(1, 4))):
            buf[draw(st.integers(0, len(buf) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(buf), n
    if kind == "truncate":
        cut = draw(st.integers(0, len(joined) - 1))
        return joined[:cut], _overlapping(frames, 0, cut)
    if kind in ("splice_other_run", "splice_other_direction"):
        others = draw(st.lists(frames_strategy, min_size=1, max_size=4))
        if kind == "splice_other_run":
            other = b"".join(frames_of(others, key=OTHER_KEY))
        else:  # the reverse direction's frames with the header made to look right
            spliced = bytearray(b"".join(frames_of(others, sender=FOLLOWER, receiver=LEADER)))
            for offset in _frame_offsets(bytes(spliced)):
                spliced[offset + 16 : offset + 20] = LEADER.to_bytes(4, "big")
            other = bytes(spliced)
        cut, resume = draw(st.integers(0, len(joined))), draw(st.integers(0, len(other)))
        other_frames = [
            other[o : o + FRAME_OVERHEAD + int.from_bytes(other[o + 20 : o + 24], "big")] for o in _frame_offsets(other)
        ]
        return joined[:cut] + other[resume:], _overlapping(frames, 0, cut) + _overlapping(
            other_frames, resume, len(other)
        )
    if kind == "splice_self":
        cut, resume = draw(st.integers(0, len(joined))), draw(st.integers(0, len(joined)))
        return joined[:cut] + joined[resume:], _overlapping(frames, 0, cut) + _overlapping(frames, resume, len(joined))
    if kind == "duplicate":
        out = list(frames)
        out.insert(draw(st.integers(0, n)), frames[pick()])
        return b"".join(out), n + 1
    if kind == "swap":
        out = list(frames)
        i, j = pick(), pick()
        out[i], out[j] = out[j], out[i]
        return b"".join(out), n
    if kind == "drop":
        out = list(frames)
        del out[pick()]
        return b"".join(out), n - 1
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=200)), 1
    if kind == "garbage_after":
        return joined + draw(st.binary(min_size=1, max_size=100)), n + 1
    if kind == "magic_then_garbage":
        return joined + MAGIC + bytes([1]) + draw(st.binary(min_size=0, max_size=120)), n + 1
    buf = bytearray(joined)
    offsets = _frame_offsets(joined)
    at = offsets[pick()]
    if kind == "huge_length":
        buf[at + 20 : at + 24] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    elif kind == "edit_seq":
        buf[at + 8 : at + 16] = draw(st.integers(0, 2**64 - 1)).to_bytes(8, "big")
    elif kind == "edit_header":
        buf[at + draw(st.integers(0, HEADER_SIZE - 1))] = draw(st.integers(0, 255))
    elif kind == "insert":
        i = draw(st.integers(0, len(buf)))
        buf[i:i] = draw(st.binary(min_size=1, max_size=16))
    elif kind == "delete":
        i = draw(st.integers(0, len(buf) - 1))
        del buf[i : i + draw(st.integers(1, 64))]
    elif kind == "replay_tail":
        start = draw(st.integers(0, n - 1))
        return joined + b"".join(frames[start:]), n + (n - start)
    return bytes(buf), n


def _overlapping(frames: list[bytes], lo: int, hi: int) -> int:
    """How many of ``frames`` (laid end to end) have bytes in [lo, hi)."""
    count, at = 0, 0
    for frame in frames:
        if at < hi and at + len(frame) > lo:
            count += 1
        at += len(frame)
    return count


def _frame_offsets(stream: bytes) -> list[int]:
    offsets, at = [], 0
    while at < len(stream):
        offsets.append(at)
        at += FRAME_OVERHEAD + int.from_bytes(stream[at + 20 : at + 24], "big")
    return offsets


def test_fuzzed_streams_fail_closed():
    """Feed >= 10,000 frames, valid and mutated, in random chunkings.

    Whatever happens: only ProtocolError subclasses are raised; the messages
    accepted are always a prefix of the messages sent (a mutated frame is
    never accepted as a different message); without an error, the input was
    exactly that prefix's frames; an unmutated stream decodes completely.
    """
    counts = {"examples": 0, "frames": 0, "errors": 0}

    @settings(
        max_examples=3000,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.lists(frames_strategy, min_size=2, max_size=7),
        st.sampled_from(MUTATIONS),
        st.sampled_from([None, 1, 3, 16, 100]),
        st.data(),
    )
    def run(messages, kind, chunk, data):
        frames = frames_of(messages)
        stream, count = _mutate(kind, frames, data)
        counts["examples"] += 1
        counts["frames"] += count
        got, error, reader = read_all(stream, chunk=chunk)
        assert typed(got) == typed(messages[: len(got)]), kind
        if error is None:
            assert stream == b"".join(frames[: len(got)]), kind
        else:
            counts["errors"] += 1
            assert "\n" not in str(error)
            with pytest.raises(type(error)):
                reader.next_message()
        if kind == "none":
            assert error is None and len(got) == len(messages)

    run()
    print(f"protocol fuzz: {counts['frames']} frames in {counts['examples']} streams, {counts['errors']} rejected")
    assert counts["frames"] >= 10_000


def test_a_record_is_framed_as_its_message_would_be() -> None:
    # A CONNECTOR frames its monitor's codec records as they are, and hands
    # its monitor the records it received, decoded (checked) but not encoded again.
    from dmvx import codec

    by_message, by_record = FrameWriter(KEY, LEADER, FOLLOWER), FrameWriter(KEY, LEADER, FOLLOWER)
    messages: list[Message] = [ENTRY, REPORT, ACK, STOP]
    frames = [by_message.encode(m) for m in messages]
    assert [by_record.encode_record(codec.dumps(m)) for m in messages] == frames
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.feed(b"".join(frames_of([HELLO, Heartbeat()])))
    assert list(reader.records()) == [(HELLO, b""), (Heartbeat(), b"")]
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.feed(b"".join(frames))
    assert list(reader.records()) == [(m, codec.dumps(m)) for m in messages]


@pytest.mark.parametrize("record", [b"", b"\xee", b"\x00"])
def test_only_monitor_messages_are_framed_from_records(record: bytes) -> None:
    writer = FrameWriter(KEY, LEADER, FOLLOWER)
    with pytest.raises(CodecError, match="cannot frame"):
        writer.encode_record(record)
    assert writer.seq == 0  # no number used


def test_records_raise_what_ended_the_stream() -> None:
    forged = bytearray(frames_of([ENTRY])[0])
    forged[-1] ^= 1
    reader = FrameReader(KEY, LEADER, FOLLOWER)
    reader.feed(frames_of([REPORT])[0] + bytes(forged))
    records = reader.records()
    assert next(records)[0] == REPORT
    with pytest.raises(AuthenticationFailed):
        next(records)


# --------------------------------------------------------------------------
# Admission: the challenge-response that opens a link.

from dmvx.protocol import (  # noqa: E402 - grouped with the tests that use them
    CHALLENGE_SIZE,
    RESPONSE_SIZE,
    WELCOME_SIZE,
    Admission,
    AdmissionFailed,
    Join,
)

RUN_KEY = bytes(range(32))


def answer(follower: Join) -> bytes:
    """The follower's answer to the challenge it was given."""
    assert follower.answer is not None
    return follower.answer


def _handshake(leader: Admission, follower: Join) -> int:
    assert follower.receive(leader.challenge) is False
    assert follower.answer is not None and len(follower.answer) == RESPONSE_SIZE
    variant = leader.receive(follower.answer)
    assert variant is not None
    assert leader.welcome is not None and len(leader.welcome) == WELCOME_SIZE
    assert follower.receive(leader.welcome) is True
    return variant


def test_admission_admits_the_follower_and_both_sides_share_a_fresh_session_key():
    leader, follower = Admission(RUN_KEY, {1, 2}), Join(RUN_KEY, 2)
    assert len(leader.challenge) == CHALLENGE_SIZE
    assert _handshake(leader, follower) == 2
    assert leader.session_key == follower.session_key != RUN_KEY
    again = Admission(RUN_KEY, {1, 2}), Join(RUN_KEY, 2)
    _handshake(*again)
    assert again[0].session_key != leader.session_key  # fresh nonces, fresh key


def test_admission_in_any_chunking_keeps_what_follows_the_handshake():
    leader, follower = Admission(RUN_KEY, {1}), Join(RUN_KEY, 1)
    for byte in leader.challenge:
        follower.receive(bytes((byte,)))
    replied = answer(follower) + b"first frame"
    for i, byte in enumerate(replied):
        got = leader.receive(bytes((byte,)))
        assert got == (1 if i >= RESPONSE_SIZE - 1 else None)
    assert leader.rest == b"first frame"
    assert leader.welcome is not None
    assert follower.receive(leader.welcome + b"reply") and follower.rest == b"reply"


def test_frames_of_one_link_do_not_authenticate_on_another():
    first, second = (Admission(RUN_KEY, {1}), Join(RUN_KEY, 1)), (Admission(RUN_KEY, {1}), Join(RUN_KEY, 1))
    _handshake(*first)
    _handshake(*second)
    assert first[1].session_key is not None and second[0].session_key is not None
    hello = FrameWriter(first[1].session_key, 1, 0).encode(Hello("run", 1, Arch.X86_64))
    reader = FrameReader(second[0].session_key, 1, 0)
    reader.feed(hello)
    with pytest.raises(AuthenticationFailed):
        reader.next_message()


@pytest.mark.parametrize(
    "attack,needle",
    [
        (b"GET / HTTP/1.0\r\n\r\n", "not a dmvx join answer"),
        # the old opening: a frame header claiming to be follower 1
        (FrameWriter(bytes(32), 1, 0).encode(Hello("run", 1, Arch.X86_64)), "not a dmvx join answer"),
    ],
)
def test_garbage_and_frames_are_refused_from_their_first_bytes(attack, needle):
    leader = Admission(RUN_KEY, {1})
    with pytest.raises(AdmissionFailed, match=needle):
        leader.receive(attack[:6])
    assert leader.variant is None


def test_a_replayed_answer_fails_the_new_challenge():
    recorded = Admission(RUN_KEY, {1}), Join(RUN_KEY, 1)
    _handshake(*recorded)
    leader = Admission(RUN_KEY, {1})
    with pytest.raises(AdmissionFailed, match="failed the challenge") as error:
        leader.receive(answer(recorded[1]))
    assert error.value.verdict_kind is VerdictKind.AUTH_FAILURE
    assert leader.variant is None and leader.session_key is None


def test_an_impostor_without_the_key_is_refused():
    leader, impostor = Admission(RUN_KEY, {1}), Join(bytes(32), 1)
    impostor.receive(leader.challenge)
    with pytest.raises(AdmissionFailed, match="variant 1 failed the challenge"):
        leader.receive(answer(impostor))


def test_a_slot_taken_or_out_of_range_is_refused_even_with_the_key():
    waiting = {1, 2}
    leader, follower = Admission(RUN_KEY, waiting), Join(RUN_KEY, 1)
    follower.receive(leader.challenge)
    waiting.discard(1)  # follower 1 got in over another connection meanwhile
    with pytest.raises(AdmissionFailed, match="variant 1, which has no free slot"):
        leader.receive(answer(follower))
    leader, follower = Admission(RUN_KEY, waiting), Join(RUN_KEY, 7)
    follower.receive(leader.challenge)
    with pytest.raises(AdmissionFailed, match="variant 7"):
        leader.receive(answer(follower))


def test_a_follower_refuses_an_impostor_leader():
    impostor, follower = Admission(bytes(32), {1}), Join(RUN_KEY, 1)
    follower.receive(impostor.challenge)
    impostor_welcome = MAGIC + bytes([protocol.PROTOCOL_VERSION]) + b"W" + bytes(32)
    with pytest.raises(AdmissionFailed, match="welcome does not authenticate"):
        follower.receive(impostor_welcome)
    assert follower.session_key is None


def test_nonces_must_be_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        Admission(RUN_KEY, {1}, nonce=b"short")


# -- forward: a batch checked as a frame, its payload left to the next hop ------


def _batch() -> EntryBatch:
    return EntryBatch("0", (ENTRY, Entry("0", 2, Call("close", (3,)), EntryKind.FULL, Outcome(0))))


def _raw_frame(code: int, payload: bytes) -> bytes:
    """A frame of type ``code`` sealed as a leader's CONNECTOR seals its
    monitor's record, whatever ``payload`` says (it frames, never checks)."""
    return FrameWriter(KEY, LEADER, FOLLOWER).encode_record(bytes((code,)) + payload)


def test_a_forwarded_batch_comes_out_unread_with_its_record() -> None:
    reader = FrameReader(KEY, LEADER, FOLLOWER, forward={codec.TYPE_ENTRY_BATCH})
    reader.feed(b"".join(frames_of([HELLO, _batch(), ACK])))
    got = list(reader.records())
    assert [frame for frame, _ in got] == [HELLO, Forwarded(codec.TYPE_ENTRY_BATCH), ACK]
    assert codec.loads(got[1][1]) == _batch()  # the record the next hop decodes


def test_a_forwarded_frame_is_still_checked_as_a_frame() -> None:
    reader = FrameReader(KEY, LEADER, FOLLOWER, forward={codec.TYPE_ENTRY_BATCH})
    frame = bytearray(frames_of([_batch()])[0])
    frame[-1] ^= 1  # the tag
    reader.feed(bytes(frame))
    with pytest.raises(AuthenticationFailed):
        reader.next_message()


def test_a_bad_batch_is_refused_by_the_reader_that_decodes_it() -> None:
    """Without ``forward`` the reader refuses it; with it, the payload goes on
    as it came, and decoding it there refuses it the same way."""
    payload = codec.dumps(_batch())[1:] + b"\x00"  # one byte past the encoding
    frame = _raw_frame(codec.TYPE_ENTRY_BATCH, payload)
    checking = FrameReader(KEY, LEADER, FOLLOWER)
    checking.feed(frame)
    with pytest.raises(CodecError) as refused:
        checking.next_message()
    passing = FrameReader(KEY, LEADER, FOLLOWER, forward={codec.TYPE_ENTRY_BATCH})
    passing.feed(frame)
    [(forwarded, record)] = list(passing.records())
    assert forwarded == Forwarded(codec.TYPE_ENTRY_BATCH)
    with pytest.raises(CodecError) as later:
        codec.loads(record)
    assert str(later.value) in str(refused.value)  # the same complaint, less the frame's place


def test_only_monitor_messages_can_be_forwarded() -> None:
    with pytest.raises(ValueError, match="not monitor message types"):
        FrameReader(KEY, LEADER, FOLLOWER, forward={protocol.TYPE_HELLO})
