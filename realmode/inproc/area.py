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

from realmode.inproc import layout
from realmode.inproc.layout import Malformed, Record

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_FUTEX, _FUTEX_WAKE = 202, 1
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

    def wake(self) -> None:
        """Tell a variant sleeping on the area that something changed."""
        self.set32(layout.H_WAKE, self.get32(layout.H_WAKE) + 1)
        if self.get32(layout.H_WAITING):
            _libc.syscall(_SYS_FUTEX, ctypes.addressof(self._wake_word), _FUTEX_WAKE, 0x7FFFFFFF, 0, 0, 0)

    def set_routes(self, calls: bytes, fds: bytes) -> None:
        assert len(calls) == layout.NR_TABLE and len(fds) == layout.FD_TABLE
        self.map[layout.H_CALL_ROUTE : layout.H_CALL_ROUTE + layout.NR_TABLE] = calls
        self.map[layout.H_FD_ROUTE : layout.H_FD_ROUTE + layout.FD_TABLE] = fds

    def set_fd_route(self, fd: int, bits: int) -> None:
        if 0 <= fd < layout.FD_TABLE:
            self.map[layout.H_FD_ROUTE + fd] = bits

    # -- the out ring (the variant's calls) ----------------------------------

    def next_out(self, limit: int | None = None) -> Record | None:
        """The next record the variant appended (before ring position
        ``limit``, if given), consumed; None when there is none. Raises
        :class:`Malformed` for one that does not parse."""
        while True:
            head, tail = self.get64(layout.H_OUT_HEAD), self.get64(layout.H_OUT_TAIL)
            if limit is not None:
                head = min(head, limit)
            if head == tail:
                return None
            if head < tail or head - tail > self.ring_bytes:
                raise Malformed(f"out ring head {head} and tail {tail} disagree")
            record, length = layout.parse_record(self.out_ring, tail % self.ring_bytes, head - tail)
            self.set64(layout.H_OUT_TAIL, tail + length)
            if record is not None:
                return record

    def out_pending(self) -> bool:
        return self.get64(layout.H_OUT_HEAD) != self.get64(layout.H_OUT_TAIL)

    # -- the in ring (a follower's entries) ------------------------------------

    def put_in(self, record: bytes) -> bool:
        """Append ``record`` to the in ring; False when there is no room yet."""
        head, tail = self.get64(layout.H_IN_HEAD), self.get64(layout.H_IN_TAIL)
        if tail > head:
            tail = head  # the variant's word is not trusted: never write over unread bytes of ours
        room = self.ring_bytes - (head - tail)
        pos = head % self.ring_bytes
        size = len(record)
        need = size + (self.ring_bytes - pos if pos + size > self.ring_bytes else 0)
        if size > self.ring_bytes // 2 or need > room:
            return False
        if pos + size > self.ring_bytes:
            self.in_ring[pos:] = layout.pad_record(self.ring_bytes - pos)
            head += self.ring_bytes - pos
            pos = 0
        self.in_ring[pos : pos + size] = record
        self.set64(layout.H_IN_HEAD, head + size)
        return True

    def close(self) -> None:
        del self._wake_word
        self.out_ring.release()
        self.in_ring.release()
        self.view.release()
        self.map.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
