"""Keeping the variants out of dmvx's reach, with what the kernel enforces.

A compromised variant runs as root (a real program under ``dmvx run`` or
``dmvx real`` is started as the user who started dmvx, root here). The core
already refuses every call that would reach outside the variant's own tree
(:class:`dmvx.policy.Reach`); this module is the second line, for whatever
the core might miss, measured on this machine (Linux 6.18, no Yama):

* **The variant in a session of its own** (:func:`confine_variant`, in the
  launch child before exec): ``kill(0, sig)`` then reaches only the
  variant's own process group, never dmvx's, and no variant process can
  join a group outside that session.
* **Without ``CAP_SYS_PTRACE``, ``CAP_KILL`` and ``CAP_SETUID``** (dropped
  from the bounding set before exec, so root's exec cannot give them back;
  the launch sets no-new-privs, so no set-uid file can either). Without
  ``CAP_SYS_PTRACE``, ``/proc/<pid>/mem``, ``ptrace(PTRACE_ATTACH)`` and
  ``process_vm_readv``/``writev`` of a process that is not dumpable, or
  whose real and saved uids are not the variant's, fail (EACCES / EPERM).
* **dmvx's processes not dumpable, with real and saved uid** :data:`RUN_UID`
  (:func:`shield`, in every monitor and CONNECTOR; effective uid 0 stays, so
  every privilege a monitor uses stays): a signal needs the sender's real or
  effective uid to match the target's real or saved uid, or ``CAP_KILL``;
  the variant (uid 0, no ``CAP_KILL``, no ``CAP_SETUID`` to become
  :data:`RUN_UID`) can no longer signal a monitor or a CONNECTOR. Measured:
  ``kill(monitor, SIGKILL)`` EPERM; ``/proc/<monitor>/mem`` EACCES;
  ``PTRACE_ATTACH`` and ``process_vm_writev`` EPERM.

What the kernel does *not* stop, and only the core does (docs/attacks.md):
signals to the orchestrator (``dmvx run`` itself keeps uid 0 -- it is the
user's process) and to other variants' processes, ``kill(-1, ...)``,
``/proc/<pid>/environ`` of a non-dumpable process (readable here by root
without ``CAP_SYS_PTRACE``: measured), and ``F_SETOWN`` signals (their
permission check lets effective uid 0 through).

Alternatives measured and left: variants under an unprivileged uid (every
program that writes where root may would break); a PID namespace for the
variants (the program would be pid 1, with init's signal semantics, and
``/proc`` would still show every process unless remounted).
"""

from __future__ import annotations

import ctypes
import os
import signal

from dmvx.policy import Reach

#: The real and saved uid of dmvx's own processes (effective uid stays 0): a
#: uid no variant has or can take. Any unused number does; this one is
#: next to Debian's ``nobody`` and unassigned.
RUN_UID = 65533

PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
PR_CAPBSET_DROP = 24
CAP_KILL, CAP_SETUID, CAP_SYS_PTRACE = 5, 7, 19
#: Capabilities a variant never gets: each one would reach dmvx's processes.
DROPPED_CAPABILITIES = (CAP_KILL, CAP_SETUID, CAP_SYS_PTRACE)
#: How many parents up :class:`ProcessScope` looks for the run's own process.
_MAX_DEPTH = 64

_libc = ctypes.CDLL(None, use_errno=True)


def shield() -> None:
    """Make this dmvx process (a monitor, a CONNECTOR) out of the variants'
    reach: not dumpable, and, when running as root, real and saved uid
    :data:`RUN_UID` with effective uid 0."""
    ruid, euid, _ = os.getresuid()
    if euid == 0 and ruid == 0:
        os.setresuid(RUN_UID, 0, RUN_UID)
    # After the uid change: a change of credentials can make a process
    # dumpable again.
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def confine_variant() -> None:
    """In the variant's launch child, before exec: a session of its own, uid
    0 back where :func:`shield` took it, and no capability that reaches
    dmvx's processes (without ``CAP_SETPCAP`` there is none to drop)."""
    # Dies with its monitor even before it is traced (PTRACE_O_EXITKILL
    # covers it only from then on): a child orphaned here would otherwise
    # ask init to trace it, and stop for good.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)
    os.setsid()
    if os.getuid() == RUN_UID and os.geteuid() == 0:
        os.setresuid(0, 0, 0)
    for capability in DROPPED_CAPABILITIES:
        _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)  # EPERM without CAP_SETPCAP: nothing to drop


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may itself hold ")" and spaces.
    fields = stat.rpartition(b")")[2].split()
    return int(fields[1]) if len(fields) > 1 else None


class ProcessScope:
    """The mode's answer to the core's "where does this pid land"
    (:class:`dmvx.policy.Reach`), for one variant's monitor.

    ``in_tree`` says whether a canonical pid is one of the variant's own
    processes; ``run`` is the pid of the run's own first process (the
    orchestrator): it and everything below it (monitors, CONNECTORs, agents,
    host shells, the other variants) is the run. Anything else is outside."""

    __slots__ = ("in_tree", "run")

    def __init__(self, in_tree, run: int) -> None:
        self.in_tree = in_tree
        self.run = run

    def __call__(self, pid: int) -> Reach:
        if self.in_tree(pid):
            return Reach.TREE
        current: int | None = pid
        for _ in range(_MAX_DEPTH):
            if current is None or current <= 1:
                return Reach.OUTSIDE
            if current == self.run:
                return Reach.RUN
            current = _parent(current)
        return Reach.RUN  # deeper than any tree we start: not worth the risk


class RunKey:
    """The run key, held where it can be wiped.

    Only the CONNECTORs use the key. A process forked while the
    orchestrator holds it has a copy in its memory, so each monitor wipes
    (:meth:`wipe`) its inherited copy before anything else, and the
    orchestrator its own once every CONNECTOR is forked: no monitor (and so
    no variant, and nothing a variant could read) holds it. The bytes are
    read straight into this buffer (no intermediate ``bytes`` object is
    left behind in freed memory), and the run's public id is drawn apart
    from it (it used to be the key's hash)."""

    #: Where the key's bytes come from (a test may point it at a file).
    source = "/dev/urandom"
    SIZE = 32

    def __init__(self) -> None:
        self.secret = bytearray(self.SIZE)
        with open(self.source, "rb", buffering=0) as source:
            if source.readinto(self.secret) != self.SIZE:
                raise OSError(f"{self.source}: short read for the run key")

    @classmethod
    def received(cls, fd: int) -> RunKey:
        """The key as it arrives on ``fd`` (an agent on a machine reached
        over SSH: the session's stdin, :mod:`realmode.net.sshagent`): read
        straight into the buffer, as :meth:`__init__` reads it; OSError if
        the stream ends first."""
        key = cls.__new__(cls)
        key.secret = bytearray(cls.SIZE)
        view = memoryview(key.secret)
        got = 0
        while got < cls.SIZE:
            n = os.readv(fd, [view[got:]])
            if n == 0:
                key.wipe()
                raise OSError("the session ended before the run key arrived")
            got += n
        return key

    def wipe(self) -> None:
        for i in range(len(self.secret)):
            self.secret[i] = 0
