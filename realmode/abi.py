"""From registers and tracee memory to canonical calls and outcomes, and back.

The core compares *meanings* (:mod:`dmvx.calls`): a path as a string, a
written buffer as its bytes, a pointer as nothing at all. This module turns
a syscall stop into such a :class:`~dmvx.calls.Call`, turns what a call
returned into an :class:`~dmvx.calls.Outcome` (its result and the bytes the
kernel wrote), and writes an outcome into a follower at the follower's own
pointers.

Argument specs use a small vocabulary (one string per argument):

``fd`` ``int`` ``flags`` ``ptr`` ``path`` ``argv`` (a string array)
    as in :mod:`dmvx.calls`;
``in:N`` / ``in#SIZE``
    memory the call reads, N = index of the length argument, or a fixed
    size (a number or a struct name in :data:`SIZES`; NULL allowed);
``out=ret`` / ``out:N`` / ``out#SIZE``
    memory the call writes: as many bytes as the call returned, as the
    length argument says, or a fixed size. Compared as its length only;
``iov_in`` / ``iov_out``
    an iovec array whose count is the next argument;
``ioctl``
    ioctl's third argument: output size by request;
``fcntl``
    fcntl's third argument: an int for the commands that take one, else
    nothing (the register holds whatever the caller left there);
``addr:N``
    a socket address of length argument N; a Unix socket path ends at its
    NUL (the bytes after it are the caller's stack garbage).

Calls not in :data:`SPECS` are compared by name only and, when only the
leader runs them, replicated by result only (documented in docs/realmode.md).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

from dmvx.calls import Call, Outcome
from realmode import ptrace_ll as ll
from realmode.systable import I386, X86_64

X86_64_ARCH, I386_ARCH = "x86_64", "i386"

#: Fixed sizes (x86-64, i386) of the structures calls write.
SIZES: dict[str, tuple[int, int]] = {
    "stat": (144, 96), "statx": (256, 256), "timespec": (16, 8), "timespec64": (16, 16),
    "timeval": (16, 8), "timezone": (8, 8), "time": (8, 4), "sysinfo": (112, 64),
    "rusage": (144, 72), "tms": (32, 16), "statfs": (120, 84), "utsname": (390, 390),
    "int": (4, 4), "fdpair": (8, 8), "rlimit64": (16, 16), "utimens": (32, 16),
}

_NOARGS = (
    "getpid getppid gettid getuid geteuid getgid getegid getpgrp setsid sched_yield fork vfork "
    "sync pause inotify_init"
).split()

SPECS: dict[str, tuple[str, ...]] = {name: () for name in _NOARGS}
SPECS.update({
    "read": ("fd", "out=ret", "int"), "write": ("fd", "in:2", "int"),
    "pread64": ("fd", "out=ret", "int", "int"), "pwrite64": ("fd", "in:2", "int", "int"),
    "readv": ("fd", "iov_out", "int"), "writev": ("fd", "iov_in", "int"),
    "open": ("path", "flags", "int"), "openat": ("fd", "path", "flags", "int"), "creat": ("path", "int"),
    "close": ("fd",), "dup": ("fd",), "dup2": ("fd", "fd"), "dup3": ("fd", "fd", "flags"),
    "close_range": ("fd", "fd", "flags"),
    "fstat": ("fd", "out#stat"), "stat": ("path", "out#stat"), "lstat": ("path", "out#stat"),
    "newfstatat": ("fd", "path", "out#stat", "flags"),
    "statx": ("fd", "path", "flags", "int", "out#statx"),
    "lseek": ("fd", "int", "int"),
    "getdents64": ("fd", "out=ret", "int"), "getdents": ("fd", "out=ret", "int"),
    "getcwd": ("out=ret", "int"),
    "readlink": ("path", "out=ret", "int"), "readlinkat": ("fd", "path", "out=ret", "int"),
    "access": ("path", "int"), "faccessat": ("fd", "path", "int"), "faccessat2": ("fd", "path", "int", "flags"),
    "ioctl": ("fd", "int", "ioctl"), "fcntl": ("fd", "int", "fcntl"),
    "pipe": ("out#fdpair",), "pipe2": ("out#fdpair", "flags"),
    "clock_gettime": ("int", "out#timespec"), "clock_getres": ("int", "out#timespec"),
    "clock_gettime64": ("int", "out#timespec64"),
    "gettimeofday": ("out#timeval", "out#timezone"), "time": ("out#time",),
    "getrandom": ("out=ret", "int", "flags"),
    "uname": ("out#utsname",), "sysinfo": ("out#sysinfo",),
    "nanosleep": ("in#timespec", "out#timespec"),
    "clock_nanosleep": ("int", "flags", "in#timespec", "out#timespec"),
    "getrusage": ("int", "out#rusage"), "times": ("out#tms",),
    "prlimit64": ("int", "int", "in#rlimit64", "out#rlimit64"),
    "statfs": ("path", "out#statfs"), "fstatfs": ("fd", "out#statfs"),
    "execve": ("path", "argv", "ptr"), "execveat": ("fd", "path", "argv", "ptr", "flags"),
    "chdir": ("path",), "fchdir": ("fd",), "umask": ("int",),
    "unlink": ("path",), "unlinkat": ("fd", "path", "flags"), "rmdir": ("path",),
    "mkdir": ("path", "int"), "mkdirat": ("fd", "path", "int"),
    "rename": ("path", "path"), "renameat": ("fd", "path", "fd", "path"),
    "renameat2": ("fd", "path", "fd", "path", "flags"),
    "link": ("path", "path"), "symlink": ("path", "path"), "symlinkat": ("path", "fd", "path"),
    "linkat": ("fd", "path", "fd", "path", "flags"),
    "chmod": ("path", "int"), "fchmod": ("fd", "int"), "fchmodat": ("fd", "path", "int"),
    "chown": ("path", "int", "int"), "lchown": ("path", "int", "int"), "fchown": ("fd", "int", "int"),
    "fchownat": ("fd", "path", "int", "int", "flags"),
    "utimensat": ("fd", "path", "in#utimens", "flags"),
    "truncate": ("path", "int"), "ftruncate": ("fd", "int"),
    "fsync": ("fd",), "fdatasync": ("fd",), "fadvise64": ("fd", "int", "int", "int"),
    "kill": ("int", "int"), "tkill": ("int", "int"), "tgkill": ("int", "int", "int"),
    "wait4": ("int", "out#int", "int", "out#rusage"),
    "mmap": ("ptr", "int", "int", "flags", "fd", "int"), "mprotect": ("ptr", "int", "int"),
    "pkey_mprotect": ("ptr", "int", "int", "int"),
    "socket": ("int", "int", "int"), "connect": ("fd", "addr:2", "int"), "bind": ("fd", "addr:2", "int"),
    "listen": ("fd", "int"), "shutdown": ("fd", "int"),
    "sendto": ("fd", "in:2", "int", "flags", "addr:5", "int"),
    "recvfrom": ("fd", "out=ret", "int", "flags", "ptr", "ptr"),
    "sendfile": ("fd", "fd", "ptr", "int"),
    "getpgid": ("int",), "setpgid": ("int", "int"), "getsid": ("int",),
    "prctl": ("int", "int", "int", "int", "int"),
    "clone": ("flags", "ptr", "ptr", "ptr", "ptr"), "clone3": ("ptr", "int"),
    "sched_getaffinity": ("int", "int", "ptr"),
    "getxattr": ("path", "path", "out=ret", "int"), "lgetxattr": ("path", "path", "out=ret", "int"),
    "fgetxattr": ("fd", "path", "out=ret", "int"),
    "umount2": ("path", "flags"), "personality": ("int",),
})

#: i386 names that mean a canonical (x86-64) call with the same arguments.
I386_NAMES: dict[str, str] = {
    "mmap2": "mmap", "fstat64": "fstat", "stat64": "stat", "lstat64": "lstat",
    "fstatat64": "newfstatat", "fcntl64": "fcntl", "ugetrlimit": "getrlimit",
    "getuid32": "getuid", "geteuid32": "geteuid", "getgid32": "getgid", "getegid32": "getegid",
    "clock_gettime64": "clock_gettime", "clock_nanosleep_time64": "clock_nanosleep",
    "chown32": "chown", "fchown32": "fchown", "lchown32": "lchown", "setuid32": "setuid",
    "setgid32": "setgid", "getgroups32": "getgroups", "setresuid32": "setresuid",
    "setresgid32": "setresgid", "getresuid32": "getresuid", "getresgid32": "getresgid",
    "sigreturn": "rt_sigreturn", "mmap": "old_mmap",
}
#: i386 calls whose time structures are the 64-bit ones.
_I386_TIME64 = frozenset({"clock_gettime64", "clock_nanosleep_time64"})

O_LARGEFILE_I386 = 0o100000
#: fcntl commands whose third argument is an int (the others ignore it or take a pointer).
_FCNTL_INT_ARG = frozenset({0, 2, 4, 8, 10, 1024, 1026, 1030, 1031, 1033})
_OPEN_FLAG_ARG = {"open": 1, "openat": 2}
_IOCTL_OUT = {0x5401: 36, 0x5413: 8, 0x541B: 4, 0x540F: 4}  # TCGETS TIOCGWINSZ FIONREAD TIOCGPGRP


def syscall_name(arch: str, nr: int) -> str:
    """Canonical name of call ``nr`` on ``arch`` (``"syscall_<nr>"`` if unknown)."""
    if arch == I386_ARCH:
        name = I386.get(nr, f"syscall_{nr}")
        return I386_NAMES.get(name, name)
    return X86_64.get(nr, f"syscall_{nr}")


def arch_of(audit_arch: int) -> str | None:
    if audit_arch == ll.AUDIT_ARCH_X86_64:
        return X86_64_ARCH
    if audit_arch == ll.AUDIT_ARCH_I386:
        return I386_ARCH
    return None


@dataclass(slots=True)
class RawCall:
    """A call as stopped: what the tracer needs to finish it later."""

    name: str
    kernel_name: str
    arch: str
    args: tuple[int, ...]  # raw register values
    spec: tuple[str, ...]
    call: Call


class Reader:
    """Builds calls and outcomes for one tracee."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        #: pids whose /proc/<pid> means "this process" (own, and the pid the
        #: program was told it has when it is a follower).
        self.self_pids: set[int] = {pid}

    # -- calls ---------------------------------------------------------------

    def call(self, arch: str, nr: int, raw: tuple[int, ...]) -> RawCall:
        kernel_name = (I386 if arch == I386_ARCH else X86_64).get(nr, f"syscall_{nr}")
        name = I386_NAMES.get(kernel_name, kernel_name) if arch == I386_ARCH else kernel_name
        spec = SPECS.get(name)
        if spec is None:
            return RawCall(name, kernel_name, arch, raw, (), Call(name))
        bits = 32 if arch == I386_ARCH else 64
        args = tuple(self._arg(kind, i, raw, bits, name, arch) for i, kind in enumerate(spec))
        return RawCall(name, kernel_name, arch, raw, spec, Call(name, args))

    def _arg(self, kind: str, index: int, raw: tuple[int, ...], bits: int, name: str, arch: str):
        value = raw[index]
        if kind == "fd":
            return _signed(value, 32)
        if kind == "int":
            return _signed(value, bits)
        if kind == "flags":
            flags = value & ((1 << bits) - 1)
            if arch == I386_ARCH and _OPEN_FLAG_ARG.get(name) == index:
                flags &= ~O_LARGEFILE_I386
            return flags
        if kind in ("ptr", "ioctl"):
            return None
        if kind == "fcntl":
            return _signed(value, bits) if _signed(raw[1], 32) in _FCNTL_INT_ARG else None
        if kind.startswith("addr:"):
            data = ll.read_memory(self.pid, value, max(0, min(_signed(raw[int(kind[5:])], bits), 128))) if value else b""
            if data[:2] == b"\x01\x00" and data[2:3] != b"\0":  # AF_UNIX path (not abstract)
                end = data.find(b"\0", 2)
                if end >= 0:
                    data = data[:end]
            return data
        if kind == "path":
            return self._path(ll.read_string(self.pid, value)) if value else None
        if kind == "argv":
            return self._argv(value, bits // 8)
        if kind.startswith("in"):
            if kind == "iov_in":
                return b"".join(self._iov_read(raw[index], _signed(raw[index + 1], bits), bits // 8, None))
            size = self._size(kind, raw, bits, name, arch)
            return ll.read_memory(self.pid, value, size) if value else None
        if kind.startswith("out") or kind == "iov_out":
            if kind == "out=ret" or kind == "iov_out":
                return _signed(raw[index + 1], bits) if index + 1 < len(raw) else None
            return self._size(kind, raw, bits, name, arch)
        raise ValueError(f"unknown argument kind {kind!r}")

    def _size(self, kind: str, raw: tuple[int, ...], bits: int, name: str, arch: str) -> int:
        if ":" in kind:
            return _signed(raw[int(kind.split(":")[1])], bits)
        what = kind.split("#")[1]
        if what.isdigit():
            return int(what)
        if name in _I386_TIME64 and what == "timespec":
            what = "timespec64"
        sizes = SIZES[what]
        return sizes[1] if arch == I386_ARCH else sizes[0]

    def _path(self, data: bytes) -> str:
        text = os.fsdecode(data)
        match = _PROC_PID.match(text)
        if match and int(match.group(1)) in self.self_pids:
            text = "/proc/self" + text[match.end(1):]
        return text

    def _argv(self, address: int, word: int) -> tuple[str, ...] | None:
        if not address:
            return None
        out: list[str] = []
        fmt = "<I" if word == 4 else "<Q"
        while len(out) < 4096:
            data = ll.read_memory(self.pid, address + word * len(out), word)
            if len(data) < word:
                break
            pointer = struct.unpack(fmt, data)[0]
            if not pointer:
                break
            out.append(os.fsdecode(ll.read_string(self.pid, pointer)))
        return tuple(out)

    def _iovecs(self, address: int, count: int, word: int) -> list[tuple[int, int]]:
        if not address or count <= 0:
            return []
        count = min(count, 1024)
        data = ll.read_memory(self.pid, address, count * 2 * word)
        fmt = "<" + ("I" if word == 4 else "Q") * (2 * count)
        values = struct.unpack(fmt[: 1 + 2 * (len(data) // (2 * word))], data[: (len(data) // (2 * word)) * 2 * word])
        return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]

    def _iov_read(self, address: int, count: int, word: int, limit: int | None) -> list[bytes]:
        chunks = []
        left = limit
        for base, length in self._iovecs(address, count, word):
            if left is not None:
                length = min(length, left)
                left -= length
            if length:
                chunks.append(ll.read_memory(self.pid, base, length))
            if left == 0:
                break
        return chunks

    # -- outcomes ------------------------------------------------------------

    def outcome(self, raw: RawCall, result: int) -> Outcome:
        """The outcome of ``raw``: its result and the bytes it wrote."""
        if result < 0 or not raw.spec:
            return Outcome(result)
        bits = 32 if raw.arch == I386_ARCH else 64
        word = bits // 8
        outputs: list[tuple[int, bytes]] = []
        for index, kind in enumerate(raw.spec):
            pointer = raw.args[index]
            if not pointer:
                continue
            if kind == "iov_out":
                data = b"".join(self._iov_read(pointer, _signed(raw.args[index + 1], bits), word, result))
            elif kind == "out=ret":
                data = ll.read_memory(self.pid, pointer, result)
            elif kind.startswith("out"):
                data = ll.read_memory(self.pid, pointer, self._size(kind, raw.args, bits, raw.name, raw.arch))
            elif kind == "ioctl":
                size = _IOCTL_OUT.get(raw.args[1] & 0xFFFFFFFF)
                if size is None:
                    continue
                data = ll.read_memory(self.pid, pointer, size)
            else:
                continue
            outputs.append((index, data))
        return Outcome(result, tuple(outputs))

    def write_outcome(self, raw: RawCall, outcome: Outcome) -> None:
        """Write ``outcome``'s bytes at this tracee's own pointers for ``raw``."""
        bits = 32 if raw.arch == I386_ARCH else 64
        for index, data in outcome.outputs:
            if index >= len(raw.args) or not raw.args[index]:
                continue
            kind = raw.spec[index] if index < len(raw.spec) else ""
            if kind == "iov_out":
                offset = 0
                for base, length in self._iovecs(raw.args[index], _signed(raw.args[index + 1], bits), bits // 8):
                    piece = data[offset: offset + length]
                    ll.write_memory(self.pid, base, piece)
                    offset += len(piece)
                    if offset >= len(data):
                        break
            else:
                ll.write_memory(self.pid, raw.args[index], data)


_PROC_PID = re.compile(r"^/proc/(\d+)(?=/|$)")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value
