"""Interval clocks in a process with threads: the leader's readings, taken in order.

A thread that waits for a lock with a timeout reads ``CLOCK_MONOTONIC`` once
per wait (Python's GIL does, every 5 ms of contention; glibc's timed waits
do), and jemalloc reads ``CLOCK_MONOTONIC_COARSE`` when a ``trylock`` of its
decay state happens to succeed: how many such reads a thread makes is up to
the interleaving, a number no two variants share. So the core does not
sequence them (the broker routes them ``LOCAL`` in a process with threads:
:data:`dmvx.broker.THREAD_LOCAL_CLOCKS`) -- yet a server's event loop
(redis's timers) decides what to do next from the same clock, and a
follower that read its own clock would run a timer at another call than
the leader did.

So the tracer answers these reads itself, in one stop, never running them:

* **the leader** reads the clock (the system's: the same clock its thread
  would read) and sends the value on the thread's stream
  (:class:`~dmvx.messages.ClockNote`);
* **a follower**'s thread takes the leader's readings of its stream and
  clock in order. When there is none left it knows whether the leader made
  no more before its next call: every later message of the stream (an
  entry, a ``GO``, an ``ANNOUNCE`` of a lockstep call the leader waits at)
  comes after the leader's readings on the one CONNECTOR link. Then it reads
  its own clock; until then it waits, but not for ever: a thread may read the
  clock holding a lock (Python's GIL takes its mutex before it reads), and
  the leader's thread may need what another thread of this variant cannot
  do without that lock. A thread whose last read was the leader's (an event
  loop: the reads line up) waits up to :data:`PATIENCE_ALIGNED`, one whose
  last read was its own (lock waits) :data:`PATIENCE`. A thread's readings
  never go back.

  Those are wall-clock times, and on a busy machine the leader's thread may
  wait longer than that for a CPU between two calls: a follower's event
  loop then read its own clock, ran a timer at another call than the
  leader's, and the run ended in a ``call-mismatch`` (redis-server's main
  thread, ``gettimeofday vs write``, in 5 of 7 runs at load average 15-19,
  0 of 6 on a quiet machine). So an aligned read waits on, up to
  :data:`PATIENCE_STARVED`, while the leader says it is starved (its last
  note, :mod:`.starvation`, reported a wait for a CPU) or its notes are
  overdue (its monitor gets no CPU): the leader's reading is then late,
  not missing. A leader that waits for this variant (the lock case above)
  is not starved, so that case keeps its short patience.

Where the reads line up (a server's event loop) every variant sees the
leader's times; where they do not (lock waits), the extra reads cost
nothing but a possible misalignment of later readings, and a different
decision taken from them is a different call, which is reported. CPU-time
clocks are not system-wide, so each variant reads its own (they stay
``LOCAL`` and run).
"""

from __future__ import annotations

import errno
import time
from collections import deque
from typing import TYPE_CHECKING

from dmvx import structs
from dmvx.actions import EVERYONE, LEADER
from dmvx.calls import Outcome
from dmvx.messages import ClockNote, Entry, Message, ResultNote
from realmode import ptrace_ll as ll
from realmode.tracer.procs import Held, Proc
from realmode.tracer.steering import MASK64

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess

#: System-wide interval clocks the tracer reads as its tracee would:
#: MONOTONIC, MONOTONIC_RAW, MONOTONIC_COARSE, BOOTTIME.
ANSWERED = frozenset({1, 4, 6, 7})
_CALLS = frozenset({"clock_gettime"})
#: How long a follower's read waits for the leader's reading (seconds), when
#: the thread's last read was its own, and when it was the leader's.
PATIENCE = 0.02
PATIENCE_ALIGNED = 0.15
#: How long an aligned read waits at most while the leader is starved.
PATIENCE_STARVED = 1.0


class Clocks:
    """A tracer's interval-clock readings: sent (leader) or taken (follower)."""

    def __init__(self, tracer: TracerProcess) -> None:
        self.t = tracer
        #: Followers: the leader's readings per (stream, clock), oldest first.
        self.readings: dict[tuple[str, int], deque[int]] = {}
        #: Followers: the highest sequence number the leader sent on each stream.
        self.seen: dict[str, int] = {}
        #: The last reading each (stream, clock) was given: none goes back.
        self.last: dict[tuple[str, int], int] = {}
        #: Followers: threads waiting for the leader's next reading or call, until
        #: when, and since when.
        self.parked: dict[str, tuple[Proc, float, float]] = {}
        #: Followers: whether each (stream, clock)'s last read was the leader's
        #: (a thread's first read counts as aligned: it waits as such).
        self.aligned: dict[tuple[str, int], bool] = {}
        #: Followers: where each (stream, clock) last read its own clock: the
        #: thread's sequence number and how far the leader's stream had come.
        self.own_at: dict[tuple[str, int], tuple[int, int]] = {}

    def answers(self, proc: Proc, held: Held) -> bool:
        """Answer ``held``, a call the core routed LOCAL, if it is an
        interval-clock read of a thread; False if it is not one."""
        raw = held.raw
        if raw.name not in _CALLS or not proc.monitor.fds.shared or raw.call.args[0] not in ANSWERED:
            return False
        clock = raw.call.args[0]
        if self.t.leader:
            ns = time.clock_gettime_ns(clock)
            self.t.out.send(EVERYONE, ClockNote(proc.stream, clock, ns), self.t.batching)
            self._answer(proc, held, clock, ns)
            return True
        if not self._take(proc, held, clock):
            patience = PATIENCE_ALIGNED if self.aligned.get((proc.stream, clock), True) else PATIENCE
            now = time.monotonic()
            self.parked[proc.stream] = (proc, now + patience, now)
        return True

    def heard(self, message: Message) -> bool:
        """A follower heard ``message`` from the leader: keep a reading
        (True: it was one, and is for nobody else), note how far the stream
        went, and give parked threads what they waited for."""
        stream = message.stream
        if type(message) is ClockNote:
            self.readings.setdefault((stream, message.clock), deque()).append(message.ns)
            consumed = True
        else:
            if type(message) in (Entry, ResultNote):
                seq = message.seq  # type: ignore[union-attr]
                if seq > self.seen.get(stream, 0):
                    self.seen[stream] = seq
            consumed = False
        parked = self.parked.get(stream)
        if parked is not None:
            proc = parked[0]
            held = proc.held
            if not proc.alive or held is None or self._take(proc, held, held.raw.call.args[0]):
                del self.parked[stream]
        return consumed

    def deadline(self) -> float | None:
        """When the first parked read stops waiting (None: none waits)."""
        return min(until for _, until, _ in self.parked.values()) if self.parked else None

    def expire(self, now: float) -> None:
        """Parked reads that waited long enough read this variant's clock;
        an aligned one waits on while the leader is starved (the module's
        docstring)."""
        for stream, (proc, until, since) in list(self.parked.items()):
            if now < until:
                continue
            held = proc.held
            if (
                held is not None
                and self.aligned.get((stream, held.raw.call.args[0]), True)
                and now < since + PATIENCE_STARVED
                and self.t.starvation.starved(LEADER, now, 2 * self.t.starved_every)
            ):
                self.parked[stream] = (proc, min(since + PATIENCE_STARVED, now + PATIENCE_ALIGNED), since)
                continue
            del self.parked[stream]
            held = proc.held
            if proc.alive and held is not None:
                self._own(proc, held, held.raw.call.args[0])

    def _take(self, proc: Proc, held: Held, clock: int) -> bool:
        key = (proc.stream, clock)
        queue = self.readings.get(key)
        if queue:
            ns = queue.popleft()
            self.aligned[key] = True
            self.own_at.pop(key, None)
        elif self.seen.get(proc.stream, 0) > proc.monitor.seq:
            self._own(proc, held, clock)  # the leader made no more before its next call
            return True
        elif self.own_at.get(key) == (proc.monitor.seq, self.seen.get(proc.stream, 0)):
            # It read its own clock at this call already, and nothing of the
            # leader's stream came since: it makes more reads here than the
            # leader's thread did (a lock wait whose timed waits repeat
            # without a call between: Python's GIL every 5 ms, holding the
            # GIL's mutex -- a wait here holds up this variant's other
            # threads while the leader's may be asleep for long). Patience
            # does not bring a reading the leader never made.
            self._own(proc, held, clock)
            return True
        else:
            return False
        self._answer(proc, held, clock, ns)
        return True

    def _own(self, proc: Proc, held: Held, clock: int) -> None:
        """Answer ``held`` with this variant's own reading of ``clock``."""
        key = (proc.stream, clock)
        self.aligned[key] = False
        self.own_at[key] = (proc.monitor.seq, self.seen.get(proc.stream, 0))
        self._answer(proc, held, clock, time.clock_gettime_ns(clock))

    def _answer(self, proc: Proc, held: Held, clock: int, ns: int) -> None:
        """Make the held read return ``ns`` (never less than the thread's
        last reading of that clock) without running it: in one stop."""
        key = (proc.stream, clock)
        ns = max(ns, self.last.get(key, 0))
        self.last[key] = ns
        raw = held.raw
        struct = "timespec64" if raw.kernel_name == "clock_gettime64" else "timespec"
        data = structs.encode(struct, raw.arch, {"tv_sec": ns // 1_000_000_000, "tv_nsec": ns % 1_000_000_000})
        proc.held = None
        proc.waiting_since = None
        regs = ll.get_regs(proc.pid)
        result = 0
        try:
            ll.write_memory(proc.pid, raw.args[1], data)
        except ll.PtraceError as error:
            if error.errno == errno.ESRCH:
                raise
            result = -errno.EFAULT  # as the kernel answers a bad pointer
        regs.orig_rax = MASK64
        regs.rax = result & MASK64
        ll.set_regs(proc.pid, regs)
        self.t.carry_out(proc, proc.monitor.call_exited(Outcome(result)))  # a local call: nothing to compare
        ll.resume(proc.pid, False)
