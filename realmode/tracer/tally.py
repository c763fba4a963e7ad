"""The per-call tally behind ``dmvx run --summary`` (``strace -c`` for MVX).

Counted where the stops are handled, per call name and the route the core's
broker gave it (:class:`dmvx.policy.Route`: ``lockstep``, ``replicate``,
``local``, ``local-file``, ``predict``):

``calls``
    entry stops handed to the core, and the calls of the in-process path
    handed to it from a ring (:meth:`Tally.fast`: never stopped);
``errors``
    of those, how many returned an error to the program (its own result,
    or the leader's it was given);
``stopped``
    nanoseconds from the entry stop until the monitors released the call
    (the variant runs it, or is made to skip it): the wait for the core and
    for the other variants, which is what MVX adds to a call;
``monitor``
    nanoseconds inside the core's monitor methods for the call
    (``call_entered``, the messages that arrive while it is held,
    ``call_exited``): the core's own share of ``stopped`` and after.

A tracer counts only when asked (``Launch.summary``): then a call costs a
few clock reads more; when not, each hook is one test of ``None``. The tracer reports the tally
with its figures (:meth:`Tally.report`); :mod:`realmode.callsummary` makes
the run's typed summary of every variant's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from dmvx.actions import Action
from dmvx.calls import Outcome
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from realmode.tracer.procs import Held

_A = TypeVar("_A")

#: The tally's clock (nanoseconds).
now = time.perf_counter_ns


@dataclass(slots=True)
class Count:
    """One (call, route) of one variant."""

    calls: int = 0
    errors: int = 0
    stopped_ns: int = 0
    monitor_ns: int = 0


class Tally:
    """Every (call, route) a variant's processes stopped at, counted."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], Count] = {}

    def enter(self, monitor: LeaderMonitor | FollowerMonitor, held: Held, since: int) -> list[Action]:
        """Hand ``held``, stopped at its entry since ``since``, to ``monitor``
        and count it under the route the monitor's broker gave it."""
        start = now()
        actions = monitor.call_entered(held.raw.call)
        spent = now() - start
        decision = monitor.last_decision
        if decision is None:
            return actions  # not decided (a verdict came first): the run is over
        key = (held.raw.name, decision.route.value)
        count = self.counts.get(key)
        if count is None:
            count = self.counts[key] = Count()
        count.calls += 1
        count.monitor_ns += spent
        held.count = count
        held.since = since
        return actions

    def fast(self, monitor: LeaderMonitor | FollowerMonitor, name: str, spent: int, calls: int = 1) -> Count | None:
        """A call of the in-process path (``realmode.inproc``), handed to
        ``monitor`` from its ring in ``spent`` ns: counted as a stop would
        be, with no time stopped (it did not stop). Its count, for the
        rest (None when the monitor decided nothing: the run is over).
        ``calls``: a run of that many equal calls, handed over as one."""
        decision = monitor.last_decision
        if decision is None:
            return None
        key = (name, decision.route.value)
        count = self.counts.get(key)
        if count is None:
            count = self.counts[key] = Count()
        count.calls += calls
        count.monitor_ns += spent
        return count

    @staticmethod
    def released(held: Held) -> None:
        """The monitors let ``held`` run or skip: its stop ends here."""
        count = held.count
        if count is not None and held.since:
            count.stopped_ns += now() - held.since
            held.since = 0

    @staticmethod
    def exited(held: Held, monitor: LeaderMonitor | FollowerMonitor, outcome: Outcome, result: int) -> list[Action]:
        """Hand the return of counted ``held`` (``result`` for the program)
        to ``monitor``, timed."""
        count = held.count
        assert count is not None  # the caller counts this call
        if result < 0:
            count.errors += 1
        start = now()
        actions = monitor.call_exited(outcome)
        count.monitor_ns += now() - start
        return actions

    @staticmethod
    def returned(held: Held, result: int) -> None:
        """``held`` returns ``result`` to the program."""
        count = held.count
        if count is not None and result < 0:
            count.errors += 1

    def report(self) -> list[list[str | int]]:
        """The tally as a tracer reports it: ``[call, route, calls, errors,
        stopped_ns, monitor_ns]`` per (call, route)."""
        return [
            [name, route, c.calls, c.errors, c.stopped_ns, c.monitor_ns]
            for (name, route), c in sorted(self.counts.items())
        ]


def timed(held: Held | None, call: Callable[[_A], list[Action]], arg: _A) -> list[Action]:
    """``call(arg)`` (a monitor method); its time goes to the count of
    ``held``, the call the process holds, when one is counted."""
    if held is None or held.count is None:
        return call(arg)
    start = now()
    actions = call(arg)
    held.count.monitor_ns += now() - start
    return actions
