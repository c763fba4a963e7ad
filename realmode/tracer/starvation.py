"""Time a variant was ready to run but had no CPU: not a stall.

The core decides what a wait that outlasts the stall timeout means
(``stalled()``: ``no-progress``, or ``crash`` for an end no peer matched);
how long a wait has lasted is the mode's to measure. Wall-clock time is
the wrong measure on a loaded machine: a follower ready to make its next
call, or to compute its way to it, may wait seconds for a CPU there (two
vCPUs at load average 30 give a busy process about a fifteenth of one),
and a leader waiting for it would end the run although nothing is wrong.
A stall is a variant that neither computes nor gets a CPU it is not
waiting for: blocked where the others wait for it, or spinning.

So each tracer measures its own variant's wait for a CPU -- the kernel's
``run_delay`` and CPU time (``/proc/TID/schedstat``: nanoseconds a task
spent runnable on a run queue, and running), of every traced task and of
the tracer itself (a traced process in a ptrace stop waits for its tracer)
-- every :func:`period`, and tells the others how much longer some task
waited than it ran in that period (the tasks' figures added up, at most
the period: placement puts a variant's tasks on one CPU, and threads that
hand work to each other -- a queue's producer and consumer -- wait in
turn, so the variant waited for the sum; the largest alone excused half of
such a wait, and a thread pool's variant at load 13-20 ended in
``no-progress`` in 5 of 6 runs), as a
:class:`~dmvx.messages.StarvedNote`. A waiting tracer does not count what
its peers reported since its wait began (:meth:`Starvation.excused`).

What is left counts: the time the awaited variant was blocked, plus its
CPU time twice over where it waited longer than it ran -- the wall clock
of a variant that gets half a CPU. A variant the machine runs at least half
the time is judged by the wall clock, as on a quiet machine; a starved one
as if it had half a CPU. Only the part of a wait beyond the CPU time is
excused, not the whole wait, so that a variant spinning in a loop (an
exploit's, or a hang) is still reported, at any load, after half the stall
timeout of its own CPU time at most; on a quiet machine, after the stall
timeout as before. A tracer whose variant has no process left reports
0: its own wait for a CPU then holds back no call of the variant.

A tracer that itself gets no CPU cannot send its note in time: the waiting
side hears it once the tracer runs again, which may be after the stall
timeout (on a loaded machine a monitor forked for a run waited 0.3-2.4 s
before its first measure). So a tracer sends a note every period whatever
it measured (0 when nothing), and counts from its own birth (it is forked
for the run): a peer whose notes are overdue (:meth:`Starvation.late`) is a
tracer the machine does not run, and a wait for its variant is not judged
until its note comes -- up to :data:`LATE_LIMIT` stall timeouts, so that a
monitor that is gone or stopped still ends the run. A peer that reports on
time and is not starved (a variant spinning in a loop, its tracer idle) is
judged after the stall timeout as before.

What this does not cover: a CONNECTOR's own wait for a CPU delays every
message and is not measured (it delays the notes too, which postpones the
verdict as an overdue note does); and a leader waiting for several
followers counts the wait of whichever reported the most, not of the one
it waits for (the mode does not know which the core waits for). A kernel
without schedstat (no ``CONFIG_SCHED_INFO``) reports nothing, and waits
are wall-clock time as before.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import deque
from collections.abc import Collection

#: Run-queue wait below this over a period is not reported (ns): on a quiet
#: machine every wakeup waits some microseconds, and a note costs a frame.
MIN_REPORTED = 5_000_000
#: What a task the tracer has not read before had used before it: nothing. The
#: tracer traces every task of its variant from its birth, so the whole
#: life of one it meets is within the period measured (a variant's first
#: process, still before its first call, is the one most often starved).
_BORN = (0, 0)
#: Notes remembered per peer (a wait that outlives them is credited with
#: what is left: never more than the peer reported).
_KEPT = 4096
#: A wait for a peer whose notes are overdue is judged at the latest after
#: this many stall timeouts (a monitor that is stopped, not starved, sends
#: nothing either).
LATE_LIMIT = 4


def period(stall_timeout: float, heartbeat: float) -> float:
    """How often a tracer measures its variant's wait for a CPU (seconds):
    the heartbeat period, and at least four times per stall timeout, so a
    starved variant's notes come well before the others' timeout."""
    return min(heartbeat, stall_timeout / 4)


def schedstat(tid: int | str) -> tuple[int, int] | None:
    """Nanoseconds task ``tid`` (or ``"thread-self"``) has run, and spent
    runnable without a CPU, since it started; None if it is gone or the
    kernel keeps no schedstat."""
    try:
        with open(f"/proc/{tid}/schedstat", "rb") as handle:
            ran, waited = handle.read().split()[:2]
            return int(ran), int(waited)
    except (OSError, ValueError):
        return None


def birth() -> float:
    """When the calling thread started, on ``time.monotonic``'s clock (to
    the kernel's clock tick); now if ``/proc`` does not say."""
    now = time.monotonic()
    try:
        with open("/proc/thread-self/stat", "rb") as handle:
            stat = handle.read()
        # "pid (comm) state ppid ...": starttime is field 22, the 20th after comm.
        ticks = int(stat.rpartition(b")")[2].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    return now - max(0.0, age)


class Starvation:
    """One tracer's measure of its own variant, and the notes its peers sent."""

    def __init__(self, born: bool = False, now: float | None = None) -> None:
        """``born``: this thread was started for the run (a forked monitor),
        so its own wait for a CPU counts from its birth, as a traced task's
        does -- a monitor forked on a busy machine may wait long before it
        gets here. ``now``: when peers' notes start to be due (see :meth:`late`)."""
        #: The last (CPU time, run_delay) read per task (the tracer's own under "thread-self").
        self._last: dict[int | str, tuple[int, int]] = {}
        own = _BORN if born else schedstat("thread-self")
        if own is not None:
            self._last["thread-self"] = own
        #: Per peer: (when heard, total ns heard from it until then), oldest first.
        self._heard: dict[int, deque[tuple[float, int]]] = {}
        self._since = time.monotonic() if now is None else now

    def measure(self, tids: Collection[int], elapsed: float) -> int:
        """Nanoseconds of the last ``elapsed`` seconds by which the tasks of
        ``tids`` and this tracer waited for a CPU longer than they ran, added
        up and at most ``elapsed`` (0 below
        :data:`MIN_REPORTED`, and 0 with no task: see the module's
        docstring). Tasks no longer in ``tids`` are forgotten; a new one
        counts from its birth (:data:`_BORN`)."""
        worst = 0
        now: dict[int | str, tuple[int, int]] = {}
        tasks: list[int | str] = ["thread-self", *tids]
        for tid in tasks:
            reading = schedstat(tid)
            if reading is None:
                continue
            now[tid] = reading
            before = self._last.get(tid, _BORN if tid != "thread-self" else reading)
            ran, waited = reading[0] - before[0], reading[1] - before[1]
            worst += max(0, waited - ran)
        self._last = now
        if not tids:
            return 0
        worst = min(worst, int(elapsed * 1e9))
        return worst if worst >= MIN_REPORTED else 0

    def heard(self, peer: int, ns: int, when: float) -> None:
        """Peer ``peer`` reported ``ns`` of waiting for a CPU, heard at ``when``."""
        notes = self._heard.setdefault(peer, deque(maxlen=_KEPT))
        total = notes[-1][1] if notes else 0
        notes.append((when, total + max(0, ns)))

    def late(self, peers: Collection[int], now: float, overdue: float) -> bool:
        """Whether a peer of ``peers`` has sent no note for ``overdue``
        seconds (since this measure began, for one never heard): its tracer
        gets no CPU, and the note it owes may excuse a wait for its variant."""
        for peer in peers:
            notes = self._heard.get(peer)
            if now - (notes[-1][0] if notes else self._since) > overdue:
                return True
        return False

    def starved(self, peer: int, now: float, overdue: float) -> bool:
        """Whether ``peer`` is starved as far as this tracer knows: its last
        note reported a wait for a CPU, or its notes are overdue (its
        tracer gets no CPU)."""
        notes = self._heard.get(peer)
        if not notes:
            return now - self._since > overdue
        if now - notes[-1][0] > overdue:
            return True
        return notes[-1][1] - (notes[-2][1] if len(notes) > 1 else 0) > 0  # what the last note said

    def excused(self, since: float) -> float:
        """Seconds of waiting for a CPU the peers reported after ``since``
        (the largest of any one peer's)."""
        best = 0
        for notes in self._heard.values():
            if not notes or notes[-1][0] <= since:
                continue
            i = bisect.bisect_right(notes, since, key=lambda note: note[0])
            before = notes[i - 1][1] if i > 0 else (notes[0][1] if len(notes) == _KEPT else 0)
            best = max(best, notes[-1][1] - before)
        return best / 1e9
