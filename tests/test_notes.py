"""Pid and result notes, and steering: protocol meaning the core decides.

Real mode maps each follower's pids to the leader's and steers a follower's
own run of a call towards the leader's result where only timing could make
the two differ. Which message says what, who waits for it and which result
a follower steers towards are the monitors' answers (``steer=True``), so
replay drives them too and the property tests cover them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core_streams import streams
from dmvx import codec
from dmvx.actions import Action, Execute, Halt, LeaderKilled, LeaderPid, Send, Wait, WaitReason
from dmvx.calls import Call, Outcome
from dmvx.messages import ClockNote, Entry, EntryKind, Message, PidNote, ResultNote
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Decision, Policy
from dmvx.replay import Observer, Step, replay
from dmvx.states import FollowerState

WAIT4 = Call("wait4", (-1, None, 0, None))


def sent(action: Action) -> Message:
    """What a :class:`Send` action sends (the test fails on anything else)."""
    assert isinstance(action, Send), action
    return action.message


def sent_entry(action: Action) -> Entry:
    """The entry a :class:`Send` action sends."""
    message = sent(action)
    assert isinstance(message, Entry), message
    return message


def test_the_leader_announces_its_pid_and_a_follower_maps_to_it() -> None:
    policy = Policy.preset("dmvx")
    leader, follower = LeaderMonitor(policy, 2, steer=True), FollowerMonitor(policy, 1, 2, steer=True)
    [send] = leader.process_started(4321)
    assert send == Send(-1, PidNote("0", 4321))
    assert follower.process_started(999) == []  # a follower's own pid is not news
    assert follower.message_received(send.message) == [LeaderPid(4321)]
    assert follower.leader_pid == 4321


def test_a_leader_refuses_notes() -> None:
    leader = LeaderMonitor(Policy.preset("dmvx"), 2)
    [_, halt] = leader.message_received(ResultNote("0", 1, 5))
    assert isinstance(halt, Halt) and "ResultNote" in halt.verdict.detail


def _released_wait4(steer: bool) -> tuple[LeaderMonitor, FollowerMonitor, list]:
    """Under dmon, both variants reach a wait4 (every variant reaps its own
    children); the leader releases it with GO."""
    policy = Policy.preset("dmon")
    leader, follower = LeaderMonitor(policy, 2, steer=steer), FollowerMonitor(policy, 1, 2, steer=steer)
    [report, _] = follower.call_entered(WAIT4)
    leader.call_entered(WAIT4)
    released = leader.message_received(sent(report))
    assert released[-1] == Execute(1)
    go = sent_entry(released[0])
    assert go.kind is EntryKind.GO
    return leader, follower, follower.message_received(go)


def test_a_go_released_wait4_waits_for_the_leaders_result_then_steers_to_it() -> None:
    leader, follower, actions = _released_wait4(steer=True)
    assert actions == [Wait(WaitReason.NOTE, 1, (0,))]
    assert follower._state is FollowerState.NOTE_WAIT
    [note] = leader.call_exited(Outcome(4242))
    assert note == Send(-1, ResultNote("0", 1, 4242))
    assert follower.message_received(note.message) == [Execute(1, 4242)]


def test_a_note_that_comes_first_is_kept_for_the_call() -> None:
    policy = Policy.preset("dmon")
    follower = FollowerMonitor(policy, 1, 2, steer=True)
    assert follower.message_received(ResultNote("0", 1, 9)) == []
    follower.call_entered(WAIT4)
    assert follower.message_received(Entry("0", 1, WAIT4, EntryKind.GO)) == [Execute(1, 9)]


def test_without_steering_nothing_changes() -> None:
    leader, _, actions = _released_wait4(steer=False)
    assert actions == [Execute(1)]
    assert leader.call_exited(Outcome(4242)) == []


def test_an_asynchronous_entry_tells_the_follower_the_result_to_steer_to() -> None:
    policy = Policy.preset("dmvx")
    for steer, expected in ((True, Execute(1, 2)), (False, Execute(1))):
        leader, follower = LeaderMonitor(policy, 2, steer=steer), FollowerMonitor(policy, 1, 2, steer=steer)
        leader.call_entered(WAIT4)
        decision = leader.last_decision
        assert isinstance(decision, Decision) and not decision.sync
        [entry] = leader.call_exited(Outcome(2))
        assert follower.call_entered(WAIT4) == [Wait(WaitReason.ENTRY, 1, (0,))]
        assert follower.message_received(sent(entry)) == [expected]


def test_notes_round_trip_through_the_codec() -> None:
    for message in (PidNote("0.1", 31337), ResultNote("0.2", 7, -32), ClockNote("0.3", 1, 1_234_567_890_123)):
        assert codec.loads(codec.dumps(message)) == message


class _Expectations(Observer):
    """Every result a follower is told to steer to, against the leader's."""

    def __init__(self) -> None:
        self.leader: dict[int, int] = {}
        self.seq: dict[int, int | None] = {}
        self.told: list[tuple[int, int | None, int]] = []  # variant, seq, expect

    def _look(self, variant: int, actions: list) -> None:
        for action in actions:
            if isinstance(action, Execute) and action.expect is not None:
                assert variant != 0
                self.told.append((variant, action.seq, action.expect))

    def entered(self, variant, call, decision, seq, actions) -> None:
        self.seq[variant] = seq
        self._look(variant, actions)

    def received(self, variant, message, actions) -> None:
        self._look(variant, actions)

    def returned(self, variant, outcome, actions) -> None:
        seq = self.seq.get(variant)
        if variant == 0 and seq is not None:
            self.leader[seq] = outcome.result
        self._look(variant, actions)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), preset=st.sampled_from(["dmvx", "dmon"]), n=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_steering_monitors_agree_and_tell_only_the_leaders_results(
    stream: list[Step], preset: str, n: int, seed: int
) -> None:
    """Identical variants under steering: no divergence, every follower
    learns the leader's pid, and every result a follower is told to steer
    to is the one the leader's own call returned at that point."""
    seen = _Expectations()
    result = replay(Policy.preset(preset), [stream] * n, seed=seed, observer=seen, steer=True)
    assert result.ok, result.verdict and result.verdict.summary()
    assert all(log.leader_pid == result.logs[0].pid for log in result.logs[1:])
    for variant, seq, expect in seen.told:
        assert seq in seen.leader and expect == seen.leader[seq], (variant, seq, expect)


def test_a_leader_killed_by_a_signal_asks_the_follower_s_mode_to_let_it_land() -> None:
    """The leader's ``<killed>`` entry: the core says so first (LeaderKilled),
    then handles the entry as any other; an exit entry asks nothing."""
    policy = Policy.preset("dmvx")
    for kill in (True, False):
        leader, follower = LeaderMonitor(policy, 2, steer=True), FollowerMonitor(policy, 1, 2, steer=True)
        assert isinstance(follower.call_entered(WAIT4)[-1], Wait)  # held at call 1
        ended = leader.process_killed(15) if kill else leader.process_exited(0)
        entry = sent_entry(ended[0])
        actions = follower.message_received(entry)
        assert (actions[:1] == [LeaderKilled(15)]) is kill
        assert not any(isinstance(a, LeaderKilled) for a in actions[1:])
