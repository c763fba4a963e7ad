"""Entering a Mininet host's network namespace from a forked process.

Mininet keeps each host's namespace alive with one shell process and runs
commands there through ``mnexec -a PID``. dmvx's agents (monitor, CONNECTOR)
are forked from the orchestrator instead, so they can inherit the run key,
the monitor/CONNECTOR socketpair and the report pipe; a forked child moves
itself into the host's namespace with ``setns(2)`` before it does anything
else. Python 3.11 has no ``os.setns``, hence ctypes.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def path(pid: int) -> str:
    """The network-namespace file of process ``pid``."""
    return f"/proc/{pid}/ns/net"


def inode(pid: int | str = "self") -> int:
    """The inode number naming ``pid``'s network namespace (0 if gone)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0


def enter(pid: int) -> None:
    """Move the calling thread (and its future children) into ``pid``'s
    network namespace."""
    fd = os.open(path(pid), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def inside(pid: int) -> Iterator[None]:
    """Run a block inside ``pid``'s network namespace, then come back.

    Sockets made inside stay bound to that namespace after the block: this
    is how one relay process serves links in several namespaces."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter(pid)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)
