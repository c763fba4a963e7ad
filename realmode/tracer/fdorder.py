"""The leader's order of descriptor-table changes, replayed by a follower's threads.

Threads share one descriptor table, and the kernel gives a new descriptor
the lowest free number: which number a thread's ``open`` gets depends on
what the other threads opened and closed before it. Each thread's calls are
compared and replicated on its own stream, so the leader's thread A and the
follower's thread A see the same results -- but only if their tables agree,
and the threads of two variants interleave as they please. A follower's
placeholder would land on another number than the leader's descriptor (a
``protocol-error``), a local file opened by every variant would get another
number in each (an ``output-mismatch``), a process forked by one thread
would inherit another table.

So the calls that change a shared table or copy it
(:data:`dmvx.fdtable.TABLE_ORDERED`) are made in one order, the leader's:

* **The leader** runs them one at a time per table: a thread's call waits
  at its entry while another thread's is running (from its release to its
  return stop). Its tracer then sees them return in the order the kernel
  ran them (two calls running at once may reach their return stops in any
  order, and ``waitpid`` reports stops by thread, not by time). ``accept``
  and ``accept4`` are left out: they block until a client comes, and a
  worker that must close a connection before the next client connects
  would wait for ever; any other call that may wait for another thread
  (:func:`may_block`: an open of a FIFO waits for its other end, an
  ``fcntl`` for a lock) and has run :data:`LEADER_PATIENCE` asleep in the
  kernel is taken as blocked too, and the next one runs beside it. A call
  that finishes by itself (a regular file's open, a close, a dup) is always
  waited for, however long it sleeps: an open takes its number when it
  starts, so a close let run beside one that sleeps (an ``O_TRUNC`` waiting
  for the disk, under load) returned first, its point came first, and the
  follower freed that number before its own open took the lowest one --
  a false ``protocol-error`` ("placeholder descriptor landed at (5,), the
  leader's is (8,)") in about 1 of 10 runs of tests/test_real_threads.py's
  worker threads under load, on either path.
* The leader's tracer sends the entry of a call when it has returned, and
  for a call every variant runs released by ``GO`` before it ran (every
  call under ``dmon``) the leader's monitor sends a
  :class:`~dmvx.messages.ResultNote` once it has returned
  (:meth:`dmvx.monitor.LeaderMonitor.call_exited`, when the table is
  :attr:`~dmvx.fdtable.FdTable.shared`). One CONNECTOR link carries every
  stream's messages in the order they were sent, so the order they arrive
  in *is* the leader's order: each is a point ``(stream, seq)``.
* **A follower**'s thread about to run (or skip) such a call is parked
  until that call's point has arrived and every earlier point of a thread
  sharing its table has returned here too.

What this does not cover, and how it shows: an ``accept`` (or a blocked call) that returns
while another thread of the leader changes the table may be ordered after
that change although the kernel made it first; then the follower's
placeholder lands on another number and the run ends with the
``protocol-error`` verdict that names both numbers. A follower whose
threads took a lock in another order than the leader's and hold it across
such a call cannot follow the leader's order: the parked thread waits for
one that waits for it, and after the stall timeout the run ends with
``no-progress`` naming both threads -- a verdict, never a wrong answer.
"""

from __future__ import annotations

import os
import stat
import time
from collections import deque
from typing import TYPE_CHECKING, cast

from dmvx.actions import Execute, Skip
from dmvx.fdtable import OPEN_CALLS, TABLE_ORDERED, FdKind, FdTable
from dmvx.messages import Entry, EntryKind, Message, ResultNote
from dmvx.verdict import Verdict, VerdictKind
from realmode.tracer.procs import CLONE_FILES, Held, Proc, Stage

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess

#: Entries sent when the leader's call has returned.
_RETURNED = frozenset({EntryKind.FULL, EntryKind.DIGEST, EntryKind.PREDICTED})
_CLONES = frozenset({"clone", "clone3"})
#: How long the leader holds a call behind another thread's that is running
#: (seconds) before it looks whether that one is blocked -- asleep in the
#: kernel (an open of a FIFO waits for its other end, which may be this very
#: thread's to open), not just waiting for a CPU on a loaded machine -- and
#: then lets the next one run beside it.
LEADER_PATIENCE = 0.1
#: Ordered calls the leader does not run one at a time: they may block for long.
_BLOCKING = frozenset({"accept", "accept4"})


#: Calls that read or write an ``eventfd``'s counter.
EVENTFD_IO = frozenset({"read", "write", "readv", "writev"})


def ordered(proc: Proc, held: Held) -> bool:
    """Whether the held call is one whose order matters: it changes the
    table, or copies it (a clone with ``CLONE_FILES`` shares it instead),
    or it reads or writes an ``eventfd`` of a table threads share."""
    name = held.raw.name
    if name in EVENTFD_IO:
        return eventfd_io(proc.monitor.fds, held.raw.call.args[0])
    return name in TABLE_ORDERED and not (name in _CLONES and held.clone_flags & CLONE_FILES)


def eventfd_io(fds: FdTable, fd: object) -> bool:
    """Whether a read or write of ``fd`` is ordered: ``fd`` is an ``eventfd``
    of a table threads share. Threads wake each other through one (a server's
    main thread queues a connection in memory, then writes its worker's
    ``eventfd``; the worker reads it and takes what the queue holds), and an
    ``eventfd``'s reads and writes run in the leader only: a follower's worker
    given the leader's read before its own main thread queued the item finds
    the queue empty. So they are made in the leader's order, as table changes are."""
    return fds.shared and fds.kind(fd) is FdKind.EVENTFD


#: Ordered calls that always finish by themselves: never run beside. Every
#: table change or copy (dmvx.fdtable) but those that may wait for another
#: thread: opens and ``fcntl`` (decided by their arguments below), accepts,
#: exec and vfork.
_FINITE = TABLE_ORDERED - OPEN_CALLS - {"accept", "accept4", "fcntl", "execve", "execveat", "vfork"}
_CLONE_VFORK = 0x4000
_OPENS = {"open": (None, 0), "creat": (None, 0), "openat": (0, 1), "openat2": (0, 1)}
#: fcntl commands that wait for a lock another thread may hold: F_SETLKW, F_OFD_SETLKW.
_LOCK_WAITS = frozenset({7, 38})


def may_block(proc: Proc, held: Held) -> bool:
    """Whether the leader's ordered call ``held`` may sleep until another
    thread acts: an open of a FIFO or a device (not of a regular file or a
    directory, or one it creates), ``fcntl`` waiting for a lock, a vfork
    (its child runs first), and any call not known to finish by itself."""
    raw = held.raw
    name = raw.name
    if name in _FINITE:
        # A vfork (or a clone with CLONE_VFORK) waits for its child's exec or end.
        return bool(held.clone_flags & _CLONE_VFORK)
    if name == "fcntl":
        return raw.call.args[1] in _LOCK_WAITS
    if name not in _OPENS:
        return True
    dir_index, path_index = _OPENS[name]
    path = raw.call.args[path_index]
    if not isinstance(path, str):
        return True
    if not path.startswith("/"):
        dirfd = raw.call.args[dir_index] if dir_index is not None else -100
        path = f"/proc/{proc.pid}/cwd/{path}" if dirfd == -100 else f"/proc/{proc.pid}/fd/{dirfd}/{path}"
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # none there yet: it creates a regular file, or fails
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _asleep(tid: int) -> bool:
    """Whether thread ``tid`` sleeps in the kernel (blocked in its call), not
    merely waiting for a CPU or stopped at its return."""
    try:
        with open(f"/proc/{tid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] in (b"S", b"D")
    except (OSError, IndexError):
        return False


class FdOrder:
    """A follower tracer's record of the leader's order, and its parked calls."""

    def __init__(self, tracer: TracerProcess) -> None:
        self.t = tracer
        #: ``(stream, seq)`` of the leader's returned calls, in the order they returned.
        self.points: deque[tuple[str, int]] = deque()
        #: Streams whose call waits for its turn, with the action to carry out then.
        self.parked: dict[str, tuple[Proc, Execute | Skip]] = {}
        #: The leader: since when each parked call has waited.
        self.since: dict[str, float] = {}
        #: The stream whose parked action is being carried out now.
        self.going: str | None = None
        #: Points that read or write a descriptor that may be an ``eventfd``
        #: (:func:`eventfd_io`): the descriptor, or None once found to be
        #: none. The entries carry no descriptor kind, and when one arrives
        #: the thread that made the ``eventfd`` may not have made it here
        #: yet; by the time the point is looked at in order, every earlier
        #: table change has been made here, and this table says.
        self.io: dict[tuple[str, int], object] = {}

    def heard(self, message: Message) -> None:
        """A message from the leader, in the order the leader sent it."""
        kind = type(message)
        if kind is Entry:
            entry = cast(Entry, message)
            if entry.kind not in _RETURNED or not self.orders(entry):
                return
            point = (entry.stream, entry.seq)
            if entry.call.name in EVENTFD_IO:
                self.io[point] = entry.call.args[0]
            self.points.append(point)
        elif kind is ResultNote:
            self.points.append((message.stream, message.seq))  # type: ignore[union-attr]
        else:
            return
        while self.points and self._passed(*self.points[0], None):
            self.io.pop(self.points.popleft(), None)

    def orders(self, entry: Entry) -> bool:
        """Whether the leader's ``entry`` may be a point of the order: a call
        that changes a table, or a read or write of what may be an ``eventfd``
        of a shared table (one this variant does not know yet may be)."""
        name = entry.call.name
        if name in TABLE_ORDERED:
            return True
        if name not in EVENTFD_IO:
            return False
        proc = self.t.streams.get(entry.stream)
        if proc is None:
            return True
        fds = proc.monitor.fds
        return fds.shared and fds.kind(entry.call.args[0]) in (FdKind.EVENTFD, None)

    def holds(self, proc: Proc, action: Execute | Skip) -> bool:
        """Whether ``action`` (``proc``'s monitor's release of its call) must
        wait for its turn; if so it is parked until :meth:`release` finds it
        is."""
        held = proc.held
        if held is None or action.seq is None or not ordered(proc, held) or not proc.monitor.fds.shared:
            return False
        if self.going == proc.stream or self._may_go(proc, held.raw.name, action.seq):
            return False
        self.parked[proc.stream] = (proc, action)
        if self.t.leader:
            self.since[proc.stream] = time.monotonic()
        else:
            proc.waiting_since = time.monotonic()
        return True

    def deadline(self) -> float | None:
        """The leader: when to look again whether a parked call may go (None: none waits)."""
        if not self.since:
            return None
        # Past the patience, look again every 10 ms (not in a busy loop).
        return max(min(self.since.values()) + LEADER_PATIENCE, time.monotonic() + 0.01)

    def release(self) -> None:
        """Carry out every parked action whose turn has come."""
        for stream, (proc, action) in list(self.parked.items()):
            held = proc.held
            if not proc.alive or held is None:
                del self.parked[stream]
                self.since.pop(stream, None)
            elif action.seq is not None and self._may_go(proc, held.raw.name, action.seq):
                del self.parked[stream]
                self.since.pop(stream, None)
                proc.waiting_since = None
                self.going = stream  # its turn, whatever holds() would say now
                try:
                    self.t.carry_out(proc, [action])
                finally:
                    self.going = None
                if self.t.leader:
                    return  # one at a time: it runs now

    def _may_go(self, proc: Proc, name: str, seq: int) -> bool:
        if self.t.leader:
            if name in _BLOCKING:
                return True
            waited = time.monotonic() - self.since.get(proc.stream, time.monotonic())
            return all(
                waited >= LEADER_PATIENCE and may_block(other, other.held) and _asleep(other.pid)  # type: ignore[arg-type]
                for other in self._running(proc)
            )
        return self._turn(proc, seq)

    def _running(self, proc: Proc) -> list[Proc]:
        """The other threads sharing ``proc``'s table that run an ordered call."""
        fds = proc.monitor.fds
        running = []
        for other in self.t.procs.values():
            held = other.held
            if (
                other is not proc
                and held is not None
                and held.stage is not Stage.ENTRY
                and other.monitor.fds is fds
                and ordered(other, held)
                and held.raw.name not in _BLOCKING
            ):
                running.append(other)
        return running

    def stalled(self, proc: Proc) -> Verdict | None:
        """The verdict for a parked ``proc`` that waited past the stall
        timeout (None if it is not parked)."""
        parked = self.parked.pop(proc.stream, None)
        if parked is None:
            return None
        _, action = parked
        assert action.seq is not None
        before = next((f"{stream} #{seq}" for stream, seq in self.points if not self._passed(stream, seq, proc)), None)
        name = proc.held.raw.name if proc.held is not None else "?"
        waits = (
            f"for thread {before}, which the leader's changed first"
            if before is not None and before != f"{proc.stream} #{action.seq}"
            else "for the leader's order"
        )
        return Verdict(
            VerdictKind.NO_PROGRESS,
            action.seq,
            detail=f"thread {proc.stream} waits at {name} (#{action.seq}) {waits}: the threads share a "
            "descriptor table and changed it in another order here (a lock taken in another order?)",
        )

    # -- internals -------------------------------------------------------------

    def _turn(self, proc: Proc, seq: int) -> bool:
        """Whether ``proc``'s call ``seq`` may change its table now: its point
        has arrived and every earlier one that concerns its table has passed."""
        mine = (proc.stream, seq)
        for point in self.points:
            if point == mine:
                return True
            if not self._passed(point[0], point[1], proc):
                return False
        return False

    def _passed(self, stream: str, seq: int, asking: Proc | None) -> bool:
        """Whether the point ``(stream, seq)`` is behind this variant (its call
        returned here, or its thread has ended), or concerns another table
        than ``asking``'s."""
        other = self.t.streams.get(stream)
        if other is None:
            return False  # not created here yet
        if asking is not None and other.monitor.fds is not asking.monitor.fds:
            return True
        point = (stream, seq)
        if point in self.io:
            fd = self.io[point]
            if fd is None or not eventfd_io(other.monitor.fds, fd):
                self.io[point] = None  # no eventfd: no point, for good
                return True
        if not other.alive or other.done:
            return True
        at = other.monitor.seq
        if at != seq:
            return at > seq
        held = other.held
        if held is None or held.compared != seq:
            return True
        # Still at that call: a note of a call that changes no descriptor
        # (a steered read, a new thread) is no point of the order.
        return asking is not None and not ordered(other, held)
