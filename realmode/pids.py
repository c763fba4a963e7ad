"""Process ids across variants: the canonical value of a pid is the leader's.

Every variant forks its own processes, so the kernel gives them different
pids. A follower's program must still see the leader's numbers -- it may print
them, compare them, send them over a pipe -- and its calls must compare equal
to the leader's. So each follower's monitor keeps a :class:`PidMap` from the
real pids of its processes to the leader's pids of the same processes (the
leader announces each one when it forks, see :mod:`realmode.tracer`):

* results that carry a pid (``fork``/``vfork``/``clone``, ``wait4``,
  ``waitid``'s siginfo, ``setsid``) are turned into the leader's value before
  the program sees them; ``getpid`` and friends need nothing, since only the
  leader runs them and followers take its result;
* pid arguments are canonical as the leader's value (a value that is a real
  pid of this variant is mapped, one that is already the leader's stays), and
  when the follower runs the call itself, the register gets the real pid back.

The leader's map is empty: its real pids are the canonical ones. Pids are
unique on a host, so a number is never both a leader pid and a follower pid
of two live processes; on several hosts each monitor only maps its own.
"""

from __future__ import annotations

from typing import Any

from dmvx.syscalls import Arch

#: Canonical call -> argument indexes that hold a pid (negative: a process group).
PID_ARGS: dict[str, tuple[int, ...]] = {
    "wait4": (0,),
    "kill": (0,),
    "tkill": (0,),
    "tgkill": (0, 1),
    "setpgid": (0, 1),
    "getpgid": (0,),
    "getsid": (0,),
    "prlimit64": (0,),
    "pidfd_open": (0,),
    "rt_sigqueueinfo": (0,),
    "rt_tgsigqueueinfo": (0, 1),
    "sched_getscheduler": (0,),
    "sched_setscheduler": (0,),
    "sched_getparam": (0,),
    "sched_setparam": (0,),
    "sched_rr_get_interval": (0,),
    "get_robust_list": (0,),
    "process_vm_readv": (0,),
    "process_vm_writev": (0,),
    "ptrace": (1,),
    "waitid": (1,),
    "getpriority": (1,),
    "setpriority": (1,),
}
#: Calls whose positive result is a pid of this variant when the variant runs them itself.
PID_RESULTS = frozenset({"fork", "vfork", "clone", "clone3", "wait4", "setsid"})

_P_PID, _P_PGID = 1, 2
_PRIO_PROCESS, _PRIO_PGRP = 0, 1
_SIGCHLD = 17
#: siginfo offsets of si_pid and the SIGCHLD CPU times, per ABI.
_SIGINFO = {Arch.X86_64: (16, 32, 40, 8), Arch.I386: (12, 24, 28, 4)}


class PidMap:
    """Real pids of one variant's processes <-> the leader's pids for them."""

    __slots__ = ("_virtual", "_real")

    def __init__(self) -> None:
        self._virtual: dict[int, int] = {}
        self._real: dict[int, int] = {}

    @property
    def active(self) -> bool:
        """Whether any pid needs translating (never for the leader)."""
        return bool(self._virtual)

    def add(self, real: int, virtual: int) -> None:
        if real != virtual:
            self._virtual[real] = virtual
            self._real[virtual] = real

    def virtual(self, pid: int) -> int:
        """The leader's value for ``pid`` (a process group when negative)."""
        if pid < -1:
            return -self._virtual.get(-pid, -pid)
        return self._virtual.get(pid, pid)

    def real(self, pid: int) -> int:
        """This variant's value for the leader's ``pid``."""
        if pid < -1:
            return -self._real.get(-pid, -pid)
        return self._real.get(pid, pid)

    def self_pids(self, pid: int) -> tuple[int, int]:
        """The numbers that mean the process ``pid`` itself (``/proc/<n>``)."""
        return (pid, self._virtual.get(pid, pid))

    def indexes(self, name: str, args: tuple[Any, ...]) -> tuple[int, ...]:
        """Which of ``args`` hold pids (some only for certain selectors)."""
        indexes = PID_ARGS.get(name, ())
        if name == "waitid" and (not args or args[0] not in (_P_PID, _P_PGID)):
            return ()
        if name in ("getpriority", "setpriority") and (not args or args[0] not in (_PRIO_PROCESS, _PRIO_PGRP)):
            return ()
        return indexes

    def canonical_args(self, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        indexes = self.indexes(name, args)
        if not indexes:
            return args
        out = list(args)
        for index in indexes:
            if index < len(out) and isinstance(out[index], int) and out[index] not in (0, -1):
                out[index] = self.virtual(out[index])
        return tuple(out)

    def canonical_siginfo(self, data: bytes, arch: Arch) -> bytes:
        """waitid's siginfo as compared: the leader's pid, no CPU times."""
        pid_at, utime_at, stime_at, word = _SIGINFO[arch]
        if len(data) < stime_at + word or int.from_bytes(data[0:4], "little") != _SIGCHLD:
            return data
        out = bytearray(data)
        pid = int.from_bytes(out[pid_at : pid_at + 4], "little", signed=True)
        out[pid_at : pid_at + 4] = self.virtual(pid).to_bytes(4, "little", signed=True)
        out[utime_at : utime_at + word] = bytes(word)
        out[stime_at : stime_at + word] = bytes(word)
        return bytes(out)

    def siginfo_pid(self, data: bytes, arch: Arch) -> int:
        pid_at = _SIGINFO[arch][0]
        return int.from_bytes(data[pid_at : pid_at + 4], "little", signed=True) if len(data) >= pid_at + 4 else 0
