"""An in-memory driver: run N monitors over recorded call streams.

This is the smallest possible mode. Each variant is a list of steps (the
call it makes and the outcome it would get by running it itself); messages
are delivered instantly, in order per link; the interleaving of variants and
deliveries is chosen by a seeded random generator, so one seed is one
schedule and many seeds explore many. It serves the property tests of the
core, and replaying a real-mode trace through the core to explain a verdict.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

from dmvx.actions import EVERYONE, Done, Execute, Halt, Send, Skip, Wait
from dmvx.calls import Call, Outcome
from dmvx.messages import Message
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Policy
from dmvx.verdict import Verdict


@dataclass(frozen=True, slots=True)
class Step:
    """One call of a variant and the outcome it gets if it runs it."""

    call: Call
    outcome: Outcome = Outcome(0)


@dataclass
class VariantLog:
    """What happened to one variant during a replay."""

    executed: list[Call] = field(default_factory=list)   # calls it ran natively
    skipped: list[Call] = field(default_factory=list)    # calls fed from the leader
    entered: int = 0
    done: bool = False
    exit_status: int | None = None


@dataclass
class ReplayResult:
    verdict: Verdict | None
    logs: list[VariantLog]
    messages: int
    max_lead: int
    verdict_at_entered: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict is None and all(log.done for log in self.logs)


class _Variant:
    __slots__ = ("steps", "position", "state", "exit_status", "log")

    def __init__(self, steps: Sequence[Step], exit_status: int) -> None:
        self.steps = steps
        self.position = 0
        self.state = "ready"  # ready | waiting | running | exited | ended
        self.exit_status = exit_status
        self.log = VariantLog()


def replay(
    policy: Policy,
    streams: Sequence[Sequence[Step]],
    exit_statuses: Sequence[int] | None = None,
    seed: int = 0,
    max_events: int = 1_000_000,
) -> ReplayResult:
    """Run one leader (``streams[0]``) and followers over their streams."""
    n = len(streams)
    statuses = list(exit_statuses) if exit_statuses is not None else [0] * n
    monitors = [LeaderMonitor(policy, n)] + [FollowerMonitor(policy, i, n) for i in range(1, n)]
    variants = [_Variant(s, statuses[i]) for i, s in enumerate(streams)]
    inboxes: list[deque[Message]] = [deque() for _ in range(n)]
    rng = random.Random(seed)
    verdict: Verdict | None = None
    messages = 0
    max_lead = 0
    at_verdict: list[int] = []

    def carry_out(index: int, actions: list) -> None:
        nonlocal verdict, messages
        variant = variants[index]
        for action in actions:
            if isinstance(action, Execute):
                variant.state = "running"
            elif isinstance(action, Skip):
                variant.log.skipped.append(variant.steps[variant.position].call)
                variant.position += 1
                variant.state = "ready"
            elif isinstance(action, Send):
                targets = [i for i in range(n) if i != index] if action.to == EVERYONE else [action.to]
                for target in targets:
                    inboxes[target].append(action.message)
                    messages += 1
            elif isinstance(action, Halt):
                if verdict is None:
                    verdict = action.verdict
                    at_verdict.extend(v.log.entered for v in variants)
            elif isinstance(action, Done):
                variant.log.done = True
                variant.state = "ended"
            elif isinstance(action, Wait):
                pass

    for _ in range(max_events):
        if verdict is not None:
            break
        runnable = [("msg", i) for i in range(n) if inboxes[i]]
        for i, variant in enumerate(variants):
            if variant.state in ("ready", "running"):
                runnable.append(("var", i))
        if not runnable:
            if all(v.state == "ended" for v in variants):
                break
            for i in range(n):  # everyone waits on everyone: the stall timer fires
                carry_out(i, monitors[i].stalled())
                if verdict is not None:
                    break
            break
        kind, i = rng.choice(runnable)
        monitor, variant = monitors[i], variants[i]
        if kind == "msg":
            carry_out(i, monitor.message_received(inboxes[i].popleft()))
        elif variant.state == "ready":
            if variant.position >= len(variant.steps):
                variant.state = "exited"
                carry_out(i, monitor.process_exited(variant.exit_status))
                variant.log.exit_status = variant.exit_status
            else:
                variant.state = "waiting"
                variant.log.entered += 1
                carry_out(i, monitor.call_entered(variant.steps[variant.position].call))
        else:  # running: the call returns
            step = variant.steps[variant.position]
            variant.log.executed.append(step.call)
            variant.position += 1
            variant.state = "ready"
            carry_out(i, monitor.call_exited(step.outcome))
        leader = monitors[0]
        assert isinstance(leader, LeaderMonitor)
        max_lead = max(max_lead, leader.lead())
    return ReplayResult(verdict, [v.log for v in variants], messages, max_lead, at_verdict)
