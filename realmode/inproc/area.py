"""One traced process's shared area, as its monitor sees it.

The monitor makes it (a memfd the variant inherits at :data:`layout.FD`),
maps it, and reads and writes the header and the two rings through this
class. The variant's half is ``realmode/native/dipmon.c``.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
from collections import deque

from realmode.inproc import layout
from realmode.inproc.layout import Malformed, Parsed

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_FUTEX, _FUTEX_WAKE = 202, 1
#: syscall(2) with its arguments as C longs: without argtypes ctypes passes a
#: Python int as a C int, and the futex word's address lost its upper half
#: (every wake failed with EFAULT, and a waiting library slept out its timeout).
_syscall = _libc.syscall
_syscall.argtypes = [ctypes.c_long] * 7
_syscall.restype = ctypes.c_long
#: Native order and size (x86-64: little-endian): one store per word, where
#: a "<" format writes byte by byte and the library could read half a word.
_U32, _U64 = struct.Struct("I"), struct.Struct("Q")

#: Bytes of each ring by default: room for a few thousand small calls.
RING_BYTES = 1 << 20


class Area:
    """The shared area of one traced process."""

    def __init__(self, role: int, ring_bytes: int = RING_BYTES) -> None:
        self.ring_bytes = ring_bytes
        self.size = layout.HEADER + 2 * ring_bytes
        self.fd = os.memfd_create("dmvx-dipmon", 0)
        os.ftruncate(self.fd, self.size)
        self.map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        view = memoryview(self.map)
        self.view = view
        self.out_ring = view[layout.HEADER : layout.HEADER + ring_bytes]
        self.in_ring = view[layout.HEADER + ring_bytes : layout.HEADER + 2 * ring_bytes]
        struct.pack_into("<QI", self.map, layout.H_MAGIC, layout.MAGIC, layout.VERSION)
        self.set32(layout.H_ROLE, role)
        self.set64(layout.H_RING, ring_bytes)
        self._wake_word = ctypes.c_uint32.from_buffer(self.map, layout.H_WAKE)

    # -- header --------------------------------------------------------------

    def get32(self, offset: int) -> int:
        return _U32.unpack_from(self.map, offset)[0]

    def set32(self, offset: int, value: int) -> None:
        _U32.pack_into(self.map, offset, value & 0xFFFFFFFF)

    def get64(self, offset: int) -> int:
        return _U64.unpack_from(self.map, offset)[0]

    def set64(self, offset: int, value: int) -> None:
        _U64.pack_into(self.map, offset, value)

    @property
    def loaded(self) -> bool:
        """Whether the library in the variant took the area (so far)."""
        return self.get32(layout.H_LOADED) == 1

    def enable(self, on: bool) -> None:
        self.set32(layout.H_ENABLED, 1 if on else 0)

    def wake(self) -> int:
        """Tell a variant sleeping on the area that something changed: how
        many sleepers the kernel woke (0 when none waited)."""
        self.set32(layout.H_WAKE, self.get32(layout.H_WAKE) + 1)
        if not self.get32(layout.H_WAITING):
            return 0
        woken = _syscall(_SYS_FUTEX, ctypes.addressof(self._wake_word), _FUTEX_WAKE, 0x7FFFFFFF, 0, 0, 0)
        if woken < 0:
            raise OSError(ctypes.get_errno(), f"futex wake of the shared area: {os.strerror(ctypes.get_errno())}")
        return int(woken)

    def set_routes(self, calls: bytes, fds: bytes) -> None:
        assert len(calls) == layout.NR_TABLE and len(fds) == layout.FD_TABLE
        self.map[layout.H_CALL_ROUTE : layout.H_CALL_ROUTE + layout.NR_TABLE] = calls
        self.map[layout.H_FD_ROUTE : layout.H_FD_ROUTE + layout.FD_TABLE] = fds

    def fd_routes(self) -> bytes:
        """Every descriptor's byte as the area holds it now."""
        return bytes(self.map[layout.H_FD_ROUTE : layout.H_FD_ROUTE + layout.FD_TABLE])

    def set_fd_route(self, fd: int, bits: int) -> None:
        if 0 <= fd < layout.FD_TABLE:
            self.map[layout.H_FD_ROUTE + fd] = bits

    # -- the out ring (the variant's calls) ----------------------------------

    def take_out(self, start: int, after: int) -> tuple[list[Parsed], Malformed | None]:
        """Every record the variant appended from ring position ``start`` (at
        or past the tail: records taken before and not yet consumed stay
        where they are) up to the head, parsed in one pass
        (:func:`layout.parse_records`; ``after``: the sequence number of the
        record before ``start``, which a malformed record is named by),
        without consuming them: the monitor
        moves the tail (:meth:`consumed`) as the core takes them, so the
        ring keeps bounding how far the leader runs ahead."""
        head, tail = self.get64(layout.H_OUT_HEAD), self.get64(layout.H_OUT_TAIL)
        if head < tail or head - tail > self.ring_bytes:
            return [], Malformed(f"out ring head {head} and tail {tail} disagree")
        if start < tail or start > head:
            start = tail
        return layout.parse_records(self.out_ring, start, head, after)

    def consumed(self, position: int) -> None:
        """The core took every record before ring position ``position``."""
        self.set64(layout.H_OUT_TAIL, position)

    def out_pending(self) -> bool:
        return self.get64(layout.H_OUT_HEAD) != self.get64(layout.H_OUT_TAIL)

    # -- the in ring (a follower's entries) ------------------------------------

    def put_in(self, records: deque[bytes | bytearray]) -> None:
        """Append the records of ``records`` to the in ring, as many as fit,
        taking them off the deque; contiguous ones in one copy."""
        head, tail = self.get64(layout.H_IN_HEAD), self.get64(layout.H_IN_TAIL)
        if tail > head:
            tail = head  # the variant's word is not trusted: never write over unread bytes of ours
        ring = self.ring_bytes
        start = head
        while records:
            pos = head % ring
            chunk: list[bytes | bytearray] = []
            size = 0
            room = ring - (head - tail)
            limit = min(room, ring - pos)
            while records and size + len(records[0]) <= limit and len(records[0]) <= ring // 2:
                record = records.popleft()
                chunk.append(record)
                size += len(record)
            if chunk:
                self.in_ring[pos : pos + size] = b"".join(chunk) if len(chunk) > 1 else chunk[0]
                head += size
                continue
            first = len(records[0])
            # The next record does not fit before the ring's end: pad to it, if
            # there is room for the padding and the record after it.
            if first > ring // 2 or (ring - pos) + first > room or pos == 0:
                break
            self.in_ring[pos:] = layout.pad_record(ring - pos)
            head += ring - pos
        if head != start:
            self.set64(layout.H_IN_HEAD, head)

    def close(self) -> None:
        del self._wake_word
        self.out_ring.release()
        self.in_ring.release()
        self.view.release()
        self.map.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
