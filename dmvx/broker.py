"""The syscall broker: one :class:`Decision` per call.

Given the policy and the variant's descriptor table, :meth:`Broker.decide`
says how a call is handled. Every variant runs an equal broker over an equal
descriptor table, so equal calls get equal decisions -- and a call that one
variant routes differently from another is itself a divergence.

Decisions that do not depend on arguments are cached per call name: the
broker runs at every system call, in real mode at every ptrace stop and in
simulation a million times a second.
"""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Callable
from typing import Any

from dmvx.calls import Call
from dmvx.fdtable import F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, OPEN_CALLS, FdKind, FdTable
from dmvx.policy import (
    ALWAYS_REFUSED,
    EACCES,
    EPERM,
    FD_CALLS,
    INSPECTING,
    LEVELS,
    LOCAL,
    LOCAL_CALLS,
    O_ACCMODE,
    O_CREAT,
    O_TRUNC,
    PREDICTABLE,
    SENSITIVE,
    SENSITIVE_WHEN,
    SIGNALLING,
    Decision,
    Effect,
    Level,
    Policy,
    Reach,
    Route,
)

#: Sensitive calls that change the outside world (the filesystem): only the
#: leader runs them, once agreed. The others change the process itself and
#: run in every variant.
_SENSITIVE_LEADER = frozenset(
    {
        "chmod",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "chown",
        "fchown",
        "lchown",
        "fchownat",
        "unlink",
        "unlinkat",
        "rmdir",
        "rename",
        "renameat",
        "renameat2",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "truncate",
    }
)
#: Path-based calls that read a file or its metadata; with a local-file path
#: each variant answers from its own copy.
_PATH_READS = {
    "stat": 0,
    "lstat": 0,
    "access": 0,
    "readlink": 0,
    "statfs": 0,
    "fstatat": 1,
    "newfstatat": 1,
    "statx": 1,
    "faccessat": 1,
    "faccessat2": 1,
    "readlinkat": 1,
    "getxattr": 0,
    "lgetxattr": 0,
}
_AT_EMPTY_PATH_CALLS = frozenset({"fstatat", "newfstatat", "statx"})
#: Calls that only read a descriptor's metadata.
_METADATA = frozenset({"fstat", "fstatfs"}) | _AT_EMPTY_PATH_CALLS
_OPEN_PATH = {"open": 0, "creat": 0, "openat": 1, "openat2": 1}
_OPEN_FLAGS = {"open": 1, "openat": 2}
_SOCKET_WRITES = frozenset(
    {"write", "pwrite64", "writev", "pwritev", "pwritev2", "fsync", "fdatasync", "ftruncate", "fallocate"}
)
_FD_EACH_ALWAYS = frozenset({"close", "dup", "dup2", "dup3"})
_ARG_DEPENDENT = (
    FD_CALLS
    | OPEN_CALLS
    | frozenset(_PATH_READS)
    | frozenset(SENSITIVE_WHEN)
    | {"fcntl", "sendfile", "getrandom", "clock_gettime", "sched_yield"}
)
#: Clocks that measure intervals, not the date: monotonic, boot time, CPU
#: time. In a process with threads their reads are not compared (LOCAL): a
#: thread that waits for a lock with a timeout (Python's GIL does, every 5 ms
#: of contention) reads one once per wait, as many times as the threads'
#: interleaving makes it wait -- a number no two variants share. A mode may
#: still give followers the leader's readings (real mode does:
#: realmode.tracer.clocks). The date (CLOCK_REALTIME, 0 and 5) stays the
#: leader's, sequenced.
THREAD_LOCAL_CLOCKS = frozenset({1, 2, 3, 4, 6, 7})
#: Calls that name a path: argument index of the path, and of the
#: directory descriptor a relative path starts from (None: the cwd).
_PATHS: dict[str, tuple[int, int | None]] = {
    "open": (0, None),
    "creat": (0, None),
    "openat": (1, 0),
    "openat2": (1, 0),
    "stat": (0, None),
    "lstat": (0, None),
    "access": (0, None),
    "readlink": (0, None),
    "statfs": (0, None),
    "getxattr": (0, None),
    "lgetxattr": (0, None),
    "chdir": (0, None),
    "execve": (0, None),
    "fstatat": (1, 0),
    "newfstatat": (1, 0),
    "statx": (1, 0),
    "faccessat": (1, 0),
    "faccessat2": (1, 0),
    "readlinkat": (1, 0),
    "execveat": (1, 0),
}
#: Calls that only look at a path: they may see that ``/proc/<pid>`` exists.
_PATH_LOOKS = frozenset(_PATH_READS) - {"readlink", "readlinkat", "getxattr", "lgetxattr"}
F_SETOWN, F_SETOWN_EX = 8, 15
PTRACE_TRACEME = 0
#: Everything whose decision depends on which processes it reaches.
_REACHING = frozenset(SIGNALLING) | frozenset(INSPECTING) | frozenset(ALWAYS_REFUSED) | frozenset(_PATHS) | {"fcntl"}
_REACH_ORDER = {Reach.TREE: 0, Reach.OUTSIDE: 1, Reach.RUN: 2}
_IN_STEP = Decision(Route.LOCKSTEP, Effect.EACH, True)
_ONCE = Decision(Route.LOCKSTEP, Effect.LEADER, True)
_REFUSED = {code: Decision(Route.LOCKSTEP, Effect.LEADER, True, code) for code in (EPERM, EACCES)}


def everything_in_tree(pid: int) -> Reach:
    """The reach of a pid where no mode says otherwise (simulation, replay):
    every process is one of the variant's own."""
    return Reach.TREE


def proc_pids(path: str) -> tuple[int, ...] | None:
    """The pids an absolute ``/proc`` path names (``/proc/<pid>/...``, also
    further down, as in ``/proc/self/root/proc/<pid>``), after ``..`` is
    folded; None for a path outside ``/proc``."""
    if not path.startswith("/proc"):
        return None
    parts = posixpath.normpath(path).split("/")[1:]
    if not parts or parts[0] != "proc":
        return None
    return tuple(int(after) for here, after in itertools.pairwise(parts) if here == "proc" and after.isdigit())


GRND_NONBLOCK = 0x1
#: The most bytes a *word draw* asks for (see :func:`is_word_draw`).
WORD_DRAW_BYTES = 8


def is_word_draw(call: Call) -> bool:
    """Whether ``call`` is ``getrandom`` of one word without blocking: what
    glibc draws for itself -- malloc's tcache key at start-up, and a second
    draw of a temporary name's letters when the first, from the clock and a
    stack address, fell in the biased range (:mod:`dmvx.tempnames`). Such a
    draw runs locally in each variant: a per-variant secret is diversity, not
    divergence, and the second draw is made by whichever variants' stack
    addresses happened to need it, so replicating it would misalign the
    sequences. (An ABI-diverse pair asks for words of two sizes: the length
    then reads as unknown.) A program that seeds its own generator from one
    such word should say ``overrides: {getrandom: replicate}`` (a real run:
    ``dmvx run --route getrandom=replicate``)."""
    args = call.args
    if len(args) != 3 or args[2] != GRND_NONBLOCK:
        return False
    count = args[1]
    return count is None or (isinstance(count, int) and 0 <= count <= WORD_DRAW_BYTES)


class Broker:
    """Routes calls for one policy. Cheap to create; one per monitor."""

    __slots__ = ("policy", "reach", "by_name", "_fd_cache", "_fd_names", "_sequenced_clock")

    def __init__(self, policy: Policy, reach: Callable[[int], Reach] | None = None) -> None:
        self.policy = policy
        #: Where a (canonical) pid lands: the mode's answer (see :class:`Reach`).
        self.reach = reach or everything_in_tree
        #: Decisions that depend on the call's name alone, as :meth:`decide`
        #: made them: a monitor looks here first (a dict lookup where a method
        #: call costs twice as much) and asks :meth:`decide` on a miss.
        self.by_name: dict[str, Decision] = {}
        # Descriptor calls whose decision depends only on the kind of their
        # first argument's descriptor: cached per (name, kind).
        self._fd_cache: dict[tuple[str, FdKind | None], Decision] = {}
        self._fd_names = (FD_CALLS - {"fcntl"}) - set(policy.overrides)
        #: The decision for a clock read that is sequenced (not in
        #: :meth:`by_name`: a thread's interval clocks are decided by argument).
        self._sequenced_clock: Decision | None = None

    def decide(self, call: Call, fds: FdTable) -> Decision:
        name = call.name
        cached = self.by_name.get(name)
        if cached is not None:
            return cached
        if name in self._fd_names:
            args = call.args
            key = (name, fds.kind(args[0]) if args else None)
            decision = self._fd_cache.get(key)
            if decision is None:
                decision = self._fd_cache[key] = self._decide_by_args(call, fds)
            return decision
        reaching = name in _REACHING
        if reaching:
            # Before any override: no policy makes a call reach what it may not.
            decision = self._reach(call, fds)
            if decision is not None:
                return decision
        override = self.policy.overrides.get(name)
        if override is not None:
            decision = self._override(name, override)
        elif name in _ARG_DEPENDENT:
            return self._decide_by_args(call, fds)
        else:
            decision = self._decide_by_name(name)
        if not reaching:
            self.by_name[name] = decision
        return decision

    # -- calls that reach other processes ----------------------------------------

    def _reach(self, call: Call, fds: FdTable) -> Decision | None:
        """The decision for a call that names another process, when its
        target decides it; None when the ordinary routing applies."""
        name, args = call.name, call.args
        if name in ALWAYS_REFUSED:
            return _REFUSED[EPERM]
        indexes = SIGNALLING.get(name)
        if indexes is not None:
            where = self._where(args, indexes)
            if where is Reach.RUN:
                return _REFUSED[EPERM]
            if where is Reach.OUTSIDE:
                return _ONCE  # the world outside sees it once: the leader's
            return _IN_STEP if name in SENSITIVE else None
        indexes = INSPECTING.get(name)
        if indexes is not None:
            if name == "ptrace" and args and args[0] == PTRACE_TRACEME:
                return _IN_STEP
            return _IN_STEP if self._where(args, indexes) is Reach.TREE else _REFUSED[EPERM]
        if name == "fcntl":
            command = _arg(args, 1)
            if command == F_SETOWN:
                # Signals (SIGIO, SIGURG) go to this owner when I/O comes.
                return None if self._where(args, (2,)) is Reach.TREE else _REFUSED[EPERM]
            return _REFUSED[EPERM] if command == F_SETOWN_EX else None
        path_at, dir_at = _PATHS[name]
        path = _arg(args, path_at)
        if not isinstance(path, str):
            return None
        if not path.startswith("/"):
            base = fds.path(_arg(args, dir_at)) if dir_at is not None else None
            if base is None:
                return None
            path = f"{base}/{path}"
        if "proc" not in path:
            return None
        pids = proc_pids(path)
        if not pids or all(self._target(pid) is Reach.TREE for pid in pids):
            return None
        if name in _PATH_LOOKS and len(pids) == 1 and posixpath.normpath(path).count("/") == 2:
            return None  # only whether /proc/<pid> is there: what ps and pidfile checks ask
        return _REFUSED[EACCES]

    def _where(self, args: tuple[Any, ...], indexes: tuple[int, ...]) -> Reach:
        """The farthest any of ``args[indexes]`` reaches."""
        worst = Reach.TREE
        for index in indexes:
            where = self._target(_arg(args, index))
            if _REACH_ORDER[where] > _REACH_ORDER[worst]:
                worst = where
        return worst

    def _target(self, pid: object) -> Reach:
        """Where a pid argument lands: 0 is the caller's own process group
        (the mode keeps each variant in a session of its own), -1 every
        process, -N the group N, which must be one of the tree's."""
        if not isinstance(pid, int) or pid == -1:
            return Reach.RUN
        if pid == 0:
            return Reach.TREE
        if pid < 0:
            return Reach.TREE if self.reach(-pid) is Reach.TREE else Reach.RUN
        return self.reach(pid)

    # -- by name -----------------------------------------------------------

    def _decide_by_name(self, name: str) -> Decision:
        if name in SENSITIVE:
            effect = Effect.LEADER if name in _SENSITIVE_LEADER else Effect.EACH
            return Decision(Route.LOCKSTEP, effect, True)
        if name in LOCAL_CALLS:
            return LOCAL
        level, effect = LEVELS.get(name, (None, Effect.LEADER))
        if level is None:
            # Unknown to the policy: check it in lockstep, and let only the
            # leader touch the outside world with it.
            return Decision(Route.LOCKSTEP, Effect.LEADER, True)
        return self._relaxed(name, level, effect)

    def _relaxed(self, name: str, level: Level, effect: Effect, route: Route = Route.REPLICATE) -> Decision:
        policy = self.policy
        if level > policy.relaxation:
            return Decision(Route.LOCKSTEP, effect, True)
        if route is Route.REPLICATE and policy.predict and name in PREDICTABLE:
            route = Route.PREDICT
        return Decision(route, effect, not policy.async_replication)

    def _override(self, name: str, route: Route) -> Decision:
        _, effect = LEVELS.get(name, (Level.BASE, Effect.LEADER))  # an override is not relaxed
        if name in SENSITIVE:
            effect = Effect.LEADER if name in _SENSITIVE_LEADER else Effect.EACH
        if route is Route.LOCAL:
            return LOCAL
        if route is Route.LOCKSTEP:
            return Decision(Route.LOCKSTEP, effect, True)
        if route is Route.LOCAL_FILE:
            return Decision(Route.LOCAL_FILE, Effect.EACH, not self.policy.async_replication)
        return Decision(route, effect, not self.policy.async_replication)

    # -- by arguments ----------------------------------------------------------

    def _decide_by_args(self, call: Call, fds: FdTable) -> Decision:
        name, args = call.name, call.args
        if name == "getrandom":
            return LOCAL if is_word_draw(call) else self._decide_by_name(name)
        if name == "sched_yield" and fds.shared:
            # A thread that waits for another spinning on sched_yield (a
            # spin lock's back-off: memcslap's client threads, many thread
            # pools) yields as many times as the interleaving takes. It
            # changes nothing outside the variant and always returns 0.
            return LOCAL
        if name == "clock_gettime":
            if fds.shared and _arg(args, 0) in THREAD_LOCAL_CLOCKS:
                return LOCAL
            decision = self._sequenced_clock
            if decision is None:
                decision = self._sequenced_clock = self._decide_by_name(name)
            return decision
        when = SENSITIVE_WHEN.get(name)
        if when is not None:
            index, bit, _reason = when
            prot = args[index] if len(args) > index and isinstance(args[index], int) else 0
            return Decision(Route.LOCKSTEP, Effect.EACH, True) if prot & bit else LOCAL
        if name in OPEN_CALLS:
            return self._open(name, args)
        if name in _PATH_READS:
            path = _arg(args, _PATH_READS[name])
            if path == "" and name in _AT_EMPTY_PATH_CALLS:
                # fstatat(fd, "", AT_EMPTY_PATH) is fstat(fd): glibc's fstat
                # on x86-64. Route it by the descriptor, as fstat is.
                return self._fd_call(name, args, fds)
            if isinstance(path, str) and self.policy.is_local_file(path):
                return Decision(Route.LOCAL_FILE, Effect.EACH, not self.policy.async_replication)
            level, effect = LEVELS.get(name, (Level.NONSOCKET_RO, Effect.LEADER))
            return self._relaxed(name, level, effect)
        return self._fd_call(name, args, fds)

    def _open(self, name: str, args: tuple[Any, ...]) -> Decision:
        path = _arg(args, _OPEN_PATH[name])
        flags = _arg(args, _OPEN_FLAGS.get(name, -1))
        flags = flags if isinstance(flags, int) else 0
        writes = name == "creat" or bool(flags & O_ACCMODE) or bool(flags & (O_CREAT | O_TRUNC))
        if not writes and isinstance(path, str) and self.policy.is_local_file(path):
            return Decision(Route.LOCAL_FILE, Effect.EACH, not self.policy.async_replication)
        level = Level.NONSOCKET_RW if writes else Level.NONSOCKET_RO
        return self._relaxed(name, level, Effect.LEADER)

    def _fd_call(self, name: str, args: tuple[Any, ...], fds: FdTable) -> Decision:
        fd = _arg(args, 1 if name == "sendfile" else 0)
        kind = fds.kind(fd)
        level, effect = LEVELS.get(name, (Level.NONSOCKET_RO, Effect.LEADER))
        if name == "sendfile":
            out_kind = fds.kind(_arg(args, 0))
            level = Level.SOCKET_RW if out_kind is FdKind.SOCKET else Level.NONSOCKET_RW
            if kind is FdKind.LOCAL_FILE and out_kind is not None and not out_kind.own:
                # Reads a local file, writes a leader-owned descriptor: the
                # leader runs it; followers need only its result.
                return self._relaxed(name, level, Effect.LEADER)
            return self._relaxed(name, level, Effect.LEADER)
        if kind is FdKind.SOCKET:
            level = Level.SOCKET_RW if name in _SOCKET_WRITES else max(level, Level.SOCKET_RO)
        if name == "fcntl":
            command = _arg(args, 1)
            if command in (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD):
                effect = Effect.EACH
            else:
                effect = Effect.EACH if kind is not None and kind.own else Effect.LEADER
            return self._relaxed(name, level, effect)
        if name in _FD_EACH_ALWAYS:
            return self._relaxed(name, level, Effect.EACH)
        if name in _METADATA and kind is FdKind.PIPE:
            # Each variant's own pipe has its own inode and times: the
            # leader's answer is the canonical one. (A local file's metadata
            # is part of what its digest compares.)
            return self._relaxed(name, level, Effect.LEADER)
        if kind is not None and kind.own:
            route = Route.LOCAL_FILE if kind is FdKind.LOCAL_FILE else Route.REPLICATE
            if route is Route.LOCAL_FILE:
                return Decision(Route.LOCAL_FILE, Effect.EACH, not self.policy.async_replication)
            return self._relaxed(name, level, Effect.EACH)
        return self._relaxed(name, level, effect)


def _arg(args: tuple[Any, ...], index: int) -> object:
    return args[index] if 0 <= index < len(args) else None
