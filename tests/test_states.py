"""The monitors' states: one enum and one transition table each
(:mod:`dmvx.states`); a move the table does not list raises."""

from __future__ import annotations

from enum import Enum

import pytest

from dmvx.actions import Done, Halt
from dmvx.calls import Call
from dmvx.messages import Entry, EntryKind, Report
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Policy
from dmvx.replay import Step, replay
from dmvx.states import (
    FOLLOWER_TRANSITIONS,
    LEADER_TRANSITIONS,
    FollowerState,
    InvalidTransition,
    LeaderState,
    install,
    move,
)

EXIT_CALL = Call("exit_group", (0,))


def test_every_state_has_one_row_and_only_done_is_final() -> None:
    for table, enum in ((LEADER_TRANSITIONS, LeaderState), (FOLLOWER_TRANSITIONS, FollowerState)):
        assert set(table) == set(enum)
        finals = {state for state, successors in table.items() if not successors}
        assert finals <= {enum.DONE, getattr(enum, "VOTING", enum.DONE)}


def test_a_table_missing_a_state_is_refused() -> None:
    class Light(Enum):
        RED = "red"
        GREEN = "green"

    with pytest.raises(ValueError, match="green"):
        install({Light.RED: (Light.RED,)})


def test_move_raises_a_typed_error_naming_the_machine_and_both_states() -> None:
    assert move("leader monitor", LeaderState.RUNNING, LeaderState.EXECUTING) is LeaderState.EXECUTING
    with pytest.raises(InvalidTransition, match="leader monitor: no transition from 'done' to 'executing'"):
        move("leader monitor", LeaderState.DONE, LeaderState.EXECUTING)


def test_a_follower_that_finished_cannot_run_another_call() -> None:
    """Once the leader agreed to the end, a call entered is a mode's bug: the
    monitor says so instead of running it in a state nobody designed."""
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    follower.process_exited(0)
    actions = follower.message_received(Entry("0", 1, Call("exit", (0,)), EntryKind.GO))
    assert actions == [Done(0)] and follower.finished
    with pytest.raises(InvalidTransition):
        follower.call_entered(Call("getpid"))


def test_a_leader_voting_stays_voting_until_the_verdict() -> None:
    policy = Policy.preset("dmvx")
    leader = LeaderMonitor(policy, 3)
    leader.call_entered(Call("execve", ("/bin/sh", None, None)))
    leader.message_received(Report("0", 1, Call("execve", ("/bin/ls", None, None)), 1))
    assert leader._state is LeaderState.VOTING
    # Nothing runs while the vote is open: the next event waits or decides.
    actions = leader.message_received(Report("0", 1, Call("execve", ("/bin/sh", None, None)), 2))
    assert any(isinstance(a, Halt) for a in actions)


@pytest.mark.parametrize("preset", ["dmvx", "dmon"])
def test_replays_end_in_done_through_listed_moves_only(preset: str) -> None:
    steps = [Step(Call("getpid")), Step(Call("write", (1, b"hi", 2))), Step(Call("getppid"))] * 5
    for seed in range(20):
        result = replay(Policy.preset(preset), [steps, steps, steps], seed=seed)
        assert result.ok, (seed, result.verdict)
