"""``epoll_event.data`` as each variant set it, and events named by descriptor.

A program hands the kernel a 64-bit ``data`` with each descriptor it adds to
an epoll set (``epoll_ctl``) and gets it back with every event
(``epoll_wait``). lighttpd, nginx and libevent put a *pointer* there, to the
connection's own structure. Variants with different address-space layouts
(ASLR, or diversified builds) hold different pointers for the same
connection, so the leader's events written verbatim into a follower would
hand it the leader's heap addresses.

So each variant's tracer keeps, per traced process, ``(epfd, fd) -> data``
from that process's own ``epoll_ctl`` calls (ADD, MOD, DEL; the argument is
readable at the call's stop whether the call then runs or is skipped), and
the canonical output of ``epoll_wait`` names each event's **descriptor**, the
value that is equal across variants: the leader turns its ``data`` into the fd
it registered it for, and a follower writes back *its own* ``data`` for that
fd. An event whose ``data`` the tracer never saw registered (a set filled
before comparison began) travels as it is, tagged with :data:`UNKNOWN` so the
follower does not take it for a descriptor; the follower gets the same bytes
the leader got, which is right when ``data`` is not an address.
"""

from __future__ import annotations

import struct

from dmvx import structs
from dmvx.syscalls import Arch

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
#: The canonical form of every event is x86-64's packed 12-byte ``epoll_event``.
_EVENT = struct.Struct("<IQ")
#: Bit set in a canonical event's data when it is the leader's own value, not an fd.
UNKNOWN = 1 << 63
_FD_LIMIT = 1 << 31
#: Canonical names of the calls that report events (``epoll_wait`` is
#: normalised to ``epoll_pwait``); the events are canonical argument 1.
WAITS = frozenset({"epoll_wait", "epoll_pwait", "epoll_pwait2"})
EVENTS_ARG = 1


class EpollMap:
    """One process's registrations: ``(epfd, fd) -> data``, and back."""

    def __init__(self) -> None:
        self._data: dict[tuple[int, int], int] = {}
        self._fd: dict[tuple[int, int], int] = {}  # (epfd, data) -> fd, the last registered

    def copy(self) -> EpollMap:
        """A forked child's copy (its descriptor table is a copy of its parent's)."""
        other = EpollMap()
        other._data = dict(self._data)
        other._fd = dict(self._fd)
        return other

    @staticmethod
    def parse(arch: Arch, event: bytes | None) -> int | None:
        """The ``data`` of a raw ``struct epoll_event`` of ``arch`` (None if absent)."""
        if not event or len(event) < structs.size("epoll_event", arch):
            return None
        return int(structs.decode("epoll_event", arch, event)["data"])

    def apply(self, epfd: int, op: int, fd: int, data: int | None) -> None:
        """A successful ``epoll_ctl(epfd, op, fd, {.data = data})``."""
        key = (epfd, fd)
        old = self._data.pop(key, None)
        if old is not None and self._fd.get((epfd, old)) == fd:
            del self._fd[(epfd, old)]
        if op in (EPOLL_CTL_ADD, EPOLL_CTL_MOD) and data is not None:
            self._data[key] = data
            self._fd[(epfd, data)] = fd

    def forget_fd(self, fd: int) -> None:
        """``fd`` was closed: an epoll set of that number is gone (the kernel
        drops a closed descriptor from the sets itself; a re-added one comes
        with its own ``epoll_ctl``)."""
        if any(epfd == fd for epfd, _ in self._data):
            self._data = {k: v for k, v in self._data.items() if k[0] != fd}
            self._fd = {k: v for k, v in self._fd.items() if k[0] != fd}

    def to_canonical(self, epfd: int, events: bytes) -> bytes:
        """Events as this variant got them -> events naming their descriptor."""
        out = bytearray()
        for flags, data in _EVENT.iter_unpack(events[: len(events) // _EVENT.size * _EVENT.size]):
            fd = self._fd.get((epfd, data))
            out += _EVENT.pack(flags, fd if fd is not None else (data | UNKNOWN))
        return bytes(out)

    def from_canonical(self, epfd: int, events: bytes) -> bytes:
        """Events naming descriptors -> events with this variant's own data."""
        out = bytearray()
        for flags, value in _EVENT.iter_unpack(events[: len(events) // _EVENT.size * _EVENT.size]):
            if value & UNKNOWN:
                data = value & ~UNKNOWN
            elif value < _FD_LIMIT:
                data = self._data.get((epfd, value), value)
            else:
                data = value
            out += _EVENT.pack(flags, data)
        return bytes(out)
