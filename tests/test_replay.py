"""The in-memory driver (:mod:`dmvx.replay`) and the lab watcher that logs it.

``dmvx lab watch`` has no loop of its own: it is the driver under the
:func:`~dmvx.replay.eager` schedule with an observer that writes a line per
event. These tests hold the two to each other (same verdict, the same calls
run, every event of the driver logged) and pin what the driver does at its
edges: a killed variant, a stall, a run cut short.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dmvx.actions import Action
from dmvx.calls import Call, Outcome
from dmvx.lab import watch as lab_watch
from dmvx.lab.watch import watch
from dmvx.messages import Message
from dmvx.policy import Decision, Policy
from dmvx.replay import Observer, Step, eager, replay
from dmvx.trace import TraceCall, TraceEnd, TraceEvent, read_trace
from dmvx.verdict import VerdictKind

DIVERGE = Path(__file__).resolve().parent.parent / "scenarios" / "labs" / "lab1-diverge.jsonl"
GETPID = Step(Call("getpid"), Outcome(4242))
READ = TraceCall(Call("read", (0, 64)), Outcome(2, ((1, b"hi"),)))


class Recorder(Observer):
    """Counts the driver's events per (variant, kind); ignores stalls."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[int, str]] = Counter()

    def received(self, variant: int, message: Message, actions: list[Action]) -> None:
        self.seen[variant, "receives"] += 1

    def entered(
        self, variant: int, call: Call, decision: Decision | None, seq: int | None, actions: list[Action]
    ) -> None:
        self.seen[variant, "enters"] += 1

    def returned(self, variant: int, outcome: Outcome, actions: list[Action]) -> None:
        self.seen[variant, "returns"] += 1

    def ended(self, variant: int, end: TraceEnd, actions: list[Action]) -> None:
        self.seen[variant, "exits" if end.how == "exit" else "killed"] += 1


@pytest.mark.parametrize("preset", ["dmvx", "dmon"])
@pytest.mark.parametrize("n", [2, 3])
def test_watcher_and_replay_agree_on_a_divergence(preset: str, n: int) -> None:
    """The lab's divergent trace: the watcher finds the verdict every random
    schedule of the driver finds, and logs exactly the driver's events."""
    policy = Policy.preset(preset)
    events = read_trace(DIVERGE).streams
    watched = watch(policy, events, n)

    # As the watcher does: a variant the trace has no events for replays the leader's.
    own = [events.get(i) or events[0] for i in range(n)]
    streams = [[Step(e.call, e.outcome) for e in mine if isinstance(e, TraceCall)] for mine in own]
    ends = [next(e for e in mine if isinstance(e, TraceEnd)) for mine in own]
    recorder = Recorder()
    eager_run = replay(policy, streams, ends, schedule=eager, observer=recorder)
    assert watched.verdict is not None and watched.verdict == eager_run.verdict
    assert (watched.verdict.kind, watched.verdict.seq) == (VerdictKind.OUTPUT_MISMATCH, 14)
    for seed in range(40):
        assert replay(policy, streams, ends, seed=seed).verdict == watched.verdict, f"seed {seed}"

    assert watched.ran == [log.executed for log in eager_run.logs]
    assert watched.messages == eager_run.messages
    logged = Counter((e.variant, e.what.split()[0]) for e in watched.events)
    assert logged == recorder.seen
    for index, log in enumerate(eager_run.logs):
        assert recorder.seen[index, "enters"] == log.entered
        assert recorder.seen[index, "returns"] == len(log.executed)


def test_a_stall_ends_at_the_first_verdict() -> None:
    """Three variants, one of which never makes its call and the leader exits
    with another status: nothing can move, the stall timers fire, and the
    leader's verdict ends the run. The followers' timers would blame the
    leader for a silence that the verdict itself caused; they are not shown."""
    events: dict[int, list[TraceEvent]] = {
        0: [READ, TraceEnd("exit", 3)],
        1: [READ, TraceEnd("exit", 0)],
        2: [TraceEnd("exit", 0)],
    }
    watched = watch(Policy.preset("dmvx"), events, 3)
    assert watched.verdict is not None and watched.verdict.kind is VerdictKind.EXIT_STATUS
    verdict_lines = [e for e in watched.events if "VERDICT" in e.actions]
    assert verdict_lines == [watched.events[-1]]
    assert verdict_lines[0].what == "stalls" and verdict_lines[0].variant == 0
    assert watched.verdict.summary() in verdict_lines[0].actions


def test_a_killed_variant_is_a_crash_under_any_schedule() -> None:
    for seed in range(20):
        result = replay(Policy.preset("dmvx"), [[GETPID], [GETPID]], [0, TraceEnd("killed", 11)], seed=seed)
        assert result.verdict is not None and result.verdict.kind is VerdictKind.CRASH, f"seed {seed}"
        assert result.logs[1].exit_status in (None, 128 + 11)


def test_a_run_out_of_events_is_cut_short_not_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    streams = [[GETPID] * 10] * 2
    short = replay(Policy.preset("dmvx"), streams, max_events=5)
    assert short.cut_short and not short.ok and short.verdict is None
    whole = replay(Policy.preset("dmvx"), streams)
    assert whole.ok and not whole.cut_short

    monkeypatch.setattr(lab_watch, "MAX_EVENTS", 5)
    events: dict[int, list[TraceEvent]] = {0: [TraceCall(GETPID.call, GETPID.outcome)] * 10 + [TraceEnd("exit", 0)]}
    watched = watch(Policy.preset("dmvx"), events)
    assert watched.cut_short and len(watched.events) == 5
