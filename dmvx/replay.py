"""An in-memory driver: run N monitors over recorded call streams.

This is the smallest possible mode. Each variant is a list of steps (the
call it makes and the outcome it would get by running it itself) and how its
process ends; messages are delivered instantly, in order per link. What is
left open is the interleaving: at every turn some variants can move and some
monitors have messages waiting, and a *schedule* picks one. The default is a
seeded random choice, so one seed is one schedule and many seeds explore
many -- what the property tests of the core want. :data:`eager` is the fixed
schedule of ``dmvx lab watch``, which shows a student one readable run.

The driver is also the one place that steps the monitors without time: an
:class:`Observer` sees every event and what the monitor answered, which is
how the lab watcher logs a run line by line without a loop of its own (two
loops would drift apart, and the watcher must show what the core does).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from dmvx.actions import EVERYONE, Action, Carrier, Deliver, Done, Execute, Halt, LeaderPid, Send, Skip
from dmvx.calls import Call, Outcome
from dmvx.messages import Message
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Decision, Policy, Route
from dmvx.trace import TraceEnd
from dmvx.verdict import Verdict

#: One thing that can happen next: a monitor takes the first message of its
#: inbox (``"msg"``), or a variant takes its next step (``"var"``).
Choice = tuple[Literal["msg", "var"], int]
#: Picks the next :data:`Choice` among those possible (never an empty list).
Schedule = Callable[[Sequence[Choice]], Choice]


def seeded(seed: int) -> Schedule:
    """A random schedule: one seed, one interleaving, the same every time."""
    return random.Random(seed).choice


def eager(choices: Sequence[Choice]) -> Choice:
    """The schedule asynchronous replication is about, and a readable one.

    Messages arrive at once (pending deliveries go first, lowest variant
    first), then the lowest-numbered variant that can move does: the leader
    runs whenever it can. Under ``dmvx`` it runs ahead until a lockstep call,
    a full connector buffer or its end holds it, and the followers then catch
    up from the entries it left; under ``dmon`` every call waits for them.
    Candidates come messages first, each kind by variant, so this is the first.
    """
    return choices[0]


@dataclass(frozen=True, slots=True)
class Step:
    """One call of a variant and the outcome it gets if it runs it."""

    call: Call
    outcome: Outcome = field(default_factory=lambda: Outcome(0))  # each step its own: Outcome is mutable
    #: An asynchronous signal that comes to this variant just before it
    #: enters this call (0: none). Where each variant takes it is the
    #: monitors' decision (:mod:`dmvx.signals`): the replay runs the
    #: signal's handler steps (``replay(handlers=...)``) where it is delivered.
    signal: int = 0
    #: With ``signal``: the signal comes while this call runs and ends it
    #: with this "interrupted" result (one of :data:`dmvx.signals.RESTART`).
    interrupted: int | None = None


@dataclass
class VariantLog:
    """What happened to one variant during a replay."""

    executed: list[Call] = field(default_factory=list)  # calls it ran natively
    skipped: list[Call] = field(default_factory=list)  # calls fed from the leader
    entered: int = 0
    done: bool = False
    exit_status: int | None = None  # 128 + the signal when killed, as a shell reports it
    #: Calls its monitor saw per route (route name -> count).
    routes: dict[str, int] = field(default_factory=dict)
    #: ``(seq, signal)`` of each signal delivered, in order.
    delivered: list[tuple[int, int]] = field(default_factory=list)
    #: With ``steer``: the pid the replay gave its process, and (followers)
    #: the leader's as its monitor reported it (a LeaderPid action).
    pid: int | None = None
    leader_pid: int | None = None


@dataclass
class ReplayResult:
    verdict: Verdict | None
    logs: list[VariantLog]
    messages: int
    max_lead: int
    verdict_at_entered: list[int] = field(default_factory=list)
    #: The run hit ``max_events`` with neither a verdict nor every variant done.
    cut_short: bool = False

    @property
    def ok(self) -> bool:
        return self.verdict is None and all(log.done for log in self.logs)


class Observer:
    """Sees every event of a replay and the actions the monitor returned.

    Each method is called after the driver carried the actions out, in the
    order the schedule chose; the defaults do nothing, so an observer
    overrides what it cares about. ``variant`` is the variant's index (0 is
    the leader).
    """

    def received(self, variant: int, message: Message, actions: list[Action]) -> None:
        """The variant's monitor took ``message`` from its inbox."""

    def entered(
        self, variant: int, call: Call, decision: Decision | None, seq: int | None, actions: list[Action]
    ) -> None:
        """The variant entered ``call``; ``decision`` is the broker's route for
        it, ``seq`` its place in the compared sequence (None for a local call)."""

    def returned(self, variant: int, outcome: Outcome, actions: list[Action]) -> None:
        """A call the variant ran itself returned ``outcome``."""

    def ended(self, variant: int, end: TraceEnd, actions: list[Action]) -> None:
        """The variant's process exited or was killed (``end.how``)."""

    def stalled(self, variant: int, actions: list[Action]) -> None:
        """Nothing could move, and the variant's stall timer fired."""


class _Variant:
    __slots__ = ("steps", "position", "state", "end", "log")

    def __init__(self, steps: Sequence[Step], end: int | TraceEnd) -> None:
        self.steps = list(steps)
        self.position = 0
        self.state = "ready"  # ready | waiting | running | exited | ended
        self.end = end if isinstance(end, TraceEnd) else TraceEnd("exit", end)
        self.log = VariantLog()


class _Run:
    """What every variant's hands share during a replay."""

    __slots__ = ("variants", "inboxes", "verdict", "messages", "at_verdict", "handlers")

    def __init__(
        self, variants: list[_Variant], inboxes: list[deque[Message]], handlers: Mapping[int, Sequence[Step]]
    ) -> None:
        self.variants = variants
        self.handlers = handlers
        self.inboxes = inboxes
        self.verdict: Verdict | None = None
        self.messages = 0
        self.at_verdict: list[int] = []


class _Hands(Carrier):
    """What replay does with one variant's monitor's actions: messages are
    delivered instantly, and a call runs or is skipped by moving on in the
    variant's steps. A Wait changes nothing here (the Carrier default): the
    variant is already held at its call, from its entry until an Execute or
    Skip, and a call that is running returns whatever its monitor thinks, as
    in a real process."""

    __slots__ = ("run", "index", "variant")

    def __init__(self, run: _Run, index: int) -> None:
        self.run = run
        self.index = index
        self.variant = run.variants[index]

    def execute(self, action: Execute) -> None:
        self.variant.state = "running"

    def skip(self, action: Skip) -> None:
        variant = self.variant
        variant.log.skipped.append(variant.steps[variant.position].call)
        variant.position += 1
        variant.state = "ready"

    def send(self, action: Send) -> None:
        run = self.run
        n = len(run.inboxes)
        targets = [i for i in range(n) if i != self.index] if action.to == EVERYONE else [action.to]
        for target in targets:
            run.inboxes[target].append(action.message)
            run.messages += 1

    def halt(self, action: Halt) -> None:
        run = self.run
        if run.verdict is None:
            run.verdict = action.verdict
            run.at_verdict.extend(v.log.entered for v in run.variants)

    def done(self, action: Done) -> None:
        self.variant.log.done = True
        self.variant.state = "ended"

    def leader_pid(self, action: LeaderPid) -> None:
        self.variant.log.leader_pid = action.pid

    def deliver_signal(self, action: Deliver) -> None:
        """The held call ends interrupted: the handler's steps run next, and
        the call is made again after them (as ``SA_RESTART`` has it)."""
        variant = self.variant
        variant.log.delivered.append((action.seq, action.signal))
        position = variant.position
        step = variant.steps[position]
        variant.steps[position : position + 1] = [
            *self.run.handlers.get(action.signal, ()),
            replace(step, signal=0, interrupted=None),
        ]
        variant.state = "ready"


def replay(
    policy: Policy,
    streams: Sequence[Sequence[Step]],
    exit_statuses: Sequence[int | TraceEnd] | None = None,
    seed: int = 0,
    max_events: int = 1_000_000,
    *,
    schedule: Schedule | None = None,
    observer: Observer | None = None,
    steer: bool = False,
    handlers: Mapping[int, Sequence[Step]] | None = None,
) -> ReplayResult:
    """Run one leader (``streams[0]``) and followers over their streams.

    ``exit_statuses`` says how each variant's process ends: an exit status,
    or a :class:`~dmvx.trace.TraceEnd` (exit, or killed by a signal); by
    default every variant exits 0. ``schedule`` picks the interleaving
    (:func:`seeded` with ``seed`` unless given). The run ends at the first
    verdict, when every variant is done, or after ``max_events`` events.

    ``steer`` runs the monitors as real mode does: each process starts with
    a pid (``1000 * (index + 1)``) the leader announces, and followers are
    told the leader's result of the calls they steer (``Execute.expect``),
    waiting for its result note where the leader had not run the call yet.
    The steps' outcomes are given, so nothing is steered here; what the
    monitors say is (see the observer, and the property tests).

    ``handlers`` maps a signal to the steps its handler makes: a step's
    ``signal`` comes to its variant then, and where the monitors deliver it
    the handler's steps run before the interrupted call is made again.
    """
    n = len(streams)
    ends = list(exit_statuses) if exit_statuses is not None else [0] * n
    leader = LeaderMonitor(policy, n, steer=steer)
    monitors: list[LeaderMonitor | FollowerMonitor] = [leader] + [
        FollowerMonitor(policy, i, n, steer=steer) for i in range(1, n)
    ]
    variants = [_Variant(s, ends[i]) for i, s in enumerate(streams)]
    inboxes: list[deque[Message]] = [deque() for _ in range(n)]
    pick = schedule if schedule is not None else seeded(seed)
    run = _Run(variants, inboxes, handlers or {})
    hands = [_Hands(run, i) for i in range(n)]
    max_lead = 0
    cut_short = False

    def carry_out(index: int, actions: list[Action]) -> None:
        hands[index].carry_out(actions)

    if steer:
        for i, (monitor, variant) in enumerate(zip(monitors, variants)):
            variant.log.pid = 1000 * (i + 1)
            carry_out(i, monitor.process_started(variant.log.pid))
    for _ in range(max_events):
        if run.verdict is not None:
            break
        runnable: list[Choice] = [("msg", i) for i in range(n) if inboxes[i]]
        for i, variant in enumerate(variants):
            if variant.state in ("ready", "running"):
                runnable.append(("var", i))
        if not runnable:
            if all(v.state == "ended" for v in variants):
                break
            for i in range(n):  # everyone waits on everyone: the stall timer fires
                actions = monitors[i].stalled()
                carry_out(i, actions)
                if observer is not None:
                    observer.stalled(i, actions)
                if run.verdict is not None:
                    break  # the first verdict ends the run, as everywhere else
            break
        kind, i = pick(runnable)
        monitor, variant = monitors[i], variants[i]
        if kind == "msg":
            message = inboxes[i].popleft()
            actions = monitor.message_received(message)
            carry_out(i, actions)
            if observer is not None:
                observer.received(i, message, actions)
        elif variant.state == "ready":
            if variant.position >= len(variant.steps):
                end = variant.end
                variant.state = "exited"
                if end.how == "exit":
                    actions = monitor.process_exited(end.value)
                    variant.log.exit_status = end.value
                else:
                    actions = monitor.process_killed(end.value)
                    variant.log.exit_status = 128 + end.value
                carry_out(i, actions)
                if observer is not None:
                    observer.ended(i, end, actions)
            else:
                step = variant.steps[variant.position]
                if step.signal and step.interrupted is None:
                    variant.steps[variant.position] = replace(step, signal=0)
                    carry_out(i, monitor.signal_arrived(step.signal))
                    continue
                call = step.call
                variant.state = "waiting"  # until an Execute, Skip or Deliver says otherwise
                variant.log.entered += 1
                actions = monitor.call_entered(call)
                carry_out(i, actions)
                if observer is not None:
                    decision = monitor.last_decision
                    seq = None if decision is not None and decision.route is Route.LOCAL else monitor.seq
                    observer.entered(i, call, decision, seq, actions)
        else:  # running: the call returns
            step = variant.steps[variant.position]
            if step.signal and step.interrupted is not None:
                # The signal ends the running call; a mode drops or holds it
                # (the call goes on) unless the monitor delivers it there.
                variant.steps[variant.position] = replace(step, signal=0, interrupted=None)
                carry_out(i, monitor.signal_arrived(step.signal, step.interrupted))
                continue
            variant.log.executed.append(step.call)
            variant.position += 1
            variant.state = "ready"
            actions = monitor.call_exited(step.outcome)
            carry_out(i, actions)
            if observer is not None:
                observer.returned(i, step.outcome, actions)
        max_lead = max(max_lead, leader.lead())
    else:
        cut_short = run.verdict is None and not all(v.state == "ended" for v in variants)
    for log, monitor in zip((v.log for v in variants), monitors):
        log.routes = monitor.routes
    return ReplayResult(run.verdict, [v.log for v in variants], run.messages, max_lead, run.at_verdict, cut_short)


__all__ = ["Choice", "Observer", "ReplayResult", "Schedule", "Step", "VariantLog", "eager", "replay", "seeded"]
