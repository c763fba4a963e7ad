"""The canonical system-call table.

One table maps each call's canonical name to its number on every supported
architecture, with the kind of each argument and of the return value. The
core never compares raw numbers: a mode translates ``(arch, number)`` to a
spec once, at the stop, with :func:`by_number`, and from then on an x86-64
variant and an i386 variant speak the same language.

Canonical names are the x86-64 names, with two kinds of exception: the
stat-at call is ``fstatat`` everywhere (x86-64 and aarch64 say ``newfstatat``,
i386 ``fstatat64``), and i386 calls that reuse a name for a different call
get a name of their own (``old_mmap``, ``old_select``, ``old_getrlimit``).
The raw-name aliases live in the generated :mod:`dmvx._syscall_numbers`
(``tools/gen_syscalls.py`` decides them).

**Variants.** Where an architecture's raw call passes the same meaning in
different registers, :func:`by_number` returns a *variant* spec: its ``name``
is canonical, its ``args`` describe the raw registers (so a mode decodes them
as they are), and ``layout`` says how the decoded values become the canonical
argument tuple; :func:`canonical_args` applies it. A variant's ``note`` says
what else a mode must convert. The variants are:

* 64-bit values split over two registers on i386 (``_llseek``, ``pread64``,
  ``pwrite64``, ``truncate64``, ``ftruncate64``, ``fallocate``,
  ``readahead``, ``fadvise64(_64)``, ``sync_file_range``) and the
  ``pos_l``/``pos_h`` pair of ``preadv``/``pwritev``(2) on every arch;
* ``mmap2``, whose offset counts 4096-byte pages;
* ``clone`` on i386 and aarch64, which swap ``tls`` and ``child_tid``;
* i386 calls whose memory layout differs from the canonical spec's struct:
  the 32-bit ``stat``/``fstat``/``lstat`` (struct ``stat32``), ``statfs64``
  (an extra size argument), the 16-bit uid/gid arrays of ``getgroups`` and
  friends, the ``*_time64`` calls (64-bit ``timespec`` on a 32-bit ABI), the
  32-bit ``sendfile`` offset;
* i386 ``socketcall``: the sub-call and its arguments live in memory; see
  :func:`socketcall`.

**Canonical values** (what :class:`dmvx.calls.Call` carries), by kind: see
:class:`ArgKind`. A NULL pointer of any buffer kind is ``None``.

**Equivalent forms.** Some calls are the same request spelled differently,
and libcs pick different spellings per architecture (x86-64 glibc turns
``fstat`` into ``newfstatat(fd, "", AT_EMPTY_PATH)``; i386 glibc into
``statx``; aarch64 has no ``open``, ``stat``, ``pipe`` ...). :func:`normalize`
maps a canonical call onto one spelling, so comparison sees one request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from dmvx import _syscall_numbers as _table


class Arch(str, Enum):
    """Architectures (ISA + ABI) a variant can run on. All are little-endian."""

    X86_64 = "x86_64"
    I386 = "i386"
    AARCH64 = "aarch64"

    @property
    def word_size(self) -> int:
        return 4 if self is Arch.I386 else 8


class ArgKind(str, Enum):
    """What an argument *means*, which decides how it is compared.

    The canonical value a mode puts in a :class:`~dmvx.calls.Call` for each kind:

    ==========  ===============================================================
    FD          ``int``
    IN_BUF      ``bytes`` read from memory; for a struct (``Arg.struct``), the
                bytes re-encoded in canonical form (``structs.canonical_bytes``)
    OUT_BUF     how much the caller asked for: bytes, or elements of
                ``Arg.struct`` (``1`` for a single struct) -- never the pointer
    INOUT_BUF   as IN_BUF (what the kernel reads); the kernel also writes it back
    PATH, STR   ``str``
    STR_ARRAY   ``tuple[str, ...]`` (argv, envp)
    IN_IOVEC    ``bytes``: the concatenated buffers of the iovec array
    OUT_IOVEC   ``int``: total length of the iovec buffers
    IN_MSGHDR   ``tuple``: (name bytes, data bytes, control bytes)
    OUT_MSGHDR  ``tuple``: (name length, data length, control length)
    FLAGS       ``int`` after :func:`canonical_flags`
    INT         ``int``
    PTR         ``None`` (addresses differ between variants by design)
    SIZEOF      ``None`` (the size of an ABI structure, which differs by design)
    ==========  ===============================================================
    """

    FD = "fd"  # a descriptor number
    IN_BUF = "in_buf"  # memory the call reads; ``size_arg`` / ``struct`` give its length
    OUT_BUF = "out_buf"  # memory the call writes; ``size_arg`` / ``struct`` give its length
    INOUT_BUF = "inout_buf"  # memory the call reads and writes back (poll fds, select sets)
    PATH = "path"  # a NUL-terminated path string
    STR = "str"  # a NUL-terminated string that is not a path (names, fs types)
    STR_ARRAY = "str_array"  # a NULL-terminated array of string pointers (argv, envp)
    IN_IOVEC = "in_iovec"  # an iovec array the call reads; ``size_arg`` counts entries
    OUT_IOVEC = "out_iovec"  # an iovec array the call fills; ``size_arg`` counts entries
    IN_MSGHDR = "in_msghdr"  # a struct msghdr the call reads (sendmsg)
    OUT_MSGHDR = "out_msghdr"  # a struct msghdr the call fills (recvmsg)
    FLAGS = "flags"  # a flag word; ``flags`` names its family
    INT = "int"  # a plain integer (lengths, modes, offsets, pids)
    PTR = "ptr"  # an address; never compared by value
    SIZEOF = "sizeof"  # sizeof an ABI structure (robust list head); never compared


class RetKind(str, Enum):
    """What a call returns on success."""

    INT = "int"  # a status or count
    FD = "fd"  # a new descriptor
    PTR = "ptr"  # an address (mmap, brk)
    NONE = "none"  # never returns (exit, exit_group)


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: its name and kind.

    Buffer lengths: ``size_arg`` is the index of the argument giving the
    length -- in bytes, or in elements of ``struct`` when ``struct`` is set
    too (``poll``'s ``nfds``; for the ``fd_set`` struct the count is in bits).
    ``struct`` alone means one struct of that name, whose size per
    architecture :func:`dmvx.structs.size` knows. ``size_in_mem`` says the
    ``size_arg`` argument is a pointer to an ``int`` holding the length
    (``accept``'s ``addrlen``). ``ret_len`` says the kernel fills only as many
    bytes (or elements) as the call returns (``read``, ``epoll_wait``).
    ``flags`` names a flag family that :func:`canonical_flags` knows.
    """

    name: str
    kind: ArgKind
    size_arg: int | None = None
    flags: str | None = None
    struct: str | None = None
    size_in_mem: bool = False
    ret_len: bool = False


@dataclass(frozen=True, slots=True)
class SyscallSpec:
    """A system call: canonical name, arguments, return kind, numbers.

    ``numbers`` holds the preferred number of the call per architecture (the
    raw call a current libc uses when several mean the same).

    A *variant* (see the module docstring) also has ``arch`` and ``raw`` (the
    kernel's name for it) set; its ``args`` are the raw registers and
    ``layout`` rebuilds the canonical arguments from them: per canonical
    argument, an ``int`` (copy that raw argument), ``("join", lo, hi)`` (a
    64-bit value from two 32-bit halves), ``("pages", i)`` (raw argument ``i``
    times 4096) or ``("const", value)``. ``note`` says what a mode converts
    beyond the arguments.
    """

    name: str
    args: tuple[Arg, ...]
    ret: RetKind
    numbers: dict[Arch, int]
    arch: Arch | None = None
    raw: str | None = None
    layout: tuple[Any, ...] | None = None
    note: str = ""

    @property
    def is_variant(self) -> bool:
        return self.arch is not None


class UnknownSyscall(KeyError):
    """No call of that name exists in the table."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown system call"


class UnknownFlags(ValueError):
    """No flag family of that name exists."""


# --------------------------------------------------------------------------
# Argument helpers: keep the table below readable.

K = ArgKind


def _fd(name: str = "fd") -> Arg:
    return Arg(name, K.FD)


def _int(name: str) -> Arg:
    return Arg(name, K.INT)


def _ptr(name: str) -> Arg:
    return Arg(name, K.PTR)


def _path(name: str = "path") -> Arg:
    return Arg(name, K.PATH)


def _str(name: str) -> Arg:
    return Arg(name, K.STR)


def _flags(name: str, family: str) -> Arg:
    return Arg(name, K.FLAGS, flags=family)


def _in(name: str, size: int | None = None, struct: str | None = None, *, in_mem: bool = False) -> Arg:
    return Arg(name, K.IN_BUF, size_arg=size, struct=struct, size_in_mem=in_mem)


def _out(
    name: str, size: int | None = None, struct: str | None = None, *, ret: bool = False, in_mem: bool = False
) -> Arg:
    return Arg(name, K.OUT_BUF, size_arg=size, struct=struct, ret_len=ret, size_in_mem=in_mem)


def _inout(name: str, size: int | None = None, struct: str | None = None) -> Arg:
    return Arg(name, K.INOUT_BUF, size_arg=size, struct=struct)


def _sizeof(name: str) -> Arg:
    return Arg(name, K.SIZEOF)


_AT = "at"
_OPEN = "open"
_AT_FDCWD_FD = _fd("dirfd")

#: name -> (return kind, args). Argument order is the x86-64 kernel's.
_HAND: dict[str, tuple[RetKind, tuple[Arg, ...]]] = {}


def _def(name: str, ret: RetKind, *args: Arg) -> None:
    _HAND[name] = (ret, args)


R = RetKind
# --- file descriptors and I/O
_def("read", R.INT, _fd(), _out("buf", 2, ret=True), _int("count"))
_def("write", R.INT, _fd(), _in("buf", 2), _int("count"))
_def("pread64", R.INT, _fd(), _out("buf", 2, ret=True), _int("count"), _int("offset"))
_def("pwrite64", R.INT, _fd(), _in("buf", 2), _int("count"), _int("offset"))
_def("readv", R.INT, _fd(), Arg("iov", K.OUT_IOVEC, size_arg=2, ret_len=True), _int("iovcnt"))
_def("writev", R.INT, _fd(), Arg("iov", K.IN_IOVEC, size_arg=2), _int("iovcnt"))
_def("preadv", R.INT, _fd(), Arg("iov", K.OUT_IOVEC, size_arg=2, ret_len=True), _int("iovcnt"), _int("offset"))
_def("pwritev", R.INT, _fd(), Arg("iov", K.IN_IOVEC, size_arg=2), _int("iovcnt"), _int("offset"))
_def(
    "preadv2",
    R.INT,
    _fd(),
    Arg("iov", K.OUT_IOVEC, size_arg=2, ret_len=True),
    _int("iovcnt"),
    _int("offset"),
    _int("flags"),
)
_def("pwritev2", R.INT, _fd(), Arg("iov", K.IN_IOVEC, size_arg=2), _int("iovcnt"), _int("offset"), _int("flags"))
_def("open", R.FD, _path(), _flags("flags", _OPEN), _int("mode"))
_def("openat", R.FD, _AT_FDCWD_FD, _path(), _flags("flags", _OPEN), _int("mode"))
_def("openat2", R.FD, _AT_FDCWD_FD, _path(), _in("how", 3), _int("size"))
_def("creat", R.FD, _path(), _int("mode"))
_def("close", R.INT, _fd())
_def("close_range", R.INT, _fd("first"), _fd("last"), _int("flags"))
_def("lseek", R.INT, _fd(), _int("offset"), _int("whence"))
_def("dup", R.FD, _fd("oldfd"))
_def("dup2", R.FD, _fd("oldfd"), _fd("newfd"))
_def("dup3", R.FD, _fd("oldfd"), _fd("newfd"), _flags("flags", _OPEN))
_def("pipe", R.INT, _out("fds", struct="fd_pair"))
_def("pipe2", R.INT, _out("fds", struct="fd_pair"), _flags("flags", _OPEN))
_def("fcntl", R.INT, _fd(), _flags("cmd", "fcntl_cmd"), _int("arg"))
_def("ioctl", R.INT, _fd(), _int("request"), _ptr("arg"))
_def("fsync", R.INT, _fd())
_def("fdatasync", R.INT, _fd())
_def("sync", R.INT)
_def("syncfs", R.INT, _fd())
_def("truncate", R.INT, _path(), _int("length"))
_def("ftruncate", R.INT, _fd(), _int("length"))
_def("fallocate", R.INT, _fd(), _int("mode"), _int("offset"), _int("len"))
_def("fadvise64", R.INT, _fd(), _int("offset"), _int("len"), _int("advice"))
_def("readahead", R.INT, _fd(), _int("offset"), _int("count"))
_def("sync_file_range", R.INT, _fd(), _int("offset"), _int("nbytes"), _int("flags"))
_def("sendfile", R.INT, _fd("out_fd"), _fd("in_fd"), _inout("offset", struct="loff_t"), _int("count"))
_def(
    "copy_file_range",
    R.INT,
    _fd("fd_in"),
    _inout("off_in", struct="loff_t"),
    _fd("fd_out"),
    _inout("off_out", struct="loff_t"),
    _int("len"),
    _int("flags"),
)
_def(
    "splice",
    R.INT,
    _fd("fd_in"),
    _inout("off_in", struct="loff_t"),
    _fd("fd_out"),
    _inout("off_out", struct="loff_t"),
    _int("len"),
    _int("flags"),
)
_def("tee", R.INT, _fd("fd_in"), _fd("fd_out"), _int("len"), _int("flags"))
_def("vmsplice", R.INT, _fd(), Arg("iov", K.IN_IOVEC, size_arg=2), _int("nr_segs"), _int("flags"))
_def("flock", R.INT, _fd(), _int("operation"))
# --- stat family, directories, links
_def("stat", R.INT, _path(), _out("statbuf", struct="stat"))
_def("lstat", R.INT, _path(), _out("statbuf", struct="stat"))
_def("fstat", R.INT, _fd(), _out("statbuf", struct="stat"))
_def("fstatat", R.INT, _AT_FDCWD_FD, _path(), _out("statbuf", struct="stat"), _flags("flags", _AT))
_def("statx", R.INT, _AT_FDCWD_FD, _path(), _flags("flags", _AT), _int("mask"), _out("statxbuf", struct="statx"))
_def("statfs", R.INT, _path(), _out("buf", struct="statfs"))
_def("fstatfs", R.INT, _fd(), _out("buf", struct="statfs"))
_def("access", R.INT, _path(), _int("mode"))
_def("faccessat", R.INT, _AT_FDCWD_FD, _path(), _int("mode"))
_def("faccessat2", R.INT, _AT_FDCWD_FD, _path(), _int("mode"), _flags("flags", _AT))
_def("readlink", R.INT, _path(), _out("buf", 2, ret=True), _int("bufsiz"))
_def("readlinkat", R.INT, _AT_FDCWD_FD, _path(), _out("buf", 3, ret=True), _int("bufsiz"))
_def("getdents64", R.INT, _fd(), _out("dirp", 2, ret=True), _int("count"))
_def("getdents", R.INT, _fd(), _out("dirp", 2, ret=True), _int("count"))
_def("chmod", R.INT, _path(), _int("mode"))
_def("fchmod", R.INT, _fd(), _int("mode"))
_def("fchmodat", R.INT, _AT_FDCWD_FD, _path(), _int("mode"))
_def("fchmodat2", R.INT, _AT_FDCWD_FD, _path(), _int("mode"), _flags("flags", _AT))
_def("chown", R.INT, _path(), _int("owner"), _int("group"))
_def("lchown", R.INT, _path(), _int("owner"), _int("group"))
_def("fchown", R.INT, _fd(), _int("owner"), _int("group"))
_def("fchownat", R.INT, _AT_FDCWD_FD, _path(), _int("owner"), _int("group"), _flags("flags", _AT))
_def("utimensat", R.INT, _AT_FDCWD_FD, _path(), _in("times", struct="timespec_pair"), _flags("flags", _AT))
_def("utimes", R.INT, _path(), _in("times", struct="timeval_pair"))
_def("futimesat", R.INT, _AT_FDCWD_FD, _path(), _in("times", struct="timeval_pair"))
_def("utime", R.INT, _path(), _in("times", struct="utimbuf"))
_def("mkdir", R.INT, _path(), _int("mode"))
_def("mkdirat", R.INT, _AT_FDCWD_FD, _path(), _int("mode"))
_def("rmdir", R.INT, _path())
_def("unlink", R.INT, _path())
_def("unlinkat", R.INT, _AT_FDCWD_FD, _path(), _flags("flags", _AT))
_def("rename", R.INT, _path("oldpath"), _path("newpath"))
_def("renameat", R.INT, _fd("olddirfd"), _path("oldpath"), _fd("newdirfd"), _path("newpath"))
_def("renameat2", R.INT, _fd("olddirfd"), _path("oldpath"), _fd("newdirfd"), _path("newpath"), _int("flags"))
_def("link", R.INT, _path("oldpath"), _path("newpath"))
_def("linkat", R.INT, _fd("olddirfd"), _path("oldpath"), _fd("newdirfd"), _path("newpath"), _flags("flags", _AT))
_def("symlink", R.INT, _path("target"), _path("linkpath"))
_def("symlinkat", R.INT, _path("target"), _fd("newdirfd"), _path("linkpath"))
_def("mknod", R.INT, _path(), _int("mode"), _int("dev"))
_def("mknodat", R.INT, _AT_FDCWD_FD, _path(), _int("mode"), _int("dev"))
_def("getcwd", R.INT, _out("buf", 1, ret=True), _int("size"))
_def("chdir", R.INT, _path())
_def("fchdir", R.INT, _fd())
_def("chroot", R.INT, _path())
_def("umask", R.INT, _int("mask"))
_def("inotify_init", R.FD)
_def("inotify_init1", R.FD, _flags("flags", _OPEN))
_def("inotify_add_watch", R.INT, _fd(), _path(), _int("mask"))
_def("inotify_rm_watch", R.INT, _fd(), _int("wd"))
_def("getxattr", R.INT, _path(), _str("name"), _out("value", 3, ret=True), _int("size"))
_def("lgetxattr", R.INT, _path(), _str("name"), _out("value", 3, ret=True), _int("size"))
_def("fgetxattr", R.INT, _fd(), _str("name"), _out("value", 3, ret=True), _int("size"))
_def("setxattr", R.INT, _path(), _str("name"), _in("value", 3), _int("size"), _int("flags"))
_def("lsetxattr", R.INT, _path(), _str("name"), _in("value", 3), _int("size"), _int("flags"))
_def("fsetxattr", R.INT, _fd(), _str("name"), _in("value", 3), _int("size"), _int("flags"))
_def("listxattr", R.INT, _path(), _out("list", 2, ret=True), _int("size"))
_def("llistxattr", R.INT, _path(), _out("list", 2, ret=True), _int("size"))
_def("flistxattr", R.INT, _fd(), _out("list", 2, ret=True), _int("size"))
_def("removexattr", R.INT, _path(), _str("name"))
_def("lremovexattr", R.INT, _path(), _str("name"))
_def("fremovexattr", R.INT, _fd(), _str("name"))
_def("mount", R.INT, _path("source"), _path("target"), _str("fstype"), _int("flags"), _ptr("data"))
_def("umount2", R.INT, _path("target"), _int("flags"))
_def("memfd_create", R.FD, _str("name"), _int("flags"))
# --- memory
_def(
    "mmap", R.PTR, _ptr("addr"), _int("length"), _flags("prot", "prot"), _flags("flags", "mmap"), _fd(), _int("offset")
)
_def("munmap", R.INT, _ptr("addr"), _int("length"))
_def("mprotect", R.INT, _ptr("addr"), _int("length"), _flags("prot", "prot"))
_def("pkey_mprotect", R.INT, _ptr("addr"), _int("length"), _flags("prot", "prot"), _int("pkey"))
_def("brk", R.PTR, _ptr("addr"))
_def("mremap", R.PTR, _ptr("old_address"), _int("old_size"), _int("new_size"), _int("flags"), _ptr("new_address"))
_def("madvise", R.INT, _ptr("addr"), _int("length"), _int("advice"))
_def("msync", R.INT, _ptr("addr"), _int("length"), _int("flags"))
_def("mlock", R.INT, _ptr("addr"), _int("length"))
_def("mlock2", R.INT, _ptr("addr"), _int("length"), _int("flags"))
_def("munlock", R.INT, _ptr("addr"), _int("length"))
_def("mlockall", R.INT, _int("flags"))
_def("munlockall", R.INT)
_def("mincore", R.INT, _ptr("addr"), _int("length"), _ptr("vec"))
_def("membarrier", R.INT, _int("cmd"), _int("flags"), _int("cpu_id"))
_def("arch_prctl", R.INT, _int("code"), _ptr("addr"))
_def("set_thread_area", R.INT, _ptr("u_info"))
_def("set_tid_address", R.INT, _ptr("tidptr"))
_def("set_robust_list", R.INT, _ptr("head"), _sizeof("len"))
_def("get_robust_list", R.INT, _int("pid"), _ptr("head_ptr"), _ptr("len_ptr"))
_def("rseq", R.INT, _ptr("rseq"), _sizeof("rseq_len"), _int("flags"), _int("sig"))
# --- processes
_def("execve", R.INT, _path(), Arg("argv", K.STR_ARRAY), Arg("envp", K.STR_ARRAY))
_def("execveat", R.INT, _AT_FDCWD_FD, _path(), Arg("argv", K.STR_ARRAY), Arg("envp", K.STR_ARRAY), _flags("flags", _AT))
_def("exit", R.NONE, _int("status"))
_def("exit_group", R.NONE, _int("status"))
_def("fork", R.INT)
_def("vfork", R.INT)
_def("clone", R.INT, _flags("flags", "clone"), _ptr("stack"), _ptr("parent_tid"), _ptr("child_tid"), _ptr("tls"))
_def("clone3", R.INT, _in("cl_args", struct="clone_args"), _sizeof("size"))
_def("wait4", R.INT, _int("pid"), _out("wstatus", struct="int"), _int("options"), _out("rusage", struct="rusage"))
_def(
    "waitid",
    R.INT,
    _int("idtype"),
    _int("id"),
    _out("infop", struct="siginfo"),
    _int("options"),
    _out("rusage", struct="rusage"),
)
_def("kill", R.INT, _int("pid"), _int("sig"))
_def("tkill", R.INT, _int("tid"), _int("sig"))
_def("tgkill", R.INT, _int("tgid"), _int("tid"), _int("sig"))
_def("getpid", R.INT)
_def("getppid", R.INT)
_def("gettid", R.INT)
_def("getpgid", R.INT, _int("pid"))
_def("setpgid", R.INT, _int("pid"), _int("pgid"))
_def("getpgrp", R.INT)
_def("getsid", R.INT, _int("pid"))
_def("setsid", R.INT)
for _name in ("getuid", "geteuid", "getgid", "getegid"):
    _def(_name, R.INT)
for _name in ("setuid", "setgid", "setfsuid", "setfsgid"):
    _def(_name, R.INT, _int("id"))
_def("setreuid", R.INT, _int("ruid"), _int("euid"))
_def("setregid", R.INT, _int("rgid"), _int("egid"))
_def("setresuid", R.INT, _int("ruid"), _int("euid"), _int("suid"))
_def("setresgid", R.INT, _int("rgid"), _int("egid"), _int("sgid"))
_def("getresuid", R.INT, _out("ruid", struct="uid_t"), _out("euid", struct="uid_t"), _out("suid", struct="uid_t"))
_def("getresgid", R.INT, _out("rgid", struct="gid_t"), _out("egid", struct="gid_t"), _out("sgid", struct="gid_t"))
_def("getgroups", R.INT, _int("size"), _out("list", 0, "gid_t", ret=True))
_def("setgroups", R.INT, _int("size"), _in("list", 0, "gid_t"))
_def("prctl", R.INT, _int("option"), _ptr("arg2"), _ptr("arg3"), _ptr("arg4"), _ptr("arg5"))
_def("ptrace", R.INT, _int("request"), _int("pid"), _ptr("addr"), _ptr("data"))
_def("getrlimit", R.INT, _int("resource"), _out("rlim", struct="rlimit"))
_def("setrlimit", R.INT, _int("resource"), _in("rlim", struct="rlimit"))
_def(
    "prlimit64",
    R.INT,
    _int("pid"),
    _int("resource"),
    _in("new_limit", struct="rlimit64"),
    _out("old_limit", struct="rlimit64"),
)
_def("getrusage", R.INT, _int("who"), _out("usage", struct="rusage"))
_def("times", R.INT, _out("buf", struct="tms"))
_def("uname", R.INT, _out("buf", struct="utsname"))
_def("sysinfo", R.INT, _out("info", struct="sysinfo"))
_def("getrandom", R.INT, _out("buf", 1, ret=True), _int("buflen"), _int("flags"))
_def("personality", R.INT, _int("persona"))
_def("getpriority", R.INT, _int("which"), _int("who"))
_def("setpriority", R.INT, _int("which"), _int("who"), _int("prio"))
_def("sched_yield", R.INT)
_def("sched_getaffinity", R.INT, _int("pid"), _int("cpusetsize"), _out("mask", 1, ret=True))
_def("sched_setaffinity", R.INT, _int("pid"), _int("cpusetsize"), _in("mask", 1))
_def("sched_getparam", R.INT, _int("pid"), _out("param", struct="int"))
_def("sched_setparam", R.INT, _int("pid"), _in("param", struct="int"))
_def("sched_getscheduler", R.INT, _int("pid"))
_def("sched_setscheduler", R.INT, _int("pid"), _int("policy"), _in("param", struct="int"))
_def("sched_get_priority_max", R.INT, _int("policy"))
_def("sched_get_priority_min", R.INT, _int("policy"))
_def("sched_rr_get_interval", R.INT, _int("pid"), _out("tp", struct="timespec"))
_def("getcpu", R.INT, _out("cpu", struct="int"), _out("node", struct="int"), _ptr("tcache"))
_def("unshare", R.INT, _flags("flags", "clone"))
_def("setns", R.INT, _fd(), _int("nstype"))
_def("pidfd_open", R.FD, _int("pid"), _int("flags"))
_def("pidfd_getfd", R.FD, _fd("pidfd"), _int("targetfd"), _int("flags"))
_def("pidfd_send_signal", R.INT, _fd("pidfd"), _int("sig"), _ptr("info"), _int("flags"))
# --- signals
_def(
    "rt_sigaction",
    R.INT,
    _int("signum"),
    _in("act", struct="sigaction"),
    _out("oldact", struct="sigaction"),
    _sizeof("sigsetsize"),
)
_def(
    "rt_sigprocmask",
    R.INT,
    _int("how"),
    _in("set", struct="sigset"),
    _out("oldset", struct="sigset"),
    _sizeof("sigsetsize"),
)
_def("rt_sigreturn", R.INT)
_def("rt_sigsuspend", R.INT, _in("mask", struct="sigset"), _sizeof("sigsetsize"))
_def("rt_sigpending", R.INT, _out("set", struct="sigset"), _sizeof("sigsetsize"))
_def(
    "rt_sigtimedwait",
    R.INT,
    _in("set", struct="sigset"),
    _out("info", struct="siginfo"),
    _in("timeout", struct="timespec"),
    _sizeof("sigsetsize"),
)
_def("rt_sigqueueinfo", R.INT, _int("tgid"), _int("sig"), _in("info", struct="siginfo"))
_def("rt_tgsigqueueinfo", R.INT, _int("tgid"), _int("tid"), _int("sig"), _in("info", struct="siginfo"))
_def("sigaltstack", R.INT, _in("ss", struct="stack_t"), _out("old_ss", struct="stack_t"))
_def("signalfd", R.FD, _fd(), _in("mask", struct="sigset"), _sizeof("sizemask"))
_def("signalfd4", R.FD, _fd(), _in("mask", struct="sigset"), _sizeof("sizemask"), _flags("flags", _OPEN))
_def("pause", R.INT)
_def("alarm", R.INT, _int("seconds"))
# --- time
_def("nanosleep", R.INT, _in("req", struct="timespec"), _out("rem", struct="timespec"))
_def("clock_gettime", R.INT, _int("clockid"), _out("tp", struct="timespec"))
_def("clock_getres", R.INT, _int("clockid"), _out("res", struct="timespec"))
_def("clock_settime", R.INT, _int("clockid"), _in("tp", struct="timespec"))
_def(
    "clock_nanosleep",
    R.INT,
    _int("clockid"),
    _int("flags"),
    _in("req", struct="timespec"),
    _out("rem", struct="timespec"),
)
_def("gettimeofday", R.INT, _out("tv", struct="timeval"), _out("tz", struct="timezone"))
_def("settimeofday", R.INT, _in("tv", struct="timeval"), _in("tz", struct="timezone"))
_def("time", R.INT, _out("tloc", struct="long"))
_def("getitimer", R.INT, _int("which"), _out("curr_value", struct="itimerval"))
_def("setitimer", R.INT, _int("which"), _in("new_value", struct="itimerval"), _out("old_value", struct="itimerval"))
_def("timer_create", R.INT, _int("clockid"), _ptr("sevp"), _out("timerid", struct="int"))
_def(
    "timer_settime",
    R.INT,
    _int("timerid"),
    _int("flags"),
    _in("new_value", struct="itimerspec"),
    _out("old_value", struct="itimerspec"),
)
_def("timer_gettime", R.INT, _int("timerid"), _out("curr_value", struct="itimerspec"))
_def("timer_getoverrun", R.INT, _int("timerid"))
_def("timer_delete", R.INT, _int("timerid"))
_def("timerfd_create", R.FD, _int("clockid"), _flags("flags", _OPEN))
_def(
    "timerfd_settime",
    R.INT,
    _fd(),
    _int("flags"),
    _in("new_value", struct="itimerspec"),
    _out("old_value", struct="itimerspec"),
)
_def("timerfd_gettime", R.INT, _fd(), _out("curr_value", struct="itimerspec"))
# --- poll, select, epoll, eventfd
_def("poll", R.INT, _inout("fds", 1, "pollfd"), _int("nfds"), _int("timeout"))
_def(
    "ppoll",
    R.INT,
    _inout("fds", 1, "pollfd"),
    _int("nfds"),
    _inout("tmo", struct="timespec"),
    _in("sigmask", struct="sigset"),
    _sizeof("sigsetsize"),
)
_def(
    "select",
    R.INT,
    _int("nfds"),
    _inout("readfds", 0, "fd_set"),
    _inout("writefds", 0, "fd_set"),
    _inout("exceptfds", 0, "fd_set"),
    _inout("timeout", struct="timeval"),
)
_def(
    "pselect6",
    R.INT,
    _int("nfds"),
    _inout("readfds", 0, "fd_set"),
    _inout("writefds", 0, "fd_set"),
    _inout("exceptfds", 0, "fd_set"),
    _inout("timeout", struct="timespec"),
    _ptr("sigmask"),
)
_def("epoll_create", R.FD, _int("size"))
_def("epoll_create1", R.FD, _flags("flags", _OPEN))
_def("epoll_ctl", R.INT, _fd("epfd"), _int("op"), _fd(), _in("event", struct="epoll_event"))
_def("epoll_wait", R.INT, _fd("epfd"), _out("events", 2, "epoll_event", ret=True), _int("maxevents"), _int("timeout"))
_def(
    "epoll_pwait",
    R.INT,
    _fd("epfd"),
    _out("events", 2, "epoll_event", ret=True),
    _int("maxevents"),
    _int("timeout"),
    _in("sigmask", struct="sigset"),
    _sizeof("sigsetsize"),
)
_def(
    "epoll_pwait2",
    R.INT,
    _fd("epfd"),
    _out("events", 2, "epoll_event", ret=True),
    _int("maxevents"),
    _in("timeout", struct="timespec64"),
    _in("sigmask", struct="sigset"),
    _sizeof("sigsetsize"),
)
_def("eventfd", R.FD, _int("initval"))
_def("eventfd2", R.FD, _int("initval"), _flags("flags", _OPEN))
# --- sockets
_ST = "socket_type"
_MSG = "msg"
_def("socket", R.FD, _int("domain"), _flags("type", _ST), _int("protocol"))
_def("socketpair", R.INT, _int("domain"), _flags("type", _ST), _int("protocol"), _out("sv", struct="fd_pair"))
_def("bind", R.INT, _fd("sockfd"), _in("addr", 2), _int("addrlen"))
_def("connect", R.INT, _fd("sockfd"), _in("addr", 2), _int("addrlen"))
_def("listen", R.INT, _fd("sockfd"), _int("backlog"))
_def("accept", R.FD, _fd("sockfd"), _out("addr", 2, in_mem=True), _inout("addrlen", struct="int"))
_def(
    "accept4", R.FD, _fd("sockfd"), _out("addr", 2, in_mem=True), _inout("addrlen", struct="int"), _flags("flags", _ST)
)
_def("getsockname", R.INT, _fd("sockfd"), _out("addr", 2, in_mem=True), _inout("addrlen", struct="int"))
_def("getpeername", R.INT, _fd("sockfd"), _out("addr", 2, in_mem=True), _inout("addrlen", struct="int"))
_def(
    "sendto",
    R.INT,
    _fd("sockfd"),
    _in("buf", 2),
    _int("len"),
    _flags("flags", _MSG),
    _in("dest_addr", 5),
    _int("addrlen"),
)
_def(
    "recvfrom",
    R.INT,
    _fd("sockfd"),
    _out("buf", 2, ret=True),
    _int("len"),
    _flags("flags", _MSG),
    _out("src_addr", 5, in_mem=True),
    _inout("addrlen", struct="int"),
)
_def("sendmsg", R.INT, _fd("sockfd"), Arg("msg", K.IN_MSGHDR, struct="msghdr"), _flags("flags", _MSG))
_def("recvmsg", R.INT, _fd("sockfd"), Arg("msg", K.OUT_MSGHDR, struct="msghdr"), _flags("flags", _MSG))
_def("sendmmsg", R.INT, _fd("sockfd"), _ptr("msgvec"), _int("vlen"), _flags("flags", _MSG))
_def(
    "recvmmsg",
    R.INT,
    _fd("sockfd"),
    _ptr("msgvec"),
    _int("vlen"),
    _flags("flags", _MSG),
    _inout("timeout", struct="timespec"),
)
_def("shutdown", R.INT, _fd("sockfd"), _int("how"))
_def("setsockopt", R.INT, _fd("sockfd"), _int("level"), _int("optname"), _in("optval", 4), _int("optlen"))
_def(
    "getsockopt",
    R.INT,
    _fd("sockfd"),
    _int("level"),
    _int("optname"),
    _out("optval", 4, in_mem=True),
    _inout("optlen", struct="int"),
)
# --- futex and friends
_def("futex", R.INT, _ptr("uaddr"), _int("futex_op"), _int("val"), _ptr("timeout"), _ptr("uaddr2"), _int("val3"))
_def("restart_syscall", R.INT)
del _name

#: Calls whose successful return is a new descriptor (beyond those above).
_RET_FD = frozenset(
    {
        "perf_event_open",
        "userfaultfd",
        "fanotify_init",
        "io_uring_setup",
        "open_by_handle_at",
        "memfd_secret",
        "fsopen",
        "fsmount",
        "fspick",
        "open_tree",
        "open_tree_attr",
        "landlock_create_ruleset",
        "mq_open",
        "pidfd_open",
        "pidfd_getfd",
    }
)
#: Conservative argument kinds by x86-64 argument name, for calls without a hand spec.
_FD_NAMES = frozenset(
    {
        "fd",
        "dfd",
        "olddfd",
        "newdfd",
        "fd_in",
        "fd_out",
        "fdin",
        "fdout",
        "epfd",
        "out_fd",
        "in_fd",
        "kernel_fd",
        "initrd_fd",
        "pidfd",
        "ufd",
        "fildes",
        "oldfd",
        "newfd",
        "fanotify_fd",
        "mountdirfd",
        "from_dfd",
        "to_dfd",
        "ruleset_fd",
        "mqdes",
    }
)
_POINTER_TYPEDEFS = frozenset({"cap_user_header_t", "cap_user_data_t", "__sighandler_t"})
_PATH_NAMES = frozenset(
    {
        "filename",
        "pathname",
        "path",
        "oldname",
        "newname",
        "specialfile",
        "library",
        "dir_name",
        "from_pathname",
        "to_pathname",
        "name_user",
    }
)


def _conservative(name: str) -> tuple[RetKind, tuple[Arg, ...]]:
    """A spec from the x86-64 kernel signature: pointers PTR, strings PATH/STR, fds FD, rest INT."""
    args = []
    for arg, ctype in _table.SIGNATURES.get(name, ()):
        pointer = "*" in ctype or ctype.replace("const ", "") in _POINTER_TYPEDEFS
        if ctype == "const char *":
            args.append(Arg(arg, K.PATH if arg in _PATH_NAMES else K.STR))
        elif pointer:
            args.append(Arg(arg, K.PTR))
        elif arg in _FD_NAMES:
            args.append(Arg(arg, K.FD))
        else:
            args.append(Arg(arg, K.INT))
    ret = R.FD if name in _RET_FD else R.PTR if name == "shmat" else R.INT
    return ret, tuple(args)


# --------------------------------------------------------------------------
# Variants (see the module docstring).


def _join(lo: int, hi: int) -> tuple[str, int, int]:
    return ("join", lo, hi)


_I386_SPLIT = {
    # raw name -> (raw args, layout, note); the canonical name is the alias target or the name.
    "_llseek": (
        (_fd(), _int("offset_high"), _int("offset_low"), _out("result", struct="loff_t"), _int("whence")),
        (0, _join(2, 1), 4),
        "returns 0 and stores the new offset at result (8 bytes); the canonical result "
        "is that offset: a follower skipping the call writes the leader's result there "
        "and returns 0",
    ),
    "pread64": (
        (_fd(), _out("buf", 2, ret=True), _int("count"), _int("offset_low"), _int("offset_high")),
        (0, 1, 2, _join(3, 4)),
        "",
    ),
    "pwrite64": (
        (_fd(), _in("buf", 2), _int("count"), _int("offset_low"), _int("offset_high")),
        (0, 1, 2, _join(3, 4)),
        "",
    ),
    "truncate64": ((_path(), _int("length_low"), _int("length_high")), (0, _join(1, 2)), ""),
    "ftruncate64": ((_fd(), _int("length_low"), _int("length_high")), (0, _join(1, 2)), ""),
    "fallocate": (
        (_fd(), _int("mode"), _int("offset_low"), _int("offset_high"), _int("len_low"), _int("len_high")),
        (0, 1, _join(2, 3), _join(4, 5)),
        "",
    ),
    "readahead": ((_fd(), _int("offset_low"), _int("offset_high"), _int("count")), (0, _join(1, 2), 3), ""),
    "fadvise64_64": (
        (_fd(), _int("offset_low"), _int("offset_high"), _int("len_low"), _int("len_high"), _int("advice")),
        (0, _join(1, 2), _join(3, 4), 5),
        "",
    ),
    "fadvise64": (
        (_fd(), _int("offset_low"), _int("offset_high"), _int("len"), _int("advice")),
        (0, _join(1, 2), 3, 4),
        "",
    ),
    "sync_file_range": (
        (_fd(), _int("offset_low"), _int("offset_high"), _int("nbytes_low"), _int("nbytes_high"), _int("flags")),
        (0, _join(1, 2), _join(3, 4), 5),
        "",
    ),
    "mmap2": (
        (_ptr("addr"), _int("length"), _flags("prot", "prot"), _flags("flags", "mmap"), _fd(), _int("pgoffset")),
        (0, 1, 2, 3, 4, ("pages", 5)),
        "the offset counts 4096-byte pages; canonical offset is in bytes",
    ),
    "statfs64": (
        (_path(), _sizeof("sz"), _out("buf", struct="statfs64")),
        (0, 2),
        "fills struct statfs64; convert with structs.convert(..., to_struct='statfs')",
    ),
    "fstatfs64": (
        (_fd(), _sizeof("sz"), _out("buf", struct="statfs64")),
        (0, 2),
        "fills struct statfs64; convert with structs.convert(..., to_struct='statfs')",
    ),
}
_POSV = {
    "preadv": (_fd(), Arg("iov", K.OUT_IOVEC, size_arg=2, ret_len=True), _int("iovcnt")),
    "pwritev": (_fd(), Arg("iov", K.IN_IOVEC, size_arg=2), _int("iovcnt")),
}
_STRUCT_RENAMES_I386 = {
    # raw name -> {canonical struct: struct this raw call uses}
    "stat": {"stat": "stat32"},
    "fstat": {"stat": "stat32"},
    "lstat": {"stat": "stat32"},
    "getgroups": {"gid_t": "gid16"},
    "setgroups": {"gid_t": "gid16"},
    "getresuid": {"uid_t": "uid16"},
    "getresgid": {"gid_t": "gid16"},
    "sendfile": {"loff_t": "long"},
}
_TIME64 = {"timespec": "timespec64", "itimerspec": "itimerspec64", "timespec_pair": "timespec64_pair"}


def _variants(canon_specs: dict[str, SyscallSpec]) -> dict[tuple[Arch, str], SyscallSpec]:
    out: dict[tuple[Arch, str], SyscallSpec] = {}

    def add(arch: Arch, raw: str, args: tuple[Arg, ...], layout: tuple[Any, ...] | None, note: str = "") -> None:
        canon = _table.ALIASES[arch.value].get(raw, raw)
        base = canon_specs[canon]
        out[(arch, raw)] = replace(base, args=args, arch=arch, raw=raw, layout=layout, note=note)

    i386_raw = set(_table.RAW["i386"].values())
    for raw, (args, layout, note) in _I386_SPLIT.items():
        if raw in i386_raw:
            add(Arch.I386, raw, args, layout, note)
    for raw, renames in _STRUCT_RENAMES_I386.items():
        canon = _table.ALIASES["i386"].get(raw, raw)
        add(
            Arch.I386,
            raw,
            tuple(_renamed(a, renames) for a in canon_specs[canon].args),
            None,
            f"uses struct {', '.join(renames.values())} where the canonical spec says {', '.join(renames)}",
        )
    for raw, canon in _table.ALIASES["i386"].items():
        if raw.endswith("time64"):
            args = tuple(_renamed(a, _TIME64) for a in canon_specs[canon].args)
            if args != canon_specs[canon].args:
                add(Arch.I386, raw, args, None, "64-bit time_t structs on a 32-bit ABI")
    for arch in Arch:
        for name, head in _POSV.items():
            for suffix, extra in (("", ()), ("2", (_int("flags"),))):
                raw_args = head + (_int("pos_l"), _int("pos_h")) + extra
                pos = _join(3, 4) if arch is Arch.I386 else 3
                layout = (0, 1, 2, pos) + ((5,) if extra else ())
                add(arch, name + suffix, raw_args, layout, "offset in pos_l (64-bit ABIs) or pos_l/pos_h halves (i386)")
    for arch in (Arch.I386, Arch.AARCH64):
        flags, stack, ptid, ctid, tls = canon_specs["clone"].args
        add(
            arch,
            "clone",
            (flags, stack, ptid, tls, ctid),
            (0, 1, 2, 4, 3),
            "tls and child_tid are swapped (CLONE_BACKWARDS)",
        )
    return out


def _renamed(arg: Arg, renames: dict[str, str]) -> Arg:
    return replace(arg, struct=renames[arg.struct]) if arg.struct in renames else arg


# --------------------------------------------------------------------------
# Build the lookup tables once, at import.


def _build() -> tuple[
    dict[str, SyscallSpec],
    dict[Any, dict[int, SyscallSpec]],
    dict[Any, dict[int, str]],
    dict[tuple[str, Arch], tuple[int, ...]],
]:
    preferred: dict[str, dict[Arch, int]] = {}
    every: dict[tuple[str, Arch], list[int]] = {}
    for arch in Arch:
        prefer = _table.PREFERRED[arch.value]
        aliases = _table.ALIASES[arch.value]
        for nr, raw in _table.RAW[arch.value].items():
            canon = aliases.get(raw, raw)
            every.setdefault((canon, arch), []).append(nr)
            if prefer.get(canon, raw) == raw:
                preferred.setdefault(canon, {})[arch] = nr
    specs: dict[str, SyscallSpec] = {}
    for name, numbers in preferred.items():
        ret, args = _HAND[name] if name in _HAND else _conservative(name)
        specs[name] = SyscallSpec(name, args, ret, numbers)
    variants = _variants(specs)
    by_number: dict[Any, dict[int, SyscallSpec]] = {}
    raw_names: dict[Any, dict[int, str]] = {}
    for arch in Arch:
        aliases = _table.ALIASES[arch.value]
        table = {}
        for nr, raw in _table.RAW[arch.value].items():
            table[nr] = variants.get((arch, raw)) or specs[aliases.get(raw, raw)]
        by_number[arch] = by_number[arch.value] = table
        raw_names[arch] = raw_names[arch.value] = _table.RAW[arch.value]
    all_numbers = {key: tuple(sorted(nrs)) for key, nrs in every.items()}
    return specs, by_number, raw_names, all_numbers


_SPECS, _BY_NUMBER, _RAW_NAMES, _ALL_NUMBERS = _build()
_NAMES = frozenset(_SPECS)


# --------------------------------------------------------------------------
# Public API


def spec(name: str) -> SyscallSpec:
    """The canonical spec of ``name``; :class:`UnknownSyscall` if there is none."""
    try:
        return _SPECS[name]
    except KeyError:
        raise UnknownSyscall(f"unknown system call {name!r}") from None


def by_number(arch: Arch, nr: int) -> SyscallSpec | None:
    """The spec of raw call ``nr`` on ``arch`` (a variant where registers differ), or None."""
    return _BY_NUMBER[arch].get(nr)


def number(name: str, arch: Arch) -> int | None:
    """The number ``arch`` uses for canonical call ``name`` (its libc's choice), or None."""
    return spec(name).numbers.get(Arch(arch))


def all_numbers(name: str, arch: Arch) -> tuple[int, ...]:
    """Every raw number on ``arch`` that means ``name`` (for seccomp filters)."""
    spec(name)
    return _ALL_NUMBERS.get((name, Arch(arch)), ())


def raw_name(arch: Arch, nr: int) -> str | None:
    """The kernel's own name of call ``nr`` on ``arch`` (for logs), or None."""
    return _RAW_NAMES[arch].get(nr)


def names() -> frozenset[str]:
    """All canonical names."""
    return _NAMES


def canonical_args(spec: SyscallSpec, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Turn decoded raw-register values of ``spec`` into the canonical argument tuple.

    ``values`` holds one decoded value per ``spec.args`` entry (already in the
    canonical form of its kind). For a non-variant spec this is the identity.
    """
    layout = spec.layout
    if layout is None:
        return tuple(values)
    out = []
    for src in layout:
        if type(src) is int:
            out.append(values[src])
        elif src[0] == "join":
            joined = ((values[src[2]] & 0xFFFFFFFF) << 32) | (values[src[1]] & 0xFFFFFFFF)
            out.append(joined - (1 << 64) if joined >> 63 else joined)
        elif src[0] == "pages":
            out.append(values[src[1]] * 4096)
        else:  # "const"
            out.append(src[1])
    return tuple(out)


# --------------------------------------------------------------------------
# i386 socketcall

#: SYS_* numbers of socketcall(2) -> raw sub-call name.
SOCKETCALL = {
    1: "socket",
    2: "bind",
    3: "connect",
    4: "listen",
    5: "accept",
    6: "getsockname",
    7: "getpeername",
    8: "socketpair",
    9: "send",
    10: "recv",
    11: "sendto",
    12: "recvfrom",
    13: "shutdown",
    14: "setsockopt",
    15: "getsockopt",
    16: "sendmsg",
    17: "recvmsg",
    18: "accept4",
    19: "recvmmsg",
    20: "sendmmsg",
}


def _socketcall_specs() -> dict[int, SyscallSpec]:
    out: dict[int, SyscallSpec] = {}
    for sub, raw in SOCKETCALL.items():
        layout: tuple[Any, ...] | None
        if raw == "send":
            base = _SPECS["sendto"]
            args, layout = base.args[:4], (0, 1, 2, 3, ("const", None), ("const", 0))
        elif raw == "recv":
            base = _SPECS["recvfrom"]
            args, layout = base.args[:4], (0, 1, 2, 3, ("const", None), ("const", None))
        else:
            base = _SPECS[raw]
            args, layout = base.args, None
        out[sub] = replace(
            base,
            args=args,
            arch=Arch.I386,
            raw=f"socketcall/{raw}",
            layout=layout,
            note=f"socketcall({sub}, args): {len(args)} 32-bit words at args are the registers",
        )
    return out


_SOCKETCALL_SPECS = _socketcall_specs()


def socketcall(sub: int) -> SyscallSpec | None:
    """The spec of i386 ``socketcall(sub, args)``: read ``len(spec.args)`` words at ``args``.

    The words are the raw arguments of the returned variant, in order;
    :func:`canonical_args` then gives the canonical call (``send`` and
    ``recv`` become ``sendto``/``recvfrom`` with a NULL address, as on x86-64).
    """
    return _SOCKETCALL_SPECS.get(sub)


# --------------------------------------------------------------------------
# Flag words

_O_LARGEFILE = {Arch.X86_64: 0o100000, Arch.I386: 0o100000, Arch.AARCH64: 0o400000}
#: aarch64 keeps the 32-bit ARM encoding of four open flags (asm/fcntl.h):
#: O_DIRECTORY 040000, O_NOFOLLOW 0100000, O_DIRECT 0200000, O_LARGEFILE 0400000.
_AARCH64_OPEN_MOVES = ((0o40000, 0o200000), (0o100000, 0o400000), (0o200000, 0o40000))
_PROT_AARCH64_ONLY = 0x10 | 0x20  # PROT_BTI, PROT_MTE
_MAP_X86_64_ONLY = 0x40 | 0x80  # MAP_32BIT, MAP_ABOVE4G
_MSG_CMSG_COMPAT = 0x80000000  # kernel-internal marker of 32-bit callers
_FCNTL_LK64 = {12: 5, 13: 6, 14: 7}  # F_GETLK64/F_SETLK64/F_SETLKW64 on 32-bit ABIs

#: (family, arch) -> (bits to drop, (from, to) bit moves, whole-value translations)
_FLAGS: dict[tuple[str, Arch], tuple[int, tuple[tuple[int, int], ...], dict[int, int] | None]] = {}
for _arch in Arch:
    _FLAGS["open", _arch] = (_O_LARGEFILE[_arch], _AARCH64_OPEN_MOVES if _arch is Arch.AARCH64 else (), None)
    _FLAGS["prot", _arch] = (_PROT_AARCH64_ONLY if _arch is Arch.AARCH64 else 0, (), None)
    _FLAGS["mmap", _arch] = (_MAP_X86_64_ONLY if _arch is Arch.X86_64 else 0, (), None)
    _FLAGS["msg", _arch] = (_MSG_CMSG_COMPAT, (), None)
    _FLAGS["fcntl_cmd", _arch] = (0, (), _FCNTL_LK64 if _arch is Arch.I386 else None)
    # Same encoding on x86-64, i386 and aarch64 (they differ on MIPS, SPARC, Alpha, PA-RISC).
    for _family in ("at", "socket_type", "clone"):
        _FLAGS[_family, _arch] = (0, (), None)
del _arch, _family
FLAG_FAMILIES = frozenset(family for family, _ in _FLAGS)


def canonical_flags(family: str, arch: Arch, value: int) -> int:
    """``value`` of flag ``family`` on ``arch`` in the canonical x86-64 encoding.

    Bits that only mean something on one ABI (O_LARGEFILE, which 32-bit libcs
    set and 64-bit kernels imply; MAP_32BIT; PROT_BTI/PROT_MTE;
    MSG_CMSG_COMPAT) are dropped, and bits that sit elsewhere on ``arch`` are
    moved (aarch64's O_DIRECTORY, O_NOFOLLOW, O_DIRECT). ``fcntl_cmd``
    translates the i386 F_*LK64 commands to F_*LK.
    """
    try:
        drop, moves, values = _FLAGS[family, arch]
    except KeyError:
        if family not in FLAG_FAMILIES:
            raise UnknownFlags(f"unknown flag family {family!r}; known: {', '.join(sorted(FLAG_FAMILIES))}") from None
        drop, moves, values = _FLAGS[family, Arch(arch)]
    if values is not None:
        return values.get(value, value)
    if not moves:
        return value & ~drop
    moved = value & ~drop
    for src, _ in moves:
        moved &= ~src
    for src, dst in moves:
        if value & src:
            moved |= dst
    return moved


# --------------------------------------------------------------------------
# Equivalent forms

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000
STATX_BASIC_STATS = 0x7FF
_O_CREAT_WRONLY_TRUNC = 0o100 | 0o1 | 0o1000
#: Open flags under which the kernel reads the mode argument (O_CREAT, and
#: O_TMPFILE's own bit); without them the mode is whatever the register
#: held, and not part of the request.
_O_MODE_READ = 0o100 | 0o20000000


def _openat(dirfd: Any, path: Any, flags: Any, mode: Any) -> tuple[str, tuple[Any, ...]]:
    """``openat`` as the kernel reads it: the mode only when the flags ask for it."""
    if isinstance(flags, int) and not flags & _O_MODE_READ:
        mode = 0
    return "openat", (dirfd, path, flags, mode)


def _statx(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]] | None:
    dirfd, path, flags, mask, buf = args
    if mask & ~STATX_BASIC_STATS or flags & AT_STATX_SYNC_TYPE:
        return None  # asks for more than stat(2) can say
    return "fstatat", (dirfd, path, buf, flags & ~AT_NO_AUTOMOUNT)


_REWRITES: dict[str, Any] = {
    "stat": lambda a: ("fstatat", (AT_FDCWD, a[0], a[1], 0)),
    "lstat": lambda a: ("fstatat", (AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW)),
    "fstat": lambda a: ("fstatat", (a[0], "", a[1], AT_EMPTY_PATH)),
    "fstatat": lambda a: ("fstatat", (a[0], a[1], a[2], a[3] & ~AT_NO_AUTOMOUNT)),
    "statx": _statx,
    "open": lambda a: _openat(AT_FDCWD, a[0], a[1], a[2]),
    "openat": lambda a: _openat(*a),
    "creat": lambda a: ("openat", (AT_FDCWD, a[0], _O_CREAT_WRONLY_TRUNC, a[1])),
    "access": lambda a: ("faccessat", (AT_FDCWD, a[0], a[1])),
    "readlink": lambda a: ("readlinkat", (AT_FDCWD, a[0], a[1], a[2])),
    "unlink": lambda a: ("unlinkat", (AT_FDCWD, a[0], 0)),
    "rmdir": lambda a: ("unlinkat", (AT_FDCWD, a[0], AT_REMOVEDIR)),
    "mkdir": lambda a: ("mkdirat", (AT_FDCWD, a[0], a[1])),
    "mknod": lambda a: ("mknodat", (AT_FDCWD, a[0], a[1], a[2])),
    "rename": lambda a: ("renameat", (AT_FDCWD, a[0], AT_FDCWD, a[1])),
    "link": lambda a: ("linkat", (AT_FDCWD, a[0], AT_FDCWD, a[1], 0)),
    "symlink": lambda a: ("symlinkat", (a[0], AT_FDCWD, a[1])),
    "chmod": lambda a: ("fchmodat", (AT_FDCWD, a[0], a[1])),
    "chown": lambda a: ("fchownat", (AT_FDCWD, a[0], a[1], a[2], 0)),
    "lchown": lambda a: ("fchownat", (AT_FDCWD, a[0], a[1], a[2], AT_SYMLINK_NOFOLLOW)),
    "pipe": lambda a: ("pipe2", (a[0], 0)),
    "inotify_init": lambda a: ("inotify_init1", (0,)),
    "eventfd": lambda a: ("eventfd2", (a[0], 0)),
    "signalfd": lambda a: ("signalfd4", (a[0], a[1], a[2], 0)),
    "epoll_wait": lambda a: ("epoll_pwait", (a[0], a[1], a[2], a[3], None, None)),
    "getpgrp": lambda a: ("getpgid", (0,)),
    "getrlimit": lambda a: ("prlimit64", (0, a[0], None, a[1])),
    "setrlimit": lambda a: ("prlimit64", (0, a[0], a[1], None)),
}


def canonical_name(name: str) -> str:
    """The name a call of ``name`` goes by once normalized (:func:`normalize`),
    where the rewrite does not depend on its arguments: ``epoll_wait`` is
    ``epoll_pwait``, ``getpgrp`` is ``getpgid``. Where it does (the stat and
    open families) the name stays. For lists of calls by name, such as the
    ones the in-process library wraps, held against recorded calls, which
    are normalized."""
    rewrite = _REWRITES.get(name)
    if rewrite is None:
        return name
    try:
        return str(rewrite((None,) * len(spec(name).args))[0])
    except TypeError:  # the rewrite reads an argument
        return name


def normalize(name: str, args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """One spelling for requests that several calls can make.

    ``args`` are canonical argument values of canonical call ``name``. The
    stat family becomes ``fstatat`` (``statx`` only when it asks for no more
    than stat(2) returns); an open without ``O_CREAT``/``O_TMPFILE`` has mode 0
    (the kernel does not read it); calls aarch64 lacks become their ``*at``/``*2``
    forms; ``getrlimit``/``setrlimit`` become ``prlimit64`` of pid 0. The
    output buffers keep their position, so a mode still knows which memory
    the kernel wrote, but converting it (``statx`` bytes to ``stat`` bytes,
    ``rlimit`` to ``rlimit64``) is the replicator's job: see
    :mod:`dmvx.structs`.
    """
    rewrite = _REWRITES.get(name)
    if rewrite is None:
        return name, args
    return rewrite(args) or (name, args)
