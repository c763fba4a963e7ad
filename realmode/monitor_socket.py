"""The socket between a monitor and its CONNECTOR (a socketpair on one host).

Not a network link (those are the topology's): the records here never leave
the host; the CONNECTOR frames and authenticates what crosses the network
(:mod:`dmvx.protocol`).

Both ends are processes of the same run on the same host, created by the
orchestrator before any variant starts, so this hop needs framing but no
authentication: a record is ``u32 length | u8 peer | payload``, where
``peer`` is the destination variant on the way out (255: everyone) and the
source variant on the way in, and ``payload`` is :func:`dmvx.codec.dumps` of a
monitor message -- or empty for a heartbeat ("my variant is busy inside a
system call, keep waiting"). The CONNECTOR checked every frame it passes
in; a batch of entries it passed on unread (``connector.FORWARDED``) is
checked by :func:`decode` here, and a bad one ends the run with
:func:`bad_link`'s verdict, the one the CONNECTOR gives what it refuses.
"""

from __future__ import annotations

import socket
import struct

from dmvx import codec
from dmvx.actions import EVERYONE
from dmvx.codec import ProtocolError
from dmvx.messages import Carried
from dmvx.verdict import Verdict

_HEAD = struct.Struct("<IB")
BROADCAST = 255


class SocketClosed(EOFError):
    """The other end of the monitor socket went away."""


def encode(peer: int, message: Carried | None) -> bytes:
    return encode_record(peer, b"" if message is None else codec.dumps(message))


def encode_record(peer: int, payload: bytes) -> bytes:
    """The link record for a message already encoded (``codec.dumps``; empty:
    a heartbeat), as a CONNECTOR passes on what the network brought."""
    return _HEAD.pack(len(payload), BROADCAST if peer == EVERYONE else peer) + payload


#: Bytes one receive takes at most.
_RECEIVE = 1 << 20


class RecordReader:
    """Splits received bytes into ``(peer, message or None)`` records."""

    def __init__(self) -> None:
        self._buf = bytearray()
        #: Where :func:`receive` reads into: one buffer for every read (a
        #: ``recv`` of 1 MiB mapped, shrank and unmapped one for each).
        self._space = bytearray(_RECEIVE)
        self._view = memoryview(self._space)

    def feed(self, data: bytes | memoryview) -> list[tuple[int, bytes]]:
        """The records ``data`` completes, each payload copied out once;
        what is left of a record waits for the next bytes."""
        buf = self._buf
        mine = None
        if buf:
            buf += data
            data = mine = memoryview(buf)
        out = []
        size = len(data)
        at = 0
        head = _HEAD.size
        while size - at >= head:
            length, peer = _HEAD.unpack_from(data, at)
            end = at + head + length
            if end > size:
                break
            out.append((peer, bytes(data[at + head : end])))
            at = end
        rest = bytes(data[at:]) if at < size else b""
        if mine is not None:
            mine.release()
        self._buf = bytearray(rest)
        return out


def receive(sock: socket.socket, reader: RecordReader) -> list[tuple[int, bytes]]:
    """What is readable now on ``sock`` (call when select says so)."""
    got = sock.recv_into(reader._space)
    if not got:
        raise SocketClosed("the other end of the monitor socket closed")
    with reader._view[:got] as data:
        return reader.feed(data)


def decode(payload: bytes) -> Carried | None:
    """The message of a record (None: a heartbeat); raises
    :class:`~dmvx.codec.ProtocolError` if it is not one."""
    return codec.loads(payload) if payload else None


def bad_link(peer: int, error: ProtocolError) -> Verdict:
    """The verdict for what came over the link from variant ``peer`` and the
    protocol refused (``error``): said so by the CONNECTOR for a frame, by
    the monitor for a batch the CONNECTOR passed on unread."""
    return Verdict(error.verdict_kind, 0, detail=f"link to variant {peer}: {error}")
