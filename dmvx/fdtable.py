"""Descriptor tables: what each open descriptor of a variant stands for.

Routing depends on descriptors: ``read`` from a socket belongs to another
relaxation level than ``read`` from a file, and a file declared local is read
by every variant from its own copy. Every monitor keeps a table and updates
it after each compared call with the outcome all variants agreed on, so the
tables of all variants stay equal and every variant routes the next call the
same way.

Descriptors come in two sorts. *Leader-owned* descriptors (sockets, files
opened for replicated I/O, inherited stdio) exist for real only in the
leader; followers hold a placeholder at the same number. *Own* descriptors
(pipes, local files) exist for real in every variant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from dmvx.calls import Call


class FdKind(str, Enum):
    STREAM = "stream"  # inherited stdio: terminal, pipe or file from outside
    FILE = "file"  # a file opened for replicated I/O
    LOCAL_FILE = "local-file"  # a file every variant reads from its own copy
    SOCKET = "socket"
    PIPE = "pipe"  # a pipe created inside the variant
    EPOLL = "epoll"
    EVENTFD = "eventfd"  # threads wake each other through it: its reads and writes are ordered
    OTHER = "other"  # timerfd, signalfd, inotify

    @property
    def own(self) -> bool:
        """True if every variant holds this descriptor for real."""
        return self in (FdKind.LOCAL_FILE, FdKind.PIPE)


@dataclass(frozen=True, slots=True)
class FdInfo:
    kind: FdKind
    cloexec: bool = False
    path: str | None = None


O_CLOEXEC = 0o2000000
SOCK_CLOEXEC = 0o2000000
F_DUPFD, F_GETFD, F_SETFD, F_DUPFD_CLOEXEC = 0, 1, 2, 1030
FD_CLOEXEC = 1

_SOCKET_CREATORS = frozenset({"socket", "accept", "accept4"})
_EVENTFD_CREATORS = frozenset({"eventfd", "eventfd2"})
_OTHER_CREATORS = frozenset(
    {
        "timerfd_create",
        "signalfd",
        "signalfd4",
        "inotify_init",
        "inotify_init1",
        "memfd_create",
        "userfaultfd",
        "pidfd_open",
        "fanotify_init",
    }
)
_EPOLL_CREATORS = frozenset({"epoll_create", "epoll_create1"})
OPEN_CALLS = frozenset({"open", "openat", "openat2", "creat"})
_PATH_ARG = {"open": 0, "creat": 0, "openat": 1, "openat2": 1}
_FLAGS_ARG = {"open": 1, "openat": 2}


#: Calls whose result is one new descriptor (a pair goes through an output
#: argument instead: pipe, socketpair).
RETURNS_FD = OPEN_CALLS | _SOCKET_CREATORS | _EVENTFD_CREATORS | _OTHER_CREATORS | _EPOLL_CREATORS

#: Calls after which a descriptor table may change; others leave it alone.
CHANGES_FDS = RETURNS_FD | frozenset(
    {"pipe", "pipe2", "socketpair", "dup", "dup2", "dup3", "fcntl", "close", "close_range", "execve", "execveat"}
)

#: Calls whose effect depends on what the other threads sharing the table did
#: to it before: every change, and a copy of it (a new process). Where threads
#: share a table, followers make these in the leader's order
#: (realmode.tracer.fdorder).
TABLE_ORDERED = CHANGES_FDS | frozenset({"fork", "vfork", "clone", "clone3"})


class FdTable:
    """The descriptor table of one process of one variant."""

    __slots__ = ("_fds", "shared")

    def __init__(self, initial: Mapping[int, FdInfo] | None = None) -> None:
        if initial is None:
            initial = {fd: FdInfo(FdKind.STREAM) for fd in (0, 1, 2)}
        self._fds: dict[int, FdInfo] = dict(initial)
        #: Whether threads share this table (their monitors hold this one
        #: object): the order in which they change it then matters.
        self.shared = False

    def kind(self, fd: object) -> FdKind | None:
        info = self._fds.get(fd) if isinstance(fd, int) else None
        return info.kind if info is not None else None

    def path(self, fd: object) -> str | None:
        """The path ``fd`` was opened with, if it was opened by path."""
        info = self._fds.get(fd) if isinstance(fd, int) else None
        return info.path if info is not None else None

    def __contains__(self, fd: object) -> bool:
        return fd in self._fds

    def __len__(self) -> int:
        return len(self._fds)

    def snapshot(self) -> dict[int, FdInfo]:
        return dict(self._fds)

    def copy(self) -> FdTable:
        """The table a forked child starts with (a table of its own)."""
        return FdTable(self._fds)

    def after(self, call: Call, result: int, fd_pair: tuple[int, int] | None = None, local: bool = False) -> None:
        """Update the table after ``call`` returned ``result``.

        ``fd_pair`` carries the two descriptors written by pipe/socketpair;
        ``local`` says an opened file is a local file.
        """
        if result < 0:
            return
        name, args = call.name, call.args
        if name in OPEN_CALLS:
            flags = _int(args, _FLAGS_ARG.get(name, -1))
            path = args[_PATH_ARG[name]] if len(args) > _PATH_ARG[name] else None
            kind = FdKind.LOCAL_FILE if local else FdKind.FILE
            self._fds[result] = FdInfo(kind, bool(flags & O_CLOEXEC), path if isinstance(path, str) else None)
        elif name in _SOCKET_CREATORS:
            flags = _int(args, 1 if name == "socket" else 3)
            self._fds[result] = FdInfo(FdKind.SOCKET, bool(flags & SOCK_CLOEXEC))
        elif name in ("pipe", "pipe2", "socketpair"):
            if fd_pair is not None:
                kind = FdKind.SOCKET if name == "socketpair" else FdKind.PIPE
                flags = _int(args, 1 if name == "pipe2" else (1 if name == "socketpair" else -1))
                for fd in fd_pair:
                    self._fds[fd] = FdInfo(kind, bool(flags & O_CLOEXEC))
        elif name in _EPOLL_CREATORS:
            self._fds[result] = FdInfo(FdKind.EPOLL)
        elif name in _EVENTFD_CREATORS:
            self._fds[result] = FdInfo(FdKind.EVENTFD, bool(_int(args, 1) & O_CLOEXEC))
        elif name in _OTHER_CREATORS:
            self._fds[result] = FdInfo(FdKind.OTHER)
        elif name == "dup":
            self._dup(args[0], result, cloexec=False)
        elif name in ("dup2", "dup3"):
            if args[0] != args[1]:
                self._dup(args[0], args[1], cloexec=bool(_int(args, 2) & O_CLOEXEC))
        elif name == "fcntl":
            command = _int(args, 1)
            if command in (F_DUPFD, F_DUPFD_CLOEXEC):
                self._dup(args[0], result, cloexec=command == F_DUPFD_CLOEXEC)
            elif command == F_SETFD and args[0] in self._fds:
                info = self._fds[args[0]]
                self._fds[args[0]] = FdInfo(info.kind, bool(_int(args, 2) & FD_CLOEXEC), info.path)
        elif name == "close":
            self._fds.pop(args[0], None)
        elif name == "close_range":
            low, high = _int(args, 0), _int(args, 1)
            for fd in [fd for fd in self._fds if low <= fd <= high]:
                del self._fds[fd]
        elif name in ("execve", "execveat"):
            for fd in [fd for fd, info in self._fds.items() if info.cloexec]:
                del self._fds[fd]

    def _dup(self, old: object, new: int, cloexec: bool) -> None:
        info = self._fds.get(old) if isinstance(old, int) else None
        if info is not None:
            self._fds[new] = FdInfo(info.kind, cloexec, info.path)

    def remove(self, fds: Iterable[int]) -> None:
        for fd in fds:
            self._fds.pop(fd, None)


def _int(args: tuple[Any, ...], index: int) -> int:
    value = args[index] if 0 <= index < len(args) else None
    if isinstance(value, int):
        return value
    return 0
