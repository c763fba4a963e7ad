"""A canonical call as strace prints it: flag names, full paths, AT_FDCWD.

``str(call)`` is short and raw (``openat(-100, '/lib/x86_64-linux-gnu/li...',
524288, 0)``): fine in a verdict, no help to a student who knows system calls
from strace and man pages. :func:`strace_call` writes the same call as strace
does -- ``openat(AT_FDCWD, "/lib/x86_64-linux-gnu/libc.so.6",
O_RDONLY|O_CLOEXEC)`` -- naming the bits of every flag argument of a family
:mod:`dmvx.syscalls` knows (values are canonical, so the x86-64 encoding),
paths in full, and pointers (which the core never sees) as ``ptr``.
"""

from __future__ import annotations

from typing import Any

from dmvx.calls import Call, Outcome
from dmvx.syscalls import AT_FDCWD, ArgKind, UnknownSyscall, spec

#: Bits of each flag family, x86-64 encoding, in the order strace prints them.
_BITS: dict[str, tuple[tuple[int, str], ...]] = {
    "open": (
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o20000, "O_ASYNC"),
        (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o4000000, "__O_SYNC"),
        (0o10000000, "O_PATH"),
        (0o20000000, "__O_TMPFILE"),
    ),
    "prot": (
        (1, "PROT_READ"),
        (2, "PROT_WRITE"),
        (4, "PROT_EXEC"),
        (8, "PROT_SEM"),
        (0x01000000, "PROT_GROWSDOWN"),
        (0x02000000, "PROT_GROWSUP"),
    ),
    "mmap": (
        (0x10, "MAP_FIXED"),
        (0x20, "MAP_ANONYMOUS"),
        (0x40, "MAP_32BIT"),
        (0x100, "MAP_GROWSDOWN"),
        (0x800, "MAP_DENYWRITE"),
        (0x1000, "MAP_EXECUTABLE"),
        (0x2000, "MAP_LOCKED"),
        (0x4000, "MAP_NORESERVE"),
        (0x8000, "MAP_POPULATE"),
        (0x10000, "MAP_NONBLOCK"),
        (0x20000, "MAP_STACK"),
        (0x40000, "MAP_HUGETLB"),
        (0x80000, "MAP_SYNC"),
        (0x100000, "MAP_FIXED_NOREPLACE"),
    ),
    "msg": (
        (0x1, "MSG_OOB"),
        (0x2, "MSG_PEEK"),
        (0x4, "MSG_DONTROUTE"),
        (0x8, "MSG_CTRUNC"),
        (0x10, "MSG_PROXY"),
        (0x20, "MSG_TRUNC"),
        (0x40, "MSG_DONTWAIT"),
        (0x80, "MSG_EOR"),
        (0x100, "MSG_WAITALL"),
        (0x200, "MSG_FIN"),
        (0x400, "MSG_SYN"),
        (0x800, "MSG_CONFIRM"),
        (0x1000, "MSG_RST"),
        (0x2000, "MSG_ERRQUEUE"),
        (0x4000, "MSG_NOSIGNAL"),
        (0x8000, "MSG_MORE"),
        (0x10000, "MSG_WAITFORONE"),
        (0x40000000, "MSG_CMSG_CLOEXEC"),
    ),
    "at": (
        (0x100, "AT_SYMLINK_NOFOLLOW"),
        (0x200, "AT_REMOVEDIR"),
        (0x400, "AT_SYMLINK_FOLLOW"),
        (0x800, "AT_NO_AUTOMOUNT"),
        (0x1000, "AT_EMPTY_PATH"),
        (0x2000, "AT_STATX_FORCE_SYNC"),
        (0x4000, "AT_STATX_DONT_SYNC"),
        (0x8000, "AT_RECURSIVE"),
    ),
    "socket_type": ((0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")),
    "clone": (
        (0x100, "CLONE_VM"),
        (0x200, "CLONE_FS"),
        (0x400, "CLONE_FILES"),
        (0x800, "CLONE_SIGHAND"),
        (0x1000, "CLONE_PIDFD"),
        (0x2000, "CLONE_PTRACE"),
        (0x4000, "CLONE_VFORK"),
        (0x8000, "CLONE_PARENT"),
        (0x10000, "CLONE_THREAD"),
        (0x20000, "CLONE_NEWNS"),
        (0x40000, "CLONE_SYSVSEM"),
        (0x80000, "CLONE_SETTLS"),
        (0x100000, "CLONE_PARENT_SETTID"),
        (0x200000, "CLONE_CHILD_CLEARTID"),
        (0x400000, "CLONE_DETACHED"),
        (0x800000, "CLONE_UNTRACED"),
        (0x1000000, "CLONE_CHILD_SETTID"),
        (0x2000000, "CLONE_NEWCGROUP"),
        (0x4000000, "CLONE_NEWUTS"),
        (0x8000000, "CLONE_NEWIPC"),
        (0x10000000, "CLONE_NEWUSER"),
        (0x20000000, "CLONE_NEWPID"),
        (0x40000000, "CLONE_NEWNET"),
        (0x80000000, "CLONE_IO"),
    ),
}

#: Families whose low bits are a value, not bits: (mask, names), printed first.
_FIELDS: dict[str, tuple[int, dict[int, str]]] = {
    "open": (0o3, {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}),
    "mmap": (0xF, {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}),
    "socket_type": (
        0xF,
        {
            1: "SOCK_STREAM",
            2: "SOCK_DGRAM",
            3: "SOCK_RAW",
            4: "SOCK_RDM",
            5: "SOCK_SEQPACKET",
            6: "SOCK_DCCP",
            10: "SOCK_PACKET",
        },
    ),
    "clone": (0xFF, {0: "", 17: "SIGCHLD"}),
}

#: Families that are one value, not a set of bits.
_VALUES: dict[str, dict[int, str]] = {
    "fcntl_cmd": {
        0: "F_DUPFD",
        1: "F_GETFD",
        2: "F_SETFD",
        3: "F_GETFL",
        4: "F_SETFL",
        5: "F_GETLK",
        6: "F_SETLK",
        7: "F_SETLKW",
        8: "F_SETOWN",
        9: "F_GETOWN",
        10: "F_SETSIG",
        11: "F_GETSIG",
        36: "F_OFD_GETLK",
        37: "F_OFD_SETLK",
        38: "F_OFD_SETLKW",
        1030: "F_DUPFD_CLOEXEC",
        1031: "F_SETPIPE_SZ",
        1032: "F_GETPIPE_SZ",
    },
}

#: Bytes of a buffer shown before "...", as strace's default -s 32.
STRING_LIMIT = 32


def flag_names(family: str, value: int) -> str:
    """``value`` of flag ``family`` as strace writes it: ``O_RDONLY|O_CLOEXEC``,
    ``PROT_READ|PROT_EXEC``, ``PROT_NONE``; bits without a name as hex."""
    if family in _VALUES:
        return _VALUES[family].get(value, str(value))
    parts: list[str] = []
    rest = value
    if family in _FIELDS:
        mask, names = _FIELDS[family]
        low = value & mask
        name = names.get(low)
        if name is None:
            name = f"{low}" if family != "clone" else f"signal {low}"
        rest &= ~mask
        if name:
            parts.append(name)
    for bit, name in _BITS.get(family, ()):
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    if not parts:
        return {"prot": "PROT_NONE"}.get(family, "0")
    return "|".join(parts)


def strace_call(call: Call) -> str:
    """``call`` as strace prints it (see the module docstring)."""
    try:
        args = spec(call.name).args
    except UnknownSyscall:
        return str(call)
    shown = [
        _argument(args[i].kind, args[i].flags, args[i].name, value) if i < len(args) else _plain(value)
        for i, value in enumerate(call.args)
    ]
    return f"{call.name}({', '.join(shown)})"


def strace_result(outcome: Outcome) -> str:
    """A result as strace ends its line: ``3``, or ``-1 ENOENT`` for -2."""
    import errno

    if -4096 < outcome.result < 0:
        name = errno.errorcode.get(-outcome.result)
        return f"-1 {name}" if name else str(outcome.result)
    return str(outcome.result)


def _argument(kind: ArgKind, family: str | None, name: str, value: Any) -> str:
    if value is None:
        return "ptr"
    if kind is ArgKind.FLAGS and family is not None and isinstance(value, int):
        return flag_names(family, value)
    if kind is ArgKind.FD and value == AT_FDCWD and name == "dirfd":
        return "AT_FDCWD"
    if kind in (ArgKind.PATH, ArgKind.STR) and isinstance(value, str):
        return _quoted(value.encode("utf-8", "surrogateescape"), limit=None)
    return _plain(value)


def _plain(value: Any) -> str:
    if value is None:
        return "ptr"
    if isinstance(value, (bytes, bytearray)):
        return _quoted(bytes(value), STRING_LIMIT)
    if isinstance(value, str):
        return _quoted(value.encode("utf-8", "surrogateescape"), STRING_LIMIT)
    if isinstance(value, tuple):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return repr(value)


def _quoted(data: bytes, limit: int | None) -> str:
    """A C string as strace quotes it: printable ASCII as is, escapes otherwise."""
    shown = data if limit is None else data[:limit]
    out = []
    for byte in shown:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    more = "..." if limit is not None and len(data) > limit else ""
    return f'"{"".join(out)}"{more}'
