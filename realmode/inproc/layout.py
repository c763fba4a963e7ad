"""The shared area's layout, as ``realmode/native/dipmon.h`` defines it.

Everything the variant writes here is untrusted (a compromised leader owns its
ring): :func:`parse_record` checks every length against the ring and raises
:class:`Malformed`, which the path turns into a verdict, never a crash.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

from dmvx.syscalls import Arch

MAGIC = 0x31504944584D5644
VERSION = 2
#: What every build of the library carries, followed by its layout version
#: and the digest of its sources (realmode/native/build.py: check).
ABI_TAG = b"dmvx-dipmon-abi "
FD = 1000
ENV = "DMVX_DIPMON"
TRAMPOLINE = 0x7FFD1E000000
TRAMPOLINE32 = 0x7FFD1000
#: Where the seccomp filter lets fast calls through from, per architecture:
#: the address after the trampoline's call instruction (x86-64 ``syscall``,
#: i386 ``int $0x80``, two bytes each), which the kernel reports as the
#: call's instruction pointer.
SITES: dict[Arch, int] = {Arch.X86_64: TRAMPOLINE + 2, Arch.I386: TRAMPOLINE32 + 2}
HEADER = 4096
NR_TABLE = 512
FD_TABLE = 1024

H_MAGIC, H_VERSION, H_ENABLED, H_ROLE, H_WAITING, H_WAKE, H_LOADED = 0, 8, 12, 16, 20, 24, 28
H_SEQ, H_OUT_HEAD, H_OUT_TAIL, H_IN_HEAD, H_IN_TAIL, H_RING, H_FAST, H_FALLBACK = 32, 40, 48, 56, 64, 72, 80, 88
H_INCALL = 96
H_SOCKET_BITS = 100
H_HEARD, H_WAITED = 104, 108
#: What the variant sleeps on the area for (``H_WAITING``): room in its out
#: ring, or (a follower) its next entry in its in ring.
WAIT_ROOM, WAIT_ENTRY = 1, 2
H_CALL_ROUTE, H_FD_ROUTE = 1024, 2048

#: The fd calls of the fd route table, bit by bit (``FDK_*`` in dipmon.h).
FD_KINDS: dict[str, int] = {"read": 0, "pread64": 0, "writev": 1, "close": 2, "recvfrom": 3, "shutdown": 5}

REC_HEAD = 80
REG_HEAD = 16
REC_PAD = 0xFFFFFFFF
RF_NOTFAST = 1
ARG_SHIFT = 40
#: Out ring: a region at ``address | REG_BEFORE`` is memory as the call read
#: it (an in/out argument before the call), for decoding the call.
REG_BEFORE = 1 << 63
#: What the tracer makes a leader's interrupted fast call return so that the
#: library issues it again from the traced path (dipmon.h).
RETRACE = -4000

_REC = struct.Struct("<IIqq6QII")
_REG = struct.Struct("<QII")
assert _REC.size == REC_HEAD and _REG.size == REG_HEAD

#: The header file this module mirrors (tests compare the two).
HEADER_FILE = Path(__file__).resolve().parent.parent / "native" / "dipmon.h"


class Malformed(ValueError):
    """A record the variant wrote does not parse: a forged or torn entry."""


class Record(NamedTuple):
    """One call a variant made on the fast path, as its ring holds it (a
    named tuple: a drain makes one per call, and a tuple is made fastest)."""

    seq: int
    nr: int
    result: int
    args: tuple[int, ...]
    #: (address, bytes): memory the call read or wrote, at the variant's addresses.
    regions: tuple[tuple[int, bytes], ...]
    #: Out ring: TSC ticks the call took where the variant ran it (0: it did
    #: not, or an old library), for --record's ``ns``.
    ticks: int = 0


def pad8(n: int) -> int:
    return (n + 7) & ~7


def parse_record(ring: memoryview, offset: int, available: int) -> tuple[Record | None, int]:
    """The record at ``offset`` of ``ring`` with ``available`` bytes written
    from there on: (record, its length), or (None, length) for padding.
    Raises :class:`Malformed` for anything that does not fit."""
    size = len(ring)
    if available < 8 or offset + 8 > size:
        raise Malformed(f"a record header cut short at ring offset {offset}")
    length, nr = struct.unpack_from("<II", ring, offset)
    if length < 8 or length & 7 or length > available or offset + length > size:
        raise Malformed(f"a record of {length} bytes at ring offset {offset} ({available} written)")
    if nr == REC_PAD:
        return None, length
    if length < REC_HEAD:
        raise Malformed(f"a record of {length} bytes, shorter than its header")
    return _record(ring, offset, length, _REC.unpack_from(ring, offset)), length


def _record(ring: memoryview, offset: int, length: int, fields: tuple[int, ...]) -> Record:
    """The record of ``length`` bytes at ``offset`` whose header unpacked
    to ``fields`` (its length checked against the ring already)."""
    _, nr, seq, result, a0, a1, a2, a3, a4, a5, count, _flags = fields
    args = (a0, a1, a2, a3, a4, a5)
    if not count:
        return Record(seq, nr, result, args, (), _flags)
    end = offset + length
    at = offset + REC_HEAD
    regions = []
    if count > 64:
        raise Malformed(f"a record naming {count} memory regions")
    for _ in range(count):
        if at + REG_HEAD > end:
            raise Malformed("a memory region past its record")
        address, n, _pad = _REG.unpack_from(ring, at)
        at += REG_HEAD
        if at + pad8(n) > end:
            raise Malformed(f"a memory region of {n} bytes past its record")
        regions.append((address, bytes(ring[at : at + n])))
        at += pad8(n)
    return Record(seq, nr, result, args, tuple(regions), _flags)


class Parsed(NamedTuple):
    """What :func:`parse_records` found at one place of the ring: a record
    (None: padding) and the ring position after it -- or a *run*: ``records``
    records of ``length`` bytes each, one after another, equal but for their
    sequence numbers (``record.seq`` and on, one by one) and their TSC ticks
    (``record``'s are the first's), ending at ``end``. A loop's calls come
    so, and the monitor hands a run to the core as one event."""

    record: Record | None
    end: int
    records: int = 1
    length: int = 0


def parse_records(ring: memoryview, tail: int, head: int, after: int) -> tuple[list[Parsed], Malformed | None]:
    """Every record between ring positions ``tail`` and ``head`` (byte
    counts since the ring began; the ring is ``len(ring)`` bytes), in one
    pass: a list of :class:`Parsed` in ring order -- equal records in a row
    as one run, each of them checked as the first was (same length, call,
    arguments, result and memory; the next sequence number) -- and the
    :class:`Malformed` that stopped the pass early, if one did, which
    names the record: the first after sequence number ``after`` (or after
    the last record of this pass) and its ring offset. The records before a
    malformed one are genuine and are returned."""
    size = len(ring)
    out: list[Parsed] = []
    last = after
    header_of = _REC.unpack_from
    # The run being gathered: its first record, the key of its records
    # (header fields but the sequence number and the ticks), their memory,
    # length and count.
    first: Record | None = None
    key: tuple[int, ...] = ()
    body = b""
    length = count = 0
    while tail < head:
        offset = tail % size
        available = head - tail
        # Each record's header is unpacked once, where a whole one is there
        # (padding may be shorter, and the ring's end may cut it).
        fields = header_of(ring, offset) if available >= REC_HEAD and offset + REC_HEAD <= size else None
        if (
            first is not None
            and fields is not None
            and available >= length
            and offset + length <= size
            and fields[2] == last + 1
            and fields[:2] + fields[3:11] == key
            and (length == REC_HEAD or ring[offset + REC_HEAD : offset + length].tobytes() == body)
        ):
            count += 1
            last += 1
            tail += length
            continue
        if first is not None:
            out.append(Parsed(first, tail, count, length))
            first = None
        record: Record | None
        if (
            fields is not None
            and fields[1] != REC_PAD
            and REC_HEAD <= fields[0] <= available
            and not fields[0] & 7
            and offset + fields[0] <= size
        ):
            length = fields[0]
            try:
                record = _record(ring, offset, length, fields)
            except Malformed as problem:
                return out, Malformed(f"the record after call {last}: {problem}")
        else:
            # Padding, or a header to check as parse_record checks one.
            try:
                record, length = parse_record(ring, offset, available)
            except Malformed as problem:
                return out, Malformed(f"the record after call {last}: {problem}")
        tail += length
        if record is None:
            out.append(Parsed(None, tail))
            continue
        last = record.seq
        first, count = record, 1
        if fields is None:
            fields = header_of(ring, offset)
        key = fields[:2] + fields[3:11]
        body = ring[offset + REC_HEAD : offset + length].tobytes() if length > REC_HEAD else b""
    if first is not None:
        out.append(Parsed(first, tail, count, length))
    return out, None


def build_record(
    seq: int, nr: int, result: int, args: tuple[int, ...], regions: list[tuple[int, bytes]], flags: int = 0
) -> bytes:
    """One record's bytes (the monitor writes a follower's in ring with these)."""
    body = bytearray()
    for address, data in regions:
        body += _REG.pack(address, len(data), 0) + data + b"\0" * (pad8(len(data)) - len(data))
    words = tuple(a & 0xFFFFFFFFFFFFFFFF for a in (tuple(args) + (0,) * 6)[:6])
    return _REC.pack(REC_HEAD + len(body), nr, seq, result, *words, len(regions), flags) + bytes(body)


_SEQ = struct.Struct("<q")


def stamp_seq(record: bytearray, seq: int) -> None:
    """Write ``seq`` into a record made by :func:`build_record`."""
    _SEQ.pack_into(record, 8, seq)


def pad_record(length: int) -> bytes:
    return struct.pack("<II", length, REC_PAD) + b"\0" * (length - 8)
