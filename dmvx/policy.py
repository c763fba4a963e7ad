"""The syscall broker: which monitor handles a call, and how.

dMVX's broker splits calls in two. *Security-sensitive* calls go to DCP-MON
and run in **lockstep**: every variant must reach the call with equivalent
arguments before any of them runs it. Everything else goes to DIP-MON and is
**replicated**, asynchronously when that optimisation is on. Two selective
replication routes avoid the network where results are knowable anyway, and
memory management stays **local**.

A :class:`Decision` has three independent parts:

``route``
    the name reports use (lockstep, replicate, local, local-file, predict);
``effect``
    who runs the call: only the leader (followers get its outcome) or each
    variant on its own resources (outcomes compared by digest);
``sync``
    whether the leader must wait for every follower to reach the call
    before running it (lockstep calls always; every call under ``dmon``).

The relaxation levels are those of ReMon's IP-MON, which dMVX inherits: each
level lets DIP-MON take one more family of calls away from DCP-MON.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from dmvx.calls import Call


class Route(str, Enum):
    """Where a call is handled (the issue's five routes)."""

    LOCKSTEP = "lockstep"
    REPLICATE = "replicate"
    LOCAL = "local"
    LOCAL_FILE = "local-file"
    PREDICT = "predict"


class Effect(str, Enum):
    """Who runs a call that is not local."""

    LEADER = "leader"  # the leader runs it; followers skip and take its outcome
    EACH = "each"  # every variant runs it on its own resources


class Level(int, Enum):
    """Relaxation levels, from strictest to most relaxed.

    A call whose family is at or below the configured level is handled by
    DIP-MON (replicated); above it, by DCP-MON (lockstep).
    """

    BASE = 0
    NONSOCKET_RO = 1
    NONSOCKET_RW = 2
    SOCKET_RO = 3
    SOCKET_RW = 4

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.upper().replace("-", "_")]
        except KeyError:
            names = ", ".join(level.label for level in cls)
            raise ValueError(f"unknown relaxation level {text!r}; expected one of {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


# --------------------------------------------------------------------------
# The sensitive set. Every entry says why the call must run in lockstep.
# --------------------------------------------------------------------------

#: Calls that run in lockstep under every preset and level, with the reason.
SENSITIVE: Mapping[str, str] = {
    "execve": "replaces the program image: the classic payload of a code-reuse exploit",
    "execveat": "replaces the program image, like execve",
    "fork": "creates a process: all variants must fork together to stay paired",
    "vfork": "creates a process: all variants must fork together to stay paired",
    "clone": "creates a process or thread: all variants must clone together",
    "clone3": "creates a process or thread: all variants must clone together",
    "ptrace": "controls another process, including rewriting its memory",
    "process_vm_writev": "writes another process's memory",
    "process_vm_readv": "reads another process's memory (an information leak channel)",
    "kill": "signals another process",
    "tkill": "signals another thread",
    "tgkill": "signals another thread",
    "rt_sigqueueinfo": "signals another process with data",
    "rt_tgsigqueueinfo": "signals another thread with data",
    "pidfd_send_signal": "signals another process",
    "setuid": "changes privileges",
    "setgid": "changes privileges",
    "setreuid": "changes privileges",
    "setregid": "changes privileges",
    "setresuid": "changes privileges",
    "setresgid": "changes privileges",
    "setfsuid": "changes privileges",
    "setfsgid": "changes privileges",
    "setgroups": "changes privileges",
    "capset": "changes capabilities",
    "chmod": "changes file permissions",
    "fchmod": "changes file permissions",
    "fchmodat": "changes file permissions",
    "fchmodat2": "changes file permissions",
    "chown": "changes file ownership",
    "fchown": "changes file ownership",
    "lchown": "changes file ownership",
    "fchownat": "changes file ownership",
    "unlink": "removes a file",
    "unlinkat": "removes a file",
    "rmdir": "removes a directory",
    "rename": "replaces a file",
    "renameat": "replaces a file",
    "renameat2": "replaces a file",
    "link": "creates a hard link to a file",
    "linkat": "creates a hard link to a file",
    "symlink": "creates a symbolic link",
    "symlinkat": "creates a symbolic link",
    "mkdir": "creates a directory",
    "mkdirat": "creates a directory",
    "mknod": "creates a device or special file",
    "mknodat": "creates a device or special file",
    "truncate": "destroys file content by path",
    "mount": "changes the filesystem view",
    "umount2": "changes the filesystem view",
    "pivot_root": "changes the filesystem view",
    "chroot": "changes the filesystem view",
    "unshare": "changes namespaces",
    "setns": "changes namespaces",
    "init_module": "loads kernel code",
    "finit_module": "loads kernel code",
    "delete_module": "unloads kernel code",
    "kexec_load": "replaces the kernel",
    "kexec_file_load": "replaces the kernel",
    "reboot": "reboots the machine",
    "bpf": "loads kernel programs",
    "seccomp": "changes the syscall filter",
    "prctl": "changes process attributes (no-new-privs, dumpable, seccomp)",
    "personality": "changes the execution domain (can disable ASLR for children)",
    "perf_event_open": "kernel performance interface, a known attack surface",
    "iopl": "raises I/O privilege",
    "ioperm": "raises I/O privilege",
    "modify_ldt": "changes segment descriptors",
    "userfaultfd": "a known exploitation aid",
    "memfd_create": "anonymous executable memory via a file (fileless payloads)",
    "io_uring_setup": "a second syscall interface that bypasses the monitor",
    "io_uring_enter": "a second syscall interface that bypasses the monitor",
    "io_uring_register": "a second syscall interface that bypasses the monitor",
    "pidfd_open": "a handle on another process (to signal it, or take its descriptors)",
    "pidfd_getfd": "takes a descriptor out of another process",
    "kcmp": "compares another process's kernel objects (an information leak channel)",
    "process_madvise": "changes another process's memory",
    "process_mrelease": "releases another process's memory",
}

# --------------------------------------------------------------------------
# Calls that reach other processes. Where they land decides who runs them.
# --------------------------------------------------------------------------


class Reach(str, Enum):
    """Where a call that names a process lands, as the mode sees it.

    The core cannot see processes; the mode answers for each pid a call
    names (the canonical pid: the leader's), and the broker decides from
    the answer. The variants' own trees are theirs to signal, trace and
    inspect in step; dmvx's processes (monitors, CONNECTORs, orchestrator,
    agents) and the other variants' processes are nobody's; anything else is
    the world outside, which sees a call at most once.
    """

    TREE = "tree"  # a process of the variant's own tree
    OUTSIDE = "outside"  # a process that is no part of the run
    RUN = "run"  # a process of the run itself (dmvx, another variant), or every process


#: Calls that signal or act on another process: name -> the arguments that
#: name it. Into the variant's own tree every variant runs them (on its own
#: process, through its pid map); outside the run only the leader runs them,
#: once, and every variant gets its result; at the run itself nobody does.
SIGNALLING: Mapping[str, tuple[int, ...]] = {
    "kill": (0,),
    "tkill": (0,),
    "tgkill": (0, 1),
    "rt_sigqueueinfo": (0,),
    "rt_tgsigqueueinfo": (0, 1),
    "pidfd_open": (0,),
    "prlimit64": (0,),
}
#: Calls that read, write or trace another process (or take its
#: descriptors): name -> the arguments that name it. Only the variant's own
#: tree: outside it nobody runs them.
INSPECTING: Mapping[str, tuple[int, ...]] = {
    "ptrace": (1,),
    "process_vm_readv": (0,),
    "process_vm_writev": (0,),
    "kcmp": (0, 1),
}
#: Calls refused whatever their arguments: the process they reach is given
#: by a pidfd, which the core cannot place.
ALWAYS_REFUSED: Mapping[str, str] = {
    "pidfd_getfd": "takes a descriptor out of another process",
    "process_madvise": "changes another process's memory",
    "process_mrelease": "releases another process's memory",
}
EPERM, EACCES = 1, 13

#: Calls that are sensitive only with certain arguments: name -> (argument
#: index of a protection word, bit that makes it sensitive, reason).
PROT_EXEC = 0x4
SENSITIVE_WHEN: Mapping[str, tuple[int, int, str]] = {
    "mprotect": (2, PROT_EXEC, "makes memory executable (code injection)"),
    "pkey_mprotect": (2, PROT_EXEC, "makes memory executable (code injection)"),
    "mmap": (2, PROT_EXEC, "maps executable memory (code injection, library loading)"),
}

#: Calls that never leave the variant: memory management, signal masks,
#: thread bookkeeping. Allocators legitimately make different numbers of them
#: in different variants (and very different ones across ABIs), so they have
#: no place in the compared sequence.
LOCAL_CALLS: frozenset[str] = frozenset(
    {
        "brk",
        "mmap",
        "munmap",
        "mremap",
        "madvise",
        "mprotect",
        "pkey_mprotect",
        "mlock",
        "mlock2",
        "munlock",
        "mlockall",
        "munlockall",
        "msync",
        "mincore",
        "pkey_alloc",
        "pkey_free",
        "membarrier",
        "rt_sigprocmask",
        "rt_sigaction",
        "rt_sigreturn",
        "sigreturn",
        "sigaltstack",
        "rt_sigpending",
        "rt_sigtimedwait",
        "arch_prctl",
        "set_thread_area",
        "get_thread_area",
        "set_tid_address",
        "set_robust_list",
        "get_robust_list",
        "rseq",
        "futex",
        "futex_waitv",
        "restart_syscall",
        "exit",
        "exit_group",
        "sched_getaffinity",
        "sched_setaffinity",
        "getrlimit",
        "setrlimit",
        "ugetrlimit",
    }
)

# Families of non-sensitive calls, each with the least relaxation level at
# which DIP-MON may take it, and who runs it.

_BASE_LEADER = {  # identity, time and randomness: the leader's value wins
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "getpgrp",
    "getpgid",
    "getsid",
    "getcwd",
    "uname",
    "sysinfo",
    "getrandom",
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "time",
    "times",
    "getrusage",
    "getcpu",
    "capget",
    "sched_yield",
    "nanosleep",
    "clock_nanosleep",
    "getpriority",
    "prlimit64",
    "sched_getscheduler",
    "sched_getparam",
    "getitimer",
    "alarm",
    "setitimer",
}
_BASE_EACH = {  # process state that every variant must change in step
    # rt_sigsuspend waits for a signal, and signals come where the leader
    # takes them (dmvx.signals): a compared call, so they have a place.
    "rt_sigsuspend",
    "umask",
    "setpgid",
    "setsid",
    "chdir",
    "fchdir",
    "wait4",
    "waitid",
    "set_mempolicy",
    "sched_setscheduler",
    "sched_setparam",
    "setpriority",
}
_NONSOCKET_RO = {  # reading files and metadata
    "read",
    "pread64",
    "readv",
    "preadv",
    "preadv2",
    "lseek",
    "fstat",
    "stat",
    "lstat",
    "fstatat",
    "statx",
    "newfstatat",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getdents",
    "getdents64",
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "ioctl",
    "statfs",
    "fstatfs",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "pipe",
    "pipe2",
    "fadvise64",
    "readahead",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "eventfd",
    "eventfd2",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "signalfd",
    "signalfd4",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
}
_NONSOCKET_RW = {  # writing files
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "fsync",
    "fdatasync",
    "ftruncate",
    "fallocate",
    "sync",
    "syncfs",
    "sync_file_range",
    "flock",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "copy_file_range",
    "splice",
    "tee",
    "vmsplice",
}
_SOCKET_RO = {  # receiving, waiting, inspecting sockets
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "getsockname",
    "getpeername",
    "getsockopt",
    "accept",
    "accept4",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
}
_SOCKET_RW = {  # creating sockets and sending
    "socket",
    "socketpair",
    "bind",
    "listen",
    "connect",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "setsockopt",
    "shutdown",
    "sendfile",
}

#: Calls whose file descriptor in argument 0 decides their level and effect:
#: on a socket they belong to the socket families.
FD_CALLS: frozenset[str] = frozenset(
    {
        "read",
        "pread64",
        "readv",
        "preadv",
        "preadv2",
        "write",
        "pwrite64",
        "writev",
        "pwritev",
        "pwritev2",
        "lseek",
        "fstat",
        "getdents",
        "getdents64",
        "fcntl",
        "ioctl",
        "fstatfs",
        "fsync",
        "fdatasync",
        "ftruncate",
        "fallocate",
        "fgetxattr",
        "flistxattr",
        "fadvise64",
        "readahead",
        "close",
    }
)
_READS = frozenset({"read", "pread64", "readv", "preadv", "preadv2"})

#: Calls that create descriptors every variant owns for real (not placeholders).
_OWN_FD_CREATORS = frozenset({"pipe", "pipe2"})
#: Calls that operate on descriptors and must run in each variant.
_FD_EACH = frozenset({"close", "close_range", "dup", "dup2", "dup3", "fcntl"})

#: Results a follower can derive without being told: name -> predicted result.
#: ``None`` means "the requested count" (argument 2), as for write.
PREDICTABLE: Mapping[str, int | None] = {
    "sched_yield": 0,
    "nanosleep": 0,
    "clock_nanosleep": 0,
    "close": 0,
    "write": None,
    "pwrite64": None,
    "fsync": 0,
    "fdatasync": 0,
    "setsockopt": 0,
    "shutdown": 0,
    "listen": 0,
    "bind": 0,
    "epoll_ctl": 0,
    "fadvise64": 0,
    "umask": None,
    "chdir": 0,
    "fchdir": 0,
}


def _levels() -> dict[str, tuple[Level, Effect]]:
    table: dict[str, tuple[Level, Effect]] = {}
    for names, level, effect in (
        (_BASE_LEADER, Level.BASE, Effect.LEADER),
        (_BASE_EACH, Level.BASE, Effect.EACH),
        (_NONSOCKET_RO, Level.NONSOCKET_RO, Effect.LEADER),
        (_NONSOCKET_RW, Level.NONSOCKET_RW, Effect.LEADER),
        (_SOCKET_RO, Level.SOCKET_RO, Effect.LEADER),
        (_SOCKET_RW, Level.SOCKET_RW, Effect.LEADER),
    ):
        for name in names:
            table[name] = (level, effect)
    for name in _FD_EACH | _OWN_FD_CREATORS:
        table[name] = (table[name][0], Effect.EACH)
    return table


#: name -> (least level at which DIP-MON takes it, who runs it).
LEVELS: Mapping[str, tuple[Level, Effect]] = _levels()

#: Calls that only read: at levels that replicate them, opening a file for
#: reading is one of these; opening for writing is a write.
OPEN_CALLS = frozenset({"open", "openat", "openat2", "creat"})
O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND = 0o3, 0o1, 0o2, 0o100, 0o200, 0o1000, 0o2000


@dataclass(frozen=True, slots=True)
class Decision:
    """How one call is handled. See the module docstring.

    ``refuse`` is an errno: nobody runs the call; once every variant has
    reached it (it is a lockstep call), each gets ``-refuse`` as its result.
    Only the leader's decision counts for it (the leader hands out the
    outcome), so a follower's different view of the run's processes cannot
    make a call run."""

    route: Route
    effect: Effect = Effect.LEADER
    sync: bool = False
    refuse: int = 0

    @property
    def checked(self) -> bool:
        """Whether the call takes a place in the compared sequence."""
        return self.route is not Route.LOCAL


LOCAL = Decision(Route.LOCAL, Effect.EACH, False)


@dataclass(frozen=True)
class Policy:
    """A complete broker configuration: a preset plus its knobs.

    Build one with :meth:`preset` and adjust with :func:`dataclasses.replace`
    or :meth:`with_overrides`. Policies are plain values: a monitor on every
    host gets an equal copy, so every host routes every call the same way.
    """

    name: str
    relaxation: Level = Level.SOCKET_RW
    async_replication: bool = True
    local_files: tuple[str, ...] = ()
    predict: bool = True
    cb_entries: int = 4096
    cb_bytes: int = 16 * 1024 * 1024
    ack_every: int = 64
    overrides: Mapping[str, Route] = field(default_factory=dict)

    @classmethod
    def preset(cls, name: str, **knobs: object) -> Policy:
        """``dmon``: everything checked and replicated synchronously.
        ``dmvx``: hybrid, asynchronous and selective."""
        if name == "dmon":
            base = cls(
                name="dmon",
                relaxation=Level.BASE,
                async_replication=False,
                local_files=(),
                predict=False,
                cb_entries=1,
                cb_bytes=1 << 30,
                ack_every=1,
            )
        elif name == "dmvx":
            base = cls(name="dmvx")
        else:
            raise ValueError(f"unknown policy preset {name!r}; expected dmon or dmvx")
        if "relaxation" in knobs and isinstance(knobs["relaxation"], str):
            knobs["relaxation"] = Level.parse(knobs["relaxation"])
        if "overrides" in knobs:
            knobs["overrides"] = {k: Route(v) for k, v in dict(knobs["overrides"]).items()}  # type: ignore[call-overload]
        if "local_files" in knobs:
            knobs["local_files"] = tuple(knobs["local_files"])  # type: ignore[arg-type]
        return replace(base, **knobs)  # type: ignore[arg-type]

    def with_overrides(self, overrides: Mapping[str, str | Route]) -> Policy:
        merged = dict(self.overrides)
        merged.update({k: Route(v) for k, v in overrides.items()})
        return replace(self, overrides=merged)

    def is_local_file(self, path: str) -> bool:
        """Whether ``path`` is declared unchanged by outside processes, so each
        variant may read its own copy (selective replication (a))."""
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.local_files)

    def to_dict(self) -> dict[str, object]:
        return {
            "preset": self.name,
            "relaxation": self.relaxation.label,
            "async_replication": self.async_replication,
            "local_files": list(self.local_files),
            "predict": self.predict,
            "cb_entries": self.cb_entries,
            "cb_bytes": self.cb_bytes,
            "overrides": {k: v.value for k, v in sorted(self.overrides.items())},
        }


#: Arguments that are facts of a variant's memory layout or clock, not of its
#: behaviour: lengths and addresses of executable mappings differ between
#: diversified builds (and between ABIs), wait timeouts between clocks; they
#: are left out of the comparison.
LAYOUT_ARGS: Mapping[str, frozenset[int]] = {
    "mmap": frozenset({0, 1, 3, 5}),
    "mprotect": frozenset({0, 1}),
    "pkey_mprotect": frozenset({0, 1, 3}),
    # How long to wait, in milliseconds: a program computes it from its
    # interval clock (the next timer's deadline), which in a process with
    # threads each variant reads for itself (dmvx.broker.THREAD_LOCAL_CLOCKS).
    # The events that come back are the leader's in every variant.
    "epoll_pwait": frozenset({3}),
    "poll": frozenset({2}),
    # How long to sleep, or until when: a thread that backs off computes it
    # from the work it found (memcached's LRU maintainer), which the
    # interleaving of threads decides, or from its own interval clock (an
    # absolute deadline). A follower's sleep is the leader's anyway.
    "nanosleep": frozenset({0}),
    "clock_nanosleep": frozenset({2}),
}

#: Arguments whose content leaves the process: a difference there is
#: reported as different output bytes.
OUTPUT_ARGS: Mapping[str, frozenset[int]] = {
    name: frozenset({1}) for name in ("write", "pwrite64", "writev", "pwritev", "pwritev2", "sendto", "sendmsg", "send")
}


def comparable(call: Call) -> Call:
    """The part of ``call`` that must be equal across variants."""
    skip = LAYOUT_ARGS.get(call.name)
    if skip is None:
        return call
    return Call(call.name, tuple(None if i in skip else a for i, a in enumerate(call.args)))
