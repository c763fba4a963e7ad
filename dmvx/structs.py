"""Memory layouts of the structures system calls read and write, per architecture.

A follower on another ABI cannot take the leader's ``fstat`` bytes as they
are: x86-64 writes a 144-byte ``struct stat``, i386 a 96-byte ``struct
stat64`` with the same facts at other offsets. This module knows those
layouts, turns bytes into a *canonical dict* (the same keys for every
architecture) and back, and so converts between ABIs.

Layouts are declared as C field lists and laid out here with each ABI's
alignment rules (i386 aligns 8-byte integers to 4 inside structs), so a
declaration reads like the kernel header it mirrors; ``tests/test_structs.py``
checks every size and offset against gcc (``-m64`` and ``-m32``).

Field types: ``u8``..``u64``/``s8``..``s64``; ``long``/``ulong`` (the word);
``ptr`` (a word-sized address) and ``ptr64`` (an address in a 64-bit field);
``handler`` (a signal handler: an address or SIG_DFL/SIG_IGN); ``rlim`` (an
rlimit word whose all-ones value means infinity); ``char[N]`` (a NUL-padded
string, decoded without its padding); ``bytes[N]`` (raw bytes, kept exactly).
Fields whose name starts with ``__`` are padding: not in the dict, written
as zeros -- or, given a third element, a copy of another field (i386
``__st_ino``).

All supported architectures are little-endian.
"""

from __future__ import annotations

import struct as _struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dmvx.syscalls import Arch


class StructError(ValueError):
    """Bytes or fields that do not fit a layout."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    ctype: str
    offset: int
    size: int
    mirror: str | None = None

    @property
    def hidden(self) -> bool:
        return self.name.startswith("__")


@dataclass(frozen=True, slots=True)
class StructLayout:
    """One struct on one architecture: its fields, size and packer."""

    name: str
    arch: Arch
    size: int
    fields: tuple[Field, ...]
    packer: _struct.Struct

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.hidden)


# ctype -> (format char, size) on LP64; i386 differs for the word types.
_SCALARS_64 = {
    "u8": "B",
    "s8": "b",
    "u16": "H",
    "s16": "h",
    "u32": "I",
    "s32": "i",
    "u64": "Q",
    "s64": "q",
    "long": "q",
    "ulong": "Q",
    "ptr": "Q",
    "handler": "Q",
    "rlim": "Q",
    "ptr64": "Q",
}
_SCALARS_32 = {**_SCALARS_64, "long": "i", "ulong": "I", "ptr": "I", "handler": "I", "rlim": "I"}
_POINTERS = frozenset({"ptr", "ptr64"})
RLIM_INFINITY = (1 << 64) - 1

_Decl = tuple[str, ...]  # (name, ctype) or (name, ctype, mirrored field)

_TIMES = [("tv_sec", "long"), ("tv_nsec", "long")]
_RUSAGE = [
    (f"ru_{name}", "long")
    for name in (
        "utime_sec",
        "utime_usec",
        "stime_sec",
        "stime_usec",
        "maxrss",
        "ixrss",
        "idrss",
        "isrss",
        "minflt",
        "majflt",
        "nswap",
        "inblock",
        "oublock",
        "msgsnd",
        "msgrcv",
        "nsignals",
        "nvcsw",
        "nivcsw",
    )
]
_STATX_TS = ("sec", "s64"), ("nsec", "u32"), ("__reserved", "s32")

#: struct name -> {arch or "*": [field declarations]}; "*" serves every arch.
_DECLS: dict[str, dict[Any, Sequence[_Decl]]] = {
    "stat": {
        # arch/x86/include/uapi/asm/stat.h (x86-64 struct stat)
        Arch.X86_64: [
            ("st_dev", "ulong"),
            ("st_ino", "ulong"),
            ("st_nlink", "ulong"),
            ("st_mode", "u32"),
            ("st_uid", "u32"),
            ("st_gid", "u32"),
            ("__pad0", "u32"),
            ("st_rdev", "ulong"),
            ("st_size", "long"),
            ("st_blksize", "long"),
            ("st_blocks", "long"),
            ("st_atime", "long"),
            ("st_atime_nsec", "ulong"),
            ("st_mtime", "long"),
            ("st_mtime_nsec", "ulong"),
            ("st_ctime", "long"),
            ("st_ctime_nsec", "ulong"),
            ("__unused", "bytes[24]"),
        ],
        # i386 struct stat64 (what fstat64/stat64/lstat64/fstatat64 write)
        Arch.I386: [
            ("st_dev", "u64"),
            ("__pad0", "bytes[4]"),
            ("__st_ino", "u32", "st_ino"),
            ("st_mode", "u32"),
            ("st_nlink", "u32"),
            ("st_uid", "u32"),
            ("st_gid", "u32"),
            ("st_rdev", "u64"),
            ("__pad3", "bytes[4]"),
            ("st_size", "s64"),
            ("st_blksize", "u32"),
            ("st_blocks", "u64"),
            ("st_atime", "s32"),
            ("st_atime_nsec", "u32"),
            ("st_mtime", "s32"),
            ("st_mtime_nsec", "u32"),
            ("st_ctime", "s32"),
            ("st_ctime_nsec", "u32"),
            ("st_ino", "u64"),
        ],
        # include/uapi/asm-generic/stat.h (aarch64 struct stat)
        Arch.AARCH64: [
            ("st_dev", "ulong"),
            ("st_ino", "ulong"),
            ("st_mode", "u32"),
            ("st_nlink", "u32"),
            ("st_uid", "u32"),
            ("st_gid", "u32"),
            ("st_rdev", "ulong"),
            ("__pad1", "ulong"),
            ("st_size", "long"),
            ("st_blksize", "s32"),
            ("__pad2", "s32"),
            ("st_blocks", "long"),
            ("st_atime", "long"),
            ("st_atime_nsec", "ulong"),
            ("st_mtime", "long"),
            ("st_mtime_nsec", "ulong"),
            ("st_ctime", "long"),
            ("st_ctime_nsec", "ulong"),
            ("__unused4", "u32"),
            ("__unused5", "u32"),
        ],
    },
    # i386 struct stat: what the 32-bit stat/fstat/lstat (106-108) write
    "stat32": {
        Arch.I386: [
            ("st_dev", "u32"),
            ("st_ino", "u32"),
            ("st_mode", "u16"),
            ("st_nlink", "u16"),
            ("st_uid", "u16"),
            ("st_gid", "u16"),
            ("st_rdev", "u32"),
            ("st_size", "u32"),
            ("st_blksize", "u32"),
            ("st_blocks", "u32"),
            ("st_atime", "s32"),
            ("st_atime_nsec", "u32"),
            ("st_mtime", "s32"),
            ("st_mtime_nsec", "u32"),
            ("st_ctime", "s32"),
            ("st_ctime_nsec", "u32"),
            ("__unused4", "u32"),
            ("__unused5", "u32"),
        ]
    },
    "statx": {
        "*": [
            ("stx_mask", "u32"),
            ("stx_blksize", "u32"),
            ("stx_attributes", "u64"),
            ("stx_nlink", "u32"),
            ("stx_uid", "u32"),
            ("stx_gid", "u32"),
            ("stx_mode", "u16"),
            ("__spare0", "u16"),
            ("stx_ino", "u64"),
            ("stx_size", "u64"),
            ("stx_blocks", "u64"),
            ("stx_attributes_mask", "u64"),
            *[
                (f"stx_{ts}_{part}" if not part.startswith("__") else f"__{ts}{part}", ctype)
                for ts in ("atime", "btime", "ctime", "mtime")
                for part, ctype in _STATX_TS
            ],
            ("stx_rdev_major", "u32"),
            ("stx_rdev_minor", "u32"),
            ("stx_dev_major", "u32"),
            ("stx_dev_minor", "u32"),
            ("stx_mnt_id", "u64"),
            ("stx_dio_mem_align", "u32"),
            ("stx_dio_offset_align", "u32"),
            ("stx_spare", "bytes[96]"),
        ]
    },
    # asm-generic/statfs.h: __statfs_word is the word (u32 on i386)
    "statfs": {
        arch: [
            ("f_type", "long"),
            ("f_bsize", "long"),
            ("f_blocks", "long"),
            ("f_bfree", "long"),
            ("f_bavail", "long"),
            ("f_files", "long"),
            ("f_ffree", "long"),
            ("f_fsid0", "s32"),
            ("f_fsid1", "s32"),
            ("f_namelen", "long"),
            ("f_frsize", "long"),
            ("f_flags", "long"),
            ("f_spare", f"bytes[{4 * arch.word_size}]"),
        ]
        for arch in Arch
    },
    "statfs64": {
        Arch.I386: [
            ("f_type", "u32"),
            ("f_bsize", "u32"),
            ("f_blocks", "u64"),
            ("f_bfree", "u64"),
            ("f_bavail", "u64"),
            ("f_files", "u64"),
            ("f_ffree", "u64"),
            ("f_fsid0", "s32"),
            ("f_fsid1", "s32"),
            ("f_namelen", "u32"),
            ("f_frsize", "u32"),
            ("f_flags", "u32"),
            ("f_spare", "bytes[16]"),
        ]
    },
    "timespec": {"*": _TIMES},  # struct timespec / __kernel_old_timespec
    "timespec64": {"*": [("tv_sec", "s64"), ("tv_nsec", "s64")]},  # __kernel_timespec
    "timespec_pair": {
        "*": [("atime_sec", "long"), ("atime_nsec", "long"), ("mtime_sec", "long"), ("mtime_nsec", "long")]
    },
    "timespec64_pair": {
        "*": [("atime_sec", "s64"), ("atime_nsec", "s64"), ("mtime_sec", "s64"), ("mtime_nsec", "s64")]
    },
    "timeval": {"*": [("tv_sec", "long"), ("tv_usec", "long")]},
    "timeval_pair": {
        "*": [("atime_sec", "long"), ("atime_usec", "long"), ("mtime_sec", "long"), ("mtime_usec", "long")]
    },
    "timezone": {"*": [("tz_minuteswest", "s32"), ("tz_dsttime", "s32")]},
    "itimerspec": {
        "*": [
            ("it_interval_sec", "long"),
            ("it_interval_nsec", "long"),
            ("it_value_sec", "long"),
            ("it_value_nsec", "long"),
        ]
    },
    "itimerspec64": {
        "*": [
            ("it_interval_sec", "s64"),
            ("it_interval_nsec", "s64"),
            ("it_value_sec", "s64"),
            ("it_value_nsec", "s64"),
        ]
    },
    "itimerval": {
        "*": [
            ("it_interval_sec", "long"),
            ("it_interval_usec", "long"),
            ("it_value_sec", "long"),
            ("it_value_usec", "long"),
        ]
    },
    "utimbuf": {"*": [("actime", "long"), ("modtime", "long")]},
    "rusage": {"*": _RUSAGE},
    "tms": {"*": [("tms_utime", "long"), ("tms_stime", "long"), ("tms_cutime", "long"), ("tms_cstime", "long")]},
    "rlimit": {"*": [("rlim_cur", "rlim"), ("rlim_max", "rlim")]},
    "rlimit64": {"*": [("rlim_cur", "u64"), ("rlim_max", "u64")]},
    "utsname": {
        "*": [(name, "char[65]") for name in ("sysname", "nodename", "release", "version", "machine", "domainname")]
    },
    "sysinfo": {
        arch: [
            ("uptime", "long"),
            ("loads0", "ulong"),
            ("loads1", "ulong"),
            ("loads2", "ulong"),
            ("totalram", "ulong"),
            ("freeram", "ulong"),
            ("sharedram", "ulong"),
            ("bufferram", "ulong"),
            ("totalswap", "ulong"),
            ("freeswap", "ulong"),
            ("procs", "u16"),
            ("__pad", "u16"),
            ("totalhigh", "ulong"),
            ("freehigh", "ulong"),
            ("mem_unit", "u32"),
        ]
        + ([("__f", "bytes[8]")] if arch is Arch.I386 else [])
        for arch in Arch
    },
    "fd_pair": {"*": [("fd0", "s32"), ("fd1", "s32")]},
    "int": {"*": [("value", "s32")]},
    "long": {"*": [("value", "long")]},
    "loff_t": {"*": [("value", "s64")]},
    "uid_t": {"*": [("value", "u32")]},
    "gid_t": {"*": [("value", "u32")]},
    "uid16": {Arch.I386: [("value", "u16")]},
    "gid16": {Arch.I386: [("value", "u16")]},
    "sigset": {"*": [("sig", "u64")]},
    # the kernel's struct sigaction for rt_sigaction (compat_sigaction on i386)
    "sigaction": {"*": [("sa_handler", "handler"), ("sa_flags", "ulong"), ("sa_restorer", "ptr"), ("sa_mask", "u64")]},
    "stack_t": {"*": [("ss_sp", "ptr"), ("ss_flags", "s32"), ("ss_size", "ulong")]},
    "siginfo": {"*": [("data", "bytes[128]")]},
    "pollfd": {"*": [("fd", "s32"), ("events", "s16"), ("revents", "s16")]},
    # EPOLL_PACKED on x86-64 only: 12 bytes on both x86 ABIs, 16 on aarch64.
    "epoll_event": {"*": [("events", "u32"), ("data", "ptr64")]},
    "iovec": {"*": [("iov_base", "ptr"), ("iov_len", "ulong")]},
    "msghdr": {
        "*": [
            ("msg_name", "ptr"),
            ("msg_namelen", "u32"),
            ("msg_iov", "ptr"),
            ("msg_iovlen", "ulong"),
            ("msg_control", "ptr"),
            ("msg_controllen", "ulong"),
            ("msg_flags", "s32"),
        ]
    },
    "open_how": {"*": [("flags", "u64"), ("mode", "u64"), ("resolve", "u64")]},
    "clone_args": {
        "*": [
            ("flags", "u64"),
            ("pidfd", "ptr64"),
            ("child_tid", "ptr64"),
            ("parent_tid", "ptr64"),
            ("exit_signal", "u64"),
            ("stack", "ptr64"),
            ("stack_size", "u64"),
            ("tls", "ptr64"),
            ("set_tid", "ptr64"),
            ("set_tid_size", "u64"),
            ("cgroup", "u64"),
        ]
    },
}
#: (struct, arch) laid out packed, as the kernel declares them.
_PACKED = frozenset({("epoll_event", Arch.X86_64)})
#: Bitmaps sized by a bit count rather than laid out as structs.
BITMAPS = frozenset({"fd_set"})


def _lay_out(name: str, arch: Arch, decls: Sequence[_Decl]) -> StructLayout:
    scalars = _SCALARS_32 if arch is Arch.I386 else _SCALARS_64
    packed = (name, arch) in _PACKED
    fmt, fields, offset, struct_align = ["<"], [], 0, 1
    for decl in decls:
        fname, ctype = decl[0], decl[1]
        if ctype.endswith("]"):
            size, align, code = int(ctype[ctype.index("[") + 1 : -1]), 1, None
        else:
            code = scalars[ctype]
            size = _struct.calcsize(code)
            align = 4 if arch is Arch.I386 and size == 8 else size
        if packed:
            align = 1
        pad = -offset % align
        if pad:
            fmt.append(f"{pad}x")
            offset += pad
        fmt.append(code if code else f"{size}s")
        fields.append(Field(fname, ctype, offset, size, decl[2] if len(decl) > 2 else None))
        offset += size
        struct_align = max(struct_align, align)
    tail = -offset % struct_align
    if tail:
        fmt.append(f"{tail}x")
    packer = _struct.Struct("".join(fmt))
    return StructLayout(name, arch, packer.size, tuple(fields), packer)


_LAYOUTS: dict[tuple[str, Arch], StructLayout] = {}
for _name, _per_arch in _DECLS.items():
    for _arch in Arch:
        _decls = _per_arch.get(_arch, _per_arch.get("*"))
        if _decls is not None:
            _LAYOUTS[_name, _arch] = _lay_out(_name, _arch, _decls)
del _name, _per_arch, _arch, _decls

NAMES = frozenset(_DECLS) | BITMAPS


def layout(struct: str, arch: Arch) -> StructLayout:
    """The layout of ``struct`` on ``arch``; :class:`StructError` if there is none."""
    try:
        return _LAYOUTS[struct, arch]
    except KeyError:
        pass
    if struct in BITMAPS:
        raise StructError(f"{struct} is a bitmap sized by a bit count; use size({struct!r}, arch, bits)")
    if struct not in _DECLS:
        raise StructError(f"unknown struct {struct!r}")
    try:
        return _LAYOUTS[struct, Arch(arch)]
    except (KeyError, ValueError):
        where = arch.value if isinstance(arch, Arch) else repr(arch)
        raise StructError(f"struct {struct!r} does not exist on {where}") from None


def size(struct: str, arch: Arch, count: int = 1) -> int:
    """Bytes of ``count`` consecutive ``struct``s on ``arch``.

    For ``fd_set`` the count is a number of descriptors (select's ``nfds``):
    the kernel reads whole words, so the size rounds up to the word.
    """
    if struct in BITMAPS:
        bits = 8 * Arch(arch).word_size
        return (count + bits - 1) // bits * (bits // 8)
    return layout(struct, arch).size * count


def decode(struct: str, arch: Arch, data: bytes) -> dict[str, Any]:
    """The canonical dict of one ``struct`` laid out for ``arch``."""
    lay = layout(struct, arch)
    if len(data) != lay.size:
        raise StructError(f"{struct} on {lay.arch.value} is {lay.size} bytes, got {len(data)}")
    out = {}
    for f, value in zip(lay.fields, lay.packer.unpack(data), strict=True):
        if f.hidden:
            continue
        if f.ctype.startswith("char["):
            value = value.split(b"\0", 1)[0]
        elif f.ctype == "rlim" and value == (1 << (8 * f.size)) - 1:
            value = RLIM_INFINITY
        out[f.name] = value
    return out


def encode(struct: str, arch: Arch, fields: dict[str, Any]) -> bytes:
    """Bytes of one ``struct`` for ``arch`` from its canonical dict."""
    lay = layout(struct, arch)
    missing = [k for k in lay.keys if k not in fields]
    extra = [k for k in fields if k not in lay.keys]
    if missing or extra:
        what = "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(extra)}"] if extra else [])
        )
        raise StructError(f"{struct} on {lay.arch.value}: {what}")
    values = []
    for f in lay.fields:
        value = fields[f.mirror] if f.mirror else None if f.hidden else fields[f.name]
        if f.ctype.endswith("]"):
            value = _fit_bytes(lay, f, b"" if value is None else bytes(value))
        elif value is None:
            value = 0
        elif f.mirror:
            value &= (1 << (8 * f.size)) - 1  # the kernel truncates i386 __st_ino likewise
        elif f.ctype == "rlim" and value >= (1 << (8 * f.size)) - 1:
            value = (1 << (8 * f.size)) - 1  # saturate at RLIM_INFINITY, as compat_getrlimit does
        values.append(value)
    try:
        return lay.packer.pack(*values)
    except _struct.error:
        raise StructError(_overflow(lay, values)) from None


def _fit_bytes(lay: StructLayout, f: Field, value: bytes) -> bytes:
    if len(value) > f.size and value[f.size :].strip(b"\0"):
        raise StructError(f"{lay.name}.{f.name} on {lay.arch.value} holds {f.size} bytes, got {len(value)}")
    return value[: f.size]


def _overflow(lay: StructLayout, values: list[Any]) -> str:
    for f, value in zip(lay.fields, values, strict=True):
        if f.ctype.endswith("]"):
            continue
        bits = 8 * f.size
        signed = f.ctype.startswith("s") or f.ctype == "long"
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not isinstance(value, int) or not low <= value <= high:
            return f"{lay.name}.{f.name}={value!r} does not fit {f.ctype} ({bits}-bit) on {lay.arch.value}"
    return f"{lay.name} on {lay.arch.value}: values do not fit the layout"


def convert(
    struct: str, from_arch: Arch, to_arch: Arch, data: bytes, to_struct: str | None = None, bits: int | None = None
) -> bytes:
    """Re-lay ``data`` -- one ``struct`` or an array of them -- from one ABI to another.

    ``to_struct`` names the target struct when it differs but has the same
    canonical keys (i386 ``stat32`` or ``statfs64`` to ``stat``/``statfs``).
    A value that does not fit the target (a 64-bit inode in ``stat32``, a
    time past 2038 in an i386 ``stat64``) raises :class:`StructError`, the way
    the kernel answers EOVERFLOW. For a bitmap (``fd_set``) ``bits`` is the
    descriptor count (select's ``nfds``); the bytes are the same on every
    little-endian ABI, only the rounding to whole words differs.
    """
    target = to_struct or struct
    if struct in BITMAPS:
        want = size(struct, to_arch, 8 * len(data) if bits is None else bits)
        return data[:want].ljust(want, b"\0")
    if struct == target and from_arch == to_arch:
        return bytes(data)
    step = layout(struct, from_arch).size
    if len(data) % step:
        raise StructError(
            f"{len(data)} bytes are not a whole number of {struct} ({step} bytes on {Arch(from_arch).value})"
        )
    return b"".join(
        encode(target, to_arch, decode(struct, from_arch, data[i : i + step])) for i in range(0, len(data), step)
    )


#: ``utimensat``'s special nanoseconds: set this time to now, or leave it.
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
#: Fields a call ignores, by the value of another: struct -> (ignored field,
#: deciding field, the deciding values). With UTIME_NOW or UTIME_OMIT in
#: ``tv_nsec`` the kernel never reads ``tv_sec``, and callers leave it
#: uninitialised (tar, touch): stack garbage, different in every variant.
_IGNORED_WHEN: dict[str, tuple[tuple[str, str, frozenset[int]], ...]] = {
    pair: tuple((f"{t}_sec", f"{t}_nsec", frozenset({UTIME_NOW, UTIME_OMIT})) for t in ("atime", "mtime"))
    for pair in ("timespec_pair", "timespec64_pair")
}


def canonical_bytes(struct: str, arch: Arch, data: bytes) -> bytes:
    """The form in which an input struct is compared across variants.

    Re-laid for x86-64, with addresses reduced to what they mean across
    variants: a pointer field becomes 0 (NULL) or 1 (set); a signal handler
    keeps SIG_DFL (0) and SIG_IGN (1) and becomes 2 when it is a function.
    A field the call ignores (:data:`_IGNORED_WHEN`) becomes 0.
    """
    if struct in BITMAPS:
        return convert(struct, arch, Arch.X86_64, data)
    lay = layout(struct, arch)
    if len(data) % lay.size:
        raise StructError(
            f"{len(data)} bytes are not a whole number of {struct} ({lay.size} bytes on {lay.arch.value})"
        )
    pointers = [f.name for f in lay.fields if f.ctype in _POINTERS]
    handlers = [f.name for f in lay.fields if f.ctype == "handler"]
    out = []
    for i in range(0, len(data), lay.size):
        fields = decode(struct, arch, data[i : i + lay.size])
        for name in pointers:
            fields[name] = 1 if fields[name] else 0
        for name in handlers:
            fields[name] = fields[name] if fields[name] in (0, 1) else 2
        for ignored, decides, values in _IGNORED_WHEN.get(struct, ()):
            if fields[decides] in values:
                fields[ignored] = 0
        out.append(encode(struct, Arch.X86_64, fields))
    return b"".join(out)


def dirents_canonical(call: str, arch: Arch, data: bytes) -> bytes:
    """The entries ``getdents64`` or ``getdents`` wrote, as they compare:
    each record's bytes between the NUL of its name and its end (the
    alignment the kernel pads to, which holds what the buffer held before)
    become zeros; ``getdents``' ``d_type``, the last byte of its record, is
    kept. Record lengths and offsets stay, so the bytes remain a valid
    buffer for a follower of the same ABI. Bytes that are not whole records
    are returned as they are."""
    word = 8 if call == "getdents64" else arch.word_size  # d_ino and d_off
    name_at = 2 * word + (3 if call == "getdents64" else 2)  # after d_reclen (and d_type)
    keep_last = call != "getdents64"
    out = bytearray(data)
    at = 0
    while at + name_at <= len(data):
        reclen = int.from_bytes(data[at + 2 * word : at + 2 * word + 2], "little")
        end = at + reclen
        if reclen <= name_at or end > len(data):
            return bytes(data)
        nul = data.find(b"\0", at + name_at, end)
        if nul < 0:
            return bytes(data)
        pad_end = end - 1 if keep_last else end
        out[nul + 1 : pad_end] = bytes(max(0, pad_end - nul - 1))
        at = end
    return bytes(out) if at == len(data) else bytes(data)


def iovecs(arch: Arch, data: bytes) -> list[tuple[int, int]]:
    """``(base, length)`` of each iovec in an iovec array read from a tracee."""
    lay = layout("iovec", arch)
    if len(data) % lay.size:
        raise StructError(f"{len(data)} bytes are not a whole number of iovec ({lay.size} bytes on {lay.arch.value})")
    return [(base, length) for base, length in lay.packer.iter_unpack(data)]


# --------------------------------------------------------------------------
# stat <-> statx: i386 glibc asks statx where x86-64 glibc asks newfstatat.

STATX_BASIC_STATS = 0x7FF


def _dev_encode(major: int, minor: int) -> int:
    """The kernel's new_encode_dev, as stat(2) reports devices."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def _dev_decode(dev: int) -> tuple[int, int]:
    return (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)


def stat_from_statx(stx: dict[str, Any]) -> dict[str, Any]:
    """The canonical ``stat`` dict that a statx result describes."""
    return {
        "st_dev": _dev_encode(stx["stx_dev_major"], stx["stx_dev_minor"]),
        "st_ino": stx["stx_ino"],
        "st_nlink": stx["stx_nlink"],
        "st_mode": stx["stx_mode"],
        "st_uid": stx["stx_uid"],
        "st_gid": stx["stx_gid"],
        "st_rdev": _dev_encode(stx["stx_rdev_major"], stx["stx_rdev_minor"]),
        "st_size": stx["stx_size"],
        "st_blksize": stx["stx_blksize"],
        "st_blocks": stx["stx_blocks"],
        "st_atime": stx["stx_atime_sec"],
        "st_atime_nsec": stx["stx_atime_nsec"],
        "st_mtime": stx["stx_mtime_sec"],
        "st_mtime_nsec": stx["stx_mtime_nsec"],
        "st_ctime": stx["stx_ctime_sec"],
        "st_ctime_nsec": stx["stx_ctime_nsec"],
    }


def statx_from_stat(st: dict[str, Any]) -> dict[str, Any]:
    """A statx result (mask STATX_BASIC_STATS) carrying what a ``stat`` dict says."""
    dev_major, dev_minor = _dev_decode(st["st_dev"])
    rdev_major, rdev_minor = _dev_decode(st["st_rdev"])
    out = {
        "stx_mask": STATX_BASIC_STATS,
        "stx_blksize": st["st_blksize"],
        "stx_attributes": 0,
        "stx_nlink": st["st_nlink"],
        "stx_uid": st["st_uid"],
        "stx_gid": st["st_gid"],
        "stx_mode": st["st_mode"],
        "stx_ino": st["st_ino"],
        "stx_size": st["st_size"],
        "stx_blocks": st["st_blocks"],
        "stx_attributes_mask": 0,
        "stx_rdev_major": rdev_major,
        "stx_rdev_minor": rdev_minor,
        "stx_dev_major": dev_major,
        "stx_dev_minor": dev_minor,
        "stx_mnt_id": 0,
        "stx_dio_mem_align": 0,
        "stx_dio_offset_align": 0,
        "stx_spare": b"",
    }
    for ts in ("atime", "mtime", "ctime"):
        out[f"stx_{ts}_sec"], out[f"stx_{ts}_nsec"] = st[f"st_{ts}"], st[f"st_{ts}_nsec"]
    out["stx_btime_sec"] = out["stx_btime_nsec"] = 0
    return out
