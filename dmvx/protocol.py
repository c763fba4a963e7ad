"""The CONNECTOR wire protocol: framed, sequenced, encrypted and authenticated messages.

The CONNECTOR exists so that a compromised variant cannot speak for its
monitor; that only holds if nobody else on the network can either. So every
frame carries a sequence number, and its payload is sealed with
ChaCha20-Poly1305 (an AEAD, from the ``cryptography`` library: nothing
cryptographic is written here) under a key that only this run's monitors
know, with the header as associated data. The reader accepts a frame only if
it opens under that key, the sender is the peer it expects, and the number
is exactly one more than the last one. Encryption, not only authentication,
because between machines the frames carry file contents and received data.
Anything else -- garbage, a forged or bit-flipped frame, a frame replayed
or reordered, a frame reflected back at its sender, a stream cut mid-frame
-- is a typed :class:`ProtocolError` with one line
saying what and where, never an unhandled exception.

Like ``h11``, this module does no I/O. :class:`FrameWriter` turns messages into
bytes; :class:`FrameReader` is fed whatever bytes arrived, in whatever chunks,
and hands back messages. Real mode drives them over TCP, sim mode over its
modelled links, tests over byte strings.

Keys: :func:`new_run_key` makes 32 random bytes per run, handed to every
monitor out of band (inherited by a forked CONNECTOR, or written down an
SSH session's stdin to a remote agent). Frames are never sealed with it directly: each direction ``a -> b``
has its own key derived with HKDF-SHA256 (RFC 5869), so a frame sent from
``a`` to ``b`` does not authenticate as ``b -> a`` and cannot be reflected.

Admission: before any frame, a link opens with a challenge-response
handshake (:class:`Admission` on the leader's side, :class:`Join` on a
follower's): the leader sends a fresh nonce, the follower answers with its
variant index, its own nonce and an HMAC over both nonces under its
direction key, and the leader proves itself the same way. Only then does the
leader's CONNECTOR give the peer a slot, so a stranger, a silent connection or
an impostor claiming a follower's index never takes one. Frames on the link
are then keyed by a *session key* derived from the run key and both nonces,
so nothing recorded on an earlier link (a hello, any frame) replays on this
one.

A writer/reader pair lives as long as the run: sequence numbers are never
reset, and a lost link is the end of the run (``connector-lost``), not a
reconnect -- a reconnect that restarted at 1 would make old frames
replayable. The frame layout, byte by byte, is in ``docs/protocol.md``.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from collections import deque
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from dmvx import codec
from dmvx.codec import CodecError, ProtocolError
from dmvx.messages import Carried
from dmvx.syscalls import Arch
from dmvx.verdict import VerdictKind

__all__ = [
    "PROTOCOL_VERSION",
    "MAGIC",
    "HEADER_SIZE",
    "TAG_SIZE",
    "FRAME_OVERHEAD",
    "DEFAULT_MAX_FRAME",
    "TYPE_HELLO",
    "TYPE_HEARTBEAT",
    "TYPE_KEEPALIVE",
    "Hello",
    "Heartbeat",
    "Keepalive",
    "Frame",
    "Forwarded",
    "Received",
    "ProtocolError",
    "CodecError",
    "TruncatedFrame",
    "OversizedFrame",
    "GarbageFrame",
    "BadMagic",
    "AuthenticationFailed",
    "ReplayedFrame",
    "ReorderedFrame",
    "UnsupportedVersion",
    "HandshakeFailed",
    "AdmissionFailed",
    "new_run_key",
    "direction_key",
    "FrameWriter",
    "FrameReader",
    "check_hello",
    "NONCE_SIZE",
    "CHALLENGE_SIZE",
    "RESPONSE_SIZE",
    "WELCOME_SIZE",
    "session_key",
    "Admission",
    "Join",
]

#: 2: payloads encrypted with ChaCha20-Poly1305 (1 had them in clear under an HMAC-SHA256 tag).
PROTOCOL_VERSION = 2
MAGIC = b"DMVX"

# magic, version, type, flags, seq, sender, payload length -- big-endian.
_HEADER = struct.Struct(">4sBBHQII")
HEADER_SIZE = _HEADER.size  # 24
#: The Poly1305 tag that closes every frame (and the admission's HMAC-SHA256 tags: 32 bytes).
TAG_SIZE = 16
_HMAC_SIZE = 32
FRAME_OVERHEAD = HEADER_SIZE + TAG_SIZE
# The AEAD nonce of a frame: 4 zero bytes, then its sequence number. Unique
# per key because each key seals one direction of one link, and a writer
# never uses a number twice.
_AEAD_NONCE = struct.Struct(">4xQ")
#: Largest frame (header + payload + tag) a reader accepts by default.
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
_MAX_SEQ = 2**64 - 1
_MAX_ID = 2**32 - 1
_MIN_RUN_KEY = 16

TYPE_HELLO = 0x01
TYPE_HEARTBEAT = 0x02
TYPE_KEEPALIVE = 0x03

_HKDF_SALT = b"dmvx connector v1"


# --------------------------------------------------------------------------
# Errors. ProtocolError and CodecError live in dmvx.codec (the lower layer)
# and are re-exported here.


class TruncatedFrame(ProtocolError):
    """The stream ended (``close()``) with part of a frame buffered."""

    verdict_kind = VerdictKind.CONNECTOR_LOST


class OversizedFrame(ProtocolError):
    """A header announced a frame larger than the reader's ``max_frame``."""


class GarbageFrame(ProtocolError):
    """Bytes that are not a dmvx frame at all."""


class BadMagic(GarbageFrame):
    """The first bytes of a frame are not ``DMVX``."""


class AuthenticationFailed(ProtocolError):
    """The frame does not open under this direction's key (its tag is wrong:
    forged, corrupted, wrong key or wrong direction), or it names a sender
    other than this link's peer."""

    verdict_kind = VerdictKind.AUTH_FAILURE


class ReplayedFrame(ProtocolError):
    """An authentic frame whose sequence number was already used."""

    verdict_kind = VerdictKind.AUTH_FAILURE


class ReorderedFrame(ProtocolError):
    """An authentic frame that skips sequence numbers (frames missing)."""

    verdict_kind = VerdictKind.AUTH_FAILURE


class UnsupportedVersion(ProtocolError):
    """A version, flag or message type this build does not speak."""


class HandshakeFailed(ProtocolError):
    """The peer's first message is not the :class:`Hello` this link expects."""


class AdmissionFailed(HandshakeFailed):
    """The peer did not prove it holds the run key in the challenge-response
    that opens a link (:class:`Admission`, :class:`Join`): garbage, a wrong
    key, a replayed answer, or an index that has no free slot."""

    verdict_kind = VerdictKind.AUTH_FAILURE


# --------------------------------------------------------------------------
# Control messages (the monitor messages are in dmvx.messages).


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame on every link, in each direction: who is speaking.

    ``run_id`` must match the receiver's run, ``variant`` is the sender's
    variant index, ``arch`` its architecture, ``version`` the protocol version
    it speaks. (The frame's authentication already proves the sender holds
    this run's key; the hello turns a misconfigured launch into a clear
    message instead of a silent mismatch.)
    """

    run_id: str
    variant: int
    arch: Arch
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Keepalive with no payload. It takes a sequence number like any frame,
    so a replayed heartbeat cannot fake a live peer."""


@dataclass(frozen=True, slots=True)
class Keepalive:
    """The sending CONNECTOR is alive, and says nothing about its variant.

    A :class:`Heartbeat` is the variant's ("busy inside a native call, keep
    waiting") and excuses a monitor's wait; a keepalive only keeps the link
    from being taken for lost: a CONNECTOR sends one when it has sent
    nothing for a while, and a link silent for longer than the mode's
    timeout is lost (a stopped host, a cut cable, a link losing every
    frame). Sequenced and tagged like any frame, so none can be replayed."""


@dataclass(frozen=True, slots=True)
class Forwarded:
    """An authentic frame of message type ``code`` whose payload a
    :class:`FrameReader` was told to pass on unread (its ``forward``): the
    one who reads it next decodes it, and so checks it, once.

    A follower's CONNECTOR decoded every batch of the leader's entries only
    to check it, and its monitor decoded it again to use it: on lighttpd
    (py-spy) four fifths of that CONNECTOR's Python, ~8% of the whole
    pipeline's CPU. The frame's tag, sequence and header are still checked
    here; what the payload says is the monitor's to check."""

    code: int


Frame = Carried | Hello | Heartbeat | Keepalive
#: What a :class:`FrameReader` gives: a frame, or one it passed on unread.
Received = Frame | Forwarded


def _encode_hello(hello: Hello) -> bytes:
    out = bytearray()
    codec.put_str(out, hello.run_id, "hello run id")
    codec.put_int(out, hello.variant, "hello variant")
    codec.put_enum(out, hello.arch, Arch, "hello arch")
    codec.put_int(out, hello.version, "hello version")
    return bytes(out)


def _decode_hello(payload: bytes) -> Hello:
    r = codec.PayloadReader(payload)
    hello = Hello(
        r.text("hello run id"), r.integer("hello variant"), r.enum(Arch, "hello arch"), r.integer("hello version")
    )
    r.done()
    return hello


def _encode(message: Frame) -> tuple[int, bytes]:
    if isinstance(message, Heartbeat):
        return TYPE_HEARTBEAT, b""
    if isinstance(message, Keepalive):
        return TYPE_KEEPALIVE, b""
    if isinstance(message, Hello):
        return TYPE_HELLO, _encode_hello(message)
    return codec.encode_message(message)


def _decode(code: int, payload: bytes) -> Frame:
    if code in codec.MESSAGE_TYPES:
        return codec.decode_message(code, payload)
    if code == TYPE_HEARTBEAT:
        if payload:
            raise CodecError(f"heartbeat carries {len(payload)} payload bytes, expected none")
        return Heartbeat()
    if code == TYPE_KEEPALIVE:
        if payload:
            raise CodecError(f"keepalive carries {len(payload)} payload bytes, expected none")
        return Keepalive()
    if code == TYPE_HELLO:
        return _decode_hello(payload)
    raise UnsupportedVersion(f"unknown message type 0x{code:02x}")


def check_hello(message: Received, *, run_id: str, variant: int | None = None) -> Hello:
    """Return ``message`` if it is the hello this link expects, else raise
    :class:`HandshakeFailed`."""
    if not isinstance(message, Hello):
        raise HandshakeFailed(f"expected a hello first, got {type(message).__name__}")
    if message.version != PROTOCOL_VERSION:
        raise HandshakeFailed(f"peer speaks protocol version {message.version}, this build {PROTOCOL_VERSION}")
    if message.run_id != run_id:
        raise HandshakeFailed(f"peer belongs to run {message.run_id!r}, this is run {run_id!r}")
    if variant is not None and message.variant != variant:
        raise HandshakeFailed(f"peer says it is variant {message.variant}, this link expects variant {variant}")
    return message


# --------------------------------------------------------------------------
# Keys.


def new_run_key() -> bytes:
    """A fresh 32-byte secret for one run, to be shared out of band."""
    return secrets.token_bytes(32)


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) with a 32-byte output (a single expand block)."""
    prk = hmac.digest(salt, ikm, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def direction_key(run_key: bytes | bytearray, sender: int, receiver: int) -> bytes:
    """The key that authenticates frames from ``sender`` to ``receiver``."""
    if not isinstance(run_key, (bytes, bytearray)) or len(run_key) < _MIN_RUN_KEY:
        raise ValueError(f"run key must be at least {_MIN_RUN_KEY} bytes (use new_run_key())")
    for name, ident in (("sender", sender), ("receiver", receiver)):
        if not isinstance(ident, int) or isinstance(ident, bool) or not 0 <= ident <= _MAX_ID:
            raise ValueError(f"{name} id must be an int in 0..{_MAX_ID}, got {ident!r}")
    if sender == receiver:
        raise ValueError(f"sender and receiver are both {sender}: a link joins two different monitors")
    info = b"dmvx/v%d frames %d->%d" % (PROTOCOL_VERSION, sender, receiver)
    return _hkdf_sha256(bytes(run_key), _HKDF_SALT, info)


# --------------------------------------------------------------------------
# Admission: the challenge-response handshake that opens every link.
#
# Fixed-size, unframed messages (the frame keys come out of the handshake):
#   challenge  leader -> follower  "DMVX" version 'C' nonce_L(32)                     38 bytes
#   response   follower -> leader  "DMVX" version 'R' variant(u32) nonce_F(32) tag(32) 74 bytes
#   welcome    leader -> follower  "DMVX" version 'W' tag(32)                          38 bytes
# response tag = HMAC(direction_key(run, F, 0), "dmvx/v2 join" || nonce_L || nonce_F || F)
# welcome tag  = HMAC(direction_key(run, 0, F), "dmvx/v2 welcome" || nonce_L || nonce_F)

NONCE_SIZE = 32
_HS_HEAD = MAGIC + bytes((PROTOCOL_VERSION,))
CHALLENGE_SIZE = len(_HS_HEAD) + 1 + NONCE_SIZE
RESPONSE_SIZE = len(_HS_HEAD) + 1 + 4 + NONCE_SIZE + _HMAC_SIZE
WELCOME_SIZE = len(_HS_HEAD) + 1 + _HMAC_SIZE


def session_key(run_key: bytes | bytearray, leader_nonce: bytes, follower_nonce: bytes) -> bytes:
    """The key a link's frames are authenticated under (through
    :func:`direction_key`): bound to both nonces, so frames of another link
    of the same run -- or of an earlier try -- do not authenticate here."""
    direction_key(run_key, 1, 0)  # the same checks on the run key
    info = b"dmvx/v%d session " % PROTOCOL_VERSION + leader_nonce + follower_nonce
    return _hkdf_sha256(bytes(run_key), _HKDF_SALT, info)


def _join_tag(run_key: bytes | bytearray, variant: int, leader_nonce: bytes, follower_nonce: bytes) -> bytes:
    msg = b"dmvx/v%d join " % PROTOCOL_VERSION + leader_nonce + follower_nonce + variant.to_bytes(4, "big")
    return hmac.digest(direction_key(run_key, variant, 0), msg, "sha256")


def _welcome_tag(run_key: bytes | bytearray, variant: int, leader_nonce: bytes, follower_nonce: bytes) -> bytes:
    msg = b"dmvx/v%d welcome " % PROTOCOL_VERSION + leader_nonce + follower_nonce
    return hmac.digest(direction_key(run_key, 0, variant), msg, "sha256")


def _nonce(nonce: bytes | None) -> bytes:
    if nonce is None:
        return secrets.token_bytes(NONCE_SIZE)
    if not isinstance(nonce, (bytes, bytearray)) or len(nonce) != NONCE_SIZE:
        raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
    return bytes(nonce)


def _check_head(data: bytes, code: bytes, what: str) -> None:
    """Refuse a handshake message from its first bytes: garbage is told
    apart as soon as it arrives, not after a full message's worth."""
    head = _HS_HEAD + code
    n = min(len(data), len(head))
    if data[:n] != head[:n]:
        raise AdmissionFailed(f"not a dmvx {what}: starts with {bytes(data[:n]).hex()}, expected {head.hex()}")


class Admission:
    """The leader's side of one link's handshake.

    Send :attr:`challenge` on accepting a connection, :meth:`receive` what
    the peer sends until :attr:`variant` is set, then send :attr:`welcome`.
    ``waiting`` is the set of follower indexes still without a slot: a valid
    answer for any other index (a follower already in, an index out of
    range) is refused like a forged one. Every refusal is a
    :class:`AdmissionFailed`; the caller drops that connection and keeps
    waiting for the real peers.
    """

    def __init__(self, run_key: bytes | bytearray, waiting: AbstractSet[int], *, nonce: bytes | None = None) -> None:
        self._run_key = bytes(run_key)
        direction_key(self._run_key, 1, 0)
        self._waiting = waiting  # the caller's, live: a slot taken meanwhile is no longer free
        self.nonce = _nonce(nonce)
        self.challenge = _HS_HEAD + b"C" + self.nonce
        self._buf = b""
        #: Set once the peer has proved it holds the run key.
        self.variant: int | None = None
        self.session_key: bytes | None = None
        self.welcome: bytes | None = None
        #: Bytes received after the handshake (the peer's first frames).
        self.rest = b""

    def receive(self, data: bytes) -> int | None:
        """Take bytes from the peer; the admitted variant index once the
        answer is complete and right, None while more is needed."""
        if self.variant is not None:
            self.rest += data
            return self.variant
        self._buf += data
        _check_head(self._buf, b"R", "join answer")
        if len(self._buf) < RESPONSE_SIZE:
            return None
        answer, self.rest = self._buf[:RESPONSE_SIZE], self._buf[RESPONSE_SIZE:]
        self._buf = b""
        at = len(_HS_HEAD) + 1
        variant = int.from_bytes(answer[at : at + 4], "big")
        theirs = answer[at + 4 : at + 4 + NONCE_SIZE]
        tag = answer[at + 4 + NONCE_SIZE :]
        if variant not in self._waiting:
            raise AdmissionFailed(f"peer claims variant {variant}, which has no free slot")
        if not hmac.compare_digest(tag, _join_tag(self._run_key, variant, self.nonce, theirs)):
            raise AdmissionFailed(
                f"peer claiming variant {variant} failed the challenge (wrong run key or a replayed answer)"
            )
        self.variant = variant
        self.session_key = session_key(self._run_key, self.nonce, theirs)
        self.welcome = _HS_HEAD + b"W" + _welcome_tag(self._run_key, variant, self.nonce, theirs)
        return variant


class Join:
    """A follower's side of its link's handshake: :meth:`receive` the
    leader's bytes; once the challenge is in, :attr:`answer` is set (send
    it); once the leader's welcome proves it holds the run key too,
    :attr:`session_key` is set and :meth:`receive` returns True."""

    def __init__(self, run_key: bytes | bytearray, variant: int, *, nonce: bytes | None = None) -> None:
        self._run_key = bytes(run_key)
        direction_key(self._run_key, variant, 0)
        self.variant = variant
        self.nonce = _nonce(nonce)
        self._leader_nonce: bytes | None = None
        self._buf = b""
        self.answer: bytes | None = None
        self.session_key: bytes | None = None
        self.rest = b""

    def receive(self, data: bytes) -> bool:
        if self.session_key is not None:
            self.rest += data
            return True
        self._buf += data
        if self._leader_nonce is None:
            _check_head(self._buf, b"C", "challenge")
            if len(self._buf) < CHALLENGE_SIZE:
                return False
            self._leader_nonce = self._buf[len(_HS_HEAD) + 1 : CHALLENGE_SIZE]
            self._buf = self._buf[CHALLENGE_SIZE:]
            tag = _join_tag(self._run_key, self.variant, self._leader_nonce, self.nonce)
            self.answer = _HS_HEAD + b"R" + self.variant.to_bytes(4, "big") + self.nonce + tag
        _check_head(self._buf, b"W", "welcome")
        if len(self._buf) < WELCOME_SIZE:
            return False
        tag = self._buf[len(_HS_HEAD) + 1 : WELCOME_SIZE]
        if not hmac.compare_digest(tag, _welcome_tag(self._run_key, self.variant, self._leader_nonce, self.nonce)):
            raise AdmissionFailed("the leader's welcome does not authenticate (wrong run key, or not our leader)")
        self.rest = self._buf[WELCOME_SIZE:]
        self._buf = b""
        self.session_key = session_key(self._run_key, self._leader_nonce, self.nonce)
        return True


# --------------------------------------------------------------------------
# Writer and reader.


class _Direction:
    """One direction of a link, ``sender`` to ``receiver``: what its writer and its reader
    share, the direction's own AEAD key (derived from the link's, so a frame cannot be
    reflected back) and the largest frame either takes.

    ``key`` is the link's session key (:func:`session_key`): a key seals one
    direction of one link, so the frame's sequence number is a nonce never used
    twice with it. Two writers for one direction under one key would reuse nonces
    -- which a CONNECTOR never does, since each link's handshake makes a new key."""

    def __init__(self, key: bytes, sender: int, receiver: int, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._aead = ChaCha20Poly1305(direction_key(key, sender, receiver))
        self.sender = sender
        self.receiver = receiver
        if not isinstance(max_frame, int) or max_frame < FRAME_OVERHEAD:
            raise ValueError(f"max_frame must be an int >= {FRAME_OVERHEAD}, got {max_frame!r}")
        self.max_frame = max_frame


class FrameWriter(_Direction):
    """Encodes messages from ``sender`` to ``receiver`` into frames.

    Sequence numbers start at 1 and go up by one per frame, heartbeats
    included. A message that cannot be encoded, or whose frame would exceed
    ``max_frame``, raises and uses no number.
    """

    def __init__(self, key: bytes, sender: int, receiver: int, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(key, sender, receiver, max_frame=max_frame)
        self._seq = 0

    @property
    def seq(self) -> int:
        """The sequence number of the last frame written (0 before any)."""
        return self._seq

    def encode(self, message: Frame) -> bytes:
        """The frame for ``message``, with the next sequence number."""
        code, payload = _encode(message)
        return self._frame(code, payload, type(message).__name__)

    def encode_record(self, record: bytes) -> bytes:
        """The frame for a monitor message already encoded as a
        :func:`dmvx.codec.dumps` record (type byte + payload), as a CONNECTOR
        gets it from its monitor: framed as it is, not decoded and encoded
        again. Only the type is checked here; the receiver decodes the
        payload and refuses it unless it is canonical, as for any frame."""
        if not record or record[0] not in codec.MESSAGE_TYPES:
            kind = f"type 0x{record[0]:02x}" if record else "an empty record"
            raise CodecError(f"cannot frame {kind}: not a monitor message")
        return self._frame(record[0], record[1:], f"message type 0x{record[0]:02x}")

    def _frame(self, code: int, payload: bytes, what: str) -> bytes:
        size = FRAME_OVERHEAD + len(payload)
        seq = self._seq + 1
        if size > self.max_frame:
            raise OversizedFrame(f"{what} needs a {size}-byte frame, limit is {self.max_frame}", seq=seq)
        if seq > _MAX_SEQ:
            raise ProtocolError("sequence numbers exhausted on this link")
        header = _HEADER.pack(MAGIC, PROTOCOL_VERSION, code, 0, seq, self.sender, len(payload))
        self._seq = seq
        return header + self._aead.encrypt(_AEAD_NONCE.pack(seq), payload, header)

    def heartbeat(self) -> bytes:
        """A heartbeat frame (the variant is busy inside a native call)."""
        return self.encode(Heartbeat())

    def keepalive(self) -> bytes:
        """A keepalive frame (the CONNECTOR is alive; :class:`Keepalive`)."""
        return self.encode(Keepalive())


class FrameReader(_Direction):
    """Decodes the frames ``sender`` sends to ``receiver``.

    :meth:`feed` takes bytes in any chunking (one byte at a time works) and
    parses eagerly, so a bad header is caught as soon as its bytes arrive: an
    oversized frame is refused from its 24-byte header, before its body is
    buffered, and garbage from its first byte that is not ``D``.
    :meth:`next_message` (or iteration) returns the messages decoded so far,
    in order, then raises the first error found, if any.

    After an error the reader is *poisoned*: once the messages that arrived
    before the bad frame have been taken, every :meth:`next_message` and
    :meth:`feed` raises the same error. After a forged frame nothing further
    on the link can be trusted, so there is no resynchronising.

    Call :meth:`close` at end of stream: if part of a frame is buffered,
    :meth:`next_message` then raises :class:`TruncatedFrame`. ``close`` itself
    never raises (it belongs in ``finally`` blocks).

    ``forward``: message types (codes of :data:`dmvx.codec.MESSAGE_TYPES`)
    checked as frames only and handed on as :class:`Forwarded`, for a reader
    whose next hop decodes them anyway (a CONNECTOR's: the monitor's).
    """

    def __init__(
        self,
        key: bytes,
        sender: int,
        receiver: int,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        forward: AbstractSet[int] = frozenset(),
    ) -> None:
        super().__init__(key, sender, receiver, max_frame=max_frame)
        unknown = set(forward) - set(codec.MESSAGE_TYPES)
        if unknown:
            raise ValueError(f"forward: {sorted(unknown)} are not monitor message types")
        #: Message types passed on as :class:`Forwarded`, their payload unread.
        self._forward = frozenset(forward)
        self._last_seq = 0
        self._buf = bytearray()
        self._offset = 0  # stream offset of _buf[0]
        self._header: tuple[int, int, int, int, int] | None = None  # type, flags, seq, length, total
        #: Frames decoded and not yet taken, each with the type code and
        #: payload it came as (for :meth:`records`).
        self._ready: deque[tuple[Received, int, bytes]] = deque()
        self._error: ProtocolError | None = None
        self._closed = False

    @property
    def last_seq(self) -> int:
        """Sequence number of the last frame accepted (0 before any)."""
        return self._last_seq

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole frame."""
        return len(self._buf)

    @property
    def closed(self) -> bool:
        return self._closed

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer (``b""`` is a no-op, not EOF)."""
        if self._error is not None:
            if not self._ready:
                raise self._error.with_traceback(None)
            return  # the link is already lost; messages before it still pending
        if self._closed:
            raise RuntimeError("FrameReader.feed() after close()")
        if data:
            self._buf += data
            self._parse()

    def close(self) -> None:
        """Mark the end of the stream."""
        if self._closed:
            return
        self._closed = True
        if self._error is None and self._buf:
            header = self._header
            expected = f"of a {header[4]}-byte frame " if header else ""
            self._fail(
                TruncatedFrame(
                    f"stream ended inside a frame: {len(self._buf)} bytes {expected}buffered",
                    seq=None,
                    offset=self._offset,
                )
            )

    def next_message(self) -> Received | None:
        """The next message, ``None`` if none is complete yet, or raise the
        error that ended the stream."""
        if self._ready:
            return self._ready.popleft()[0]
        if self._error is not None:
            raise self._error.with_traceback(None)
        return None

    def __iter__(self) -> Iterator[Received]:
        while (message := self.next_message()) is not None:
            yield message

    def records(self) -> Iterator[tuple[Received, bytes]]:
        """As iteration, with each monitor message's :func:`dmvx.codec.dumps`
        record beside it (``b""`` for a hello or a heartbeat): what a
        CONNECTOR hands its monitor, decoded here (and so checked) but not
        encoded again. Raises as :meth:`next_message` does."""
        ready = self._ready
        while True:
            if ready:
                frame, code, payload = ready.popleft()
                yield frame, (bytes((code,)) + payload if code in codec.MESSAGE_TYPES else b"")
            elif self._error is not None:
                raise self._error.with_traceback(None)
            else:
                return

    # -- internals ---------------------------------------------------------

    def _fail(self, error: ProtocolError) -> None:
        self._error = error
        self._buf = bytearray()  # nothing after a bad frame is worth keeping
        self._header = None

    def _parse(self) -> None:
        buf = self._buf
        start = 0
        while True:
            avail = len(buf) - start
            header = self._header
            if header is None:
                if avail < HEADER_SIZE:
                    n = min(avail, len(MAGIC))
                    if buf[start : start + n] != MAGIC[:n]:
                        self._fail(
                            BadMagic(
                                f"not a dmvx frame: starts with {bytes(buf[start : start + n]).hex()}, "
                                f"expected {MAGIC.hex()}",
                                offset=self._offset + start,
                            )
                        )
                        return
                    break
                header = self._read_header(buf, start)
                if header is None:
                    return
            total = header[4]
            if avail < total:
                break
            frame = self._read_frame(buf, start, header)  # (frame, code, payload)
            if frame is None:
                return
            self._ready.append(frame)
            start += total
            self._header = None
        if start:
            del buf[:start]
            self._offset += start

    def _read_header(self, buf: bytearray, start: int) -> tuple[int, int, int, int, int] | None:
        magic, version, code, flags, seq, sender, length = _HEADER.unpack_from(buf, start)
        offset = self._offset + start
        if magic != MAGIC:
            self._fail(BadMagic(f"not a dmvx frame: starts with {magic.hex()}, expected {MAGIC.hex()}", offset=offset))
            return None
        if version != PROTOCOL_VERSION:
            self._fail(
                UnsupportedVersion(
                    f"frame of protocol version {version}, this build speaks {PROTOCOL_VERSION}", offset=offset
                )
            )
            return None
        total = FRAME_OVERHEAD + length
        if total > self.max_frame:
            self._fail(
                OversizedFrame(f"header announces a {total}-byte frame, limit is {self.max_frame}", offset=offset)
            )
            return None
        if sender != self.sender:
            own = " (our own id: a reflected frame)" if sender == self.receiver else ""
            self._fail(
                AuthenticationFailed(
                    f"frame claims sender {sender}{own}, this link's peer is {self.sender}", offset=offset
                )
            )
            return None
        self._header = (code, flags, seq, length, total)
        return self._header

    def _read_frame(
        self, buf: bytearray, start: int, header: tuple[int, int, int, int, int]
    ) -> tuple[Received, int, bytes] | None:
        code, flags, seq, _length, total = header
        offset = self._offset + start
        header_end = start + HEADER_SIZE
        try:
            with memoryview(buf) as view:
                # The header is the associated data: no field of it can be edited either.
                payload = self._aead.decrypt(
                    _AEAD_NONCE.pack(seq), view[header_end : start + total], view[start:header_end]
                )
        except InvalidTag:
            self._fail(
                AuthenticationFailed(
                    "tag mismatch (ChaCha20-Poly1305): forged or corrupted frame, or wrong run key or direction",
                    offset=offset,
                )
            )
            return None
        # From here on the header is authentic: the peer really sent it.
        if seq <= self._last_seq:
            self._fail(
                ReplayedFrame(f"sequence number already used (last accepted {self._last_seq})", seq=seq, offset=offset)
            )
            return None
        if seq != self._last_seq + 1:
            self._fail(
                ReorderedFrame(
                    f"frames {self._last_seq + 1}..{seq - 1} missing before this one", seq=seq, offset=offset
                )
            )
            return None
        if flags:
            self._fail(
                UnsupportedVersion(
                    f"frame flags 0x{flags:04x} are not defined in protocol version {PROTOCOL_VERSION}",
                    seq=seq,
                    offset=offset,
                )
            )
            return None
        try:
            frame = Forwarded(code) if code in self._forward else _decode(code, payload)
        except ProtocolError as error:
            self._fail(error.at(seq=seq, offset=offset))
            return None
        self._last_seq = seq
        return frame, code, payload
