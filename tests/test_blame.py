"""Who a fault's verdict names (issue 13, item 6): the core decides what a lost part, a killed
process or a silent peer means, whatever mode detected it (dmvx.verdict.Blame, lost, crashed;
the monitors' stalls). Each test fails on the code before that item."""

from __future__ import annotations

from dmvx.actions import Action, FollowerKilled, Halt, Send
from dmvx.calls import KILLED, Call, Outcome
from dmvx.messages import Entry, EntryKind, Report
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Policy
from dmvx.verdict import Blame, Verdict, VerdictKind, lost

GETPID = Call("getpid")
EXECVE = Call("execve", ("/bin/sh", None, None))


def halted(actions: list[Action]) -> Verdict:
    halts = [a for a in actions if isinstance(a, Halt)]
    assert halts, actions
    return halts[-1].verdict


def silent(reporter: int, *whom: int) -> Verdict:
    """A monitor's claim that ``whom`` went silent (as a CONNECTOR or a stall says it)."""
    return lost(whom[0], f"variant {reporter} heard nothing from {whom}", VerdictKind.NO_PROGRESS)


def test_a_cut_link_between_leader_and_follower_is_the_followers_whoever_speaks_first() -> None:
    for order in ((1, 0), (0, 1)):
        blame = Blame()
        claims = {0: silent(0, 1), 1: silent(1, 0)}
        assert blame.add(order[0], claims[order[0]])
        assert not blame.add(order[1], claims[order[1]])
        assert blame.verdict is not None and blame.verdict.odd_one_out == (1,), order


def test_the_leaders_lost_link_is_the_leaders_when_two_followers_lost_it() -> None:
    blame = Blame()
    blame.add(0, silent(0, 2))  # the leader's CONNECTOR noticed follower 2 first
    blame.add(2, silent(2, 0))
    blame.add(1, silent(1, 0))
    assert blame.verdict is not None and blame.verdict.odd_one_out == (0,)


def test_a_stopped_host_makes_no_claim_so_the_others_word_stands() -> None:
    blame = Blame()
    blame.add(1, silent(1, 0))
    assert blame.weighing
    assert blame.verdict is not None and blame.verdict.odd_one_out == (0,)


def test_a_repeated_verdict_is_no_second_claim() -> None:
    blame = Blame()
    claim = silent(0, 2)
    blame.add(0, claim)
    blame.add(1, claim)  # follower 1 halted with the leader's Stop
    blame.add(2, silent(2, 0))
    assert blame.verdict is not None and blame.verdict.odd_one_out == (2,)


def test_a_cause_still_replaces_a_lost_link_and_a_later_silence_changes_no_crash() -> None:
    blame = Blame()
    blame.add(None, lost(1, "the monitor of follower 1 died"))
    blame.add(0, Verdict(VerdictKind.AUTH_FAILURE, 0, detail="tag"))
    assert blame.verdict is not None and blame.verdict.kind is VerdictKind.AUTH_FAILURE
    crash = Verdict(VerdictKind.CRASH, 3, odd_one_out=(1,))
    blame = Blame()
    blame.add(1, crash)
    blame.add(0, silent(0, 1))
    assert blame.verdict == crash and not blame.weighing


def test_a_crash_of_one_of_two_names_the_killed_one() -> None:
    leader = LeaderMonitor(Policy.preset("dmon"), 2)
    leader.call_entered(GETPID)
    leader.message_received(Report("0", 1, GETPID, 1))
    leader.call_exited(Outcome(1))
    # The follower's process died of SIGKILL between its call 1 and its next,
    # which the leader has not reached: a kill sent to the whole tree reaches
    # the leader at its own moment, so the leader, held at its next call, asks
    # its mode to let the same signal land there (FollowerKilled) and judges
    # nothing yet. When it does not come within the stall timeout, the
    # follower is the one that crashed.
    actions = leader.message_received(Report("0", 2, Call(KILLED, (9,)), 1)) + leader.call_entered(GETPID)
    assert FollowerKilled(9) in actions and not [a for a in actions if isinstance(a, Halt)], actions
    verdict = halted(leader.stalled())
    assert verdict.kind is VerdictKind.CRASH and verdict.odd_one_out == (1,), verdict


def test_a_leader_killed_while_the_follower_went_on_is_the_crashed_one() -> None:
    leader = LeaderMonitor(Policy.preset("dmvx"), 2)
    leader.process_killed(9)
    verdict = halted(leader.stalled())  # the follower's heartbeats excuse nothing for an ended process
    assert verdict.kind is VerdictKind.CRASH and verdict.odd_one_out == (0,), verdict


def test_a_follower_killed_while_the_leader_went_on_is_the_crashed_one() -> None:
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    follower.process_killed(9)
    verdict = halted(follower.stalled())
    assert verdict.kind is VerdictKind.CRASH and verdict.odd_one_out == (1,), verdict


def test_a_follower_killed_at_a_held_call_takes_that_calls_entry_quietly() -> None:
    follower = FollowerMonitor(Policy.preset("dmon"), 1, 2)
    follower.call_entered(GETPID)  # reported call 1, held for the leader's answer
    follower.process_killed(9)  # reported as call 2
    late = Entry("0", 1, GETPID, EntryKind.FULL, Outcome(7))
    assert follower.message_received(late) == []  # was a protocol-error verdict


def test_a_leader_killed_at_a_held_call_ignores_that_calls_report() -> None:
    leader = LeaderMonitor(Policy.preset("dmon"), 2)
    leader.call_entered(GETPID)  # held for the follower's report of call 1
    leader.process_killed(9)  # its end is call 2
    actions = leader.message_received(Report("0", 1, GETPID, 1))
    assert not any(isinstance(a, (Halt, Send)) for a in actions), actions  # was no-progress naming nobody
    verdict = halted(leader.stalled())
    assert verdict.kind is VerdictKind.CRASH and verdict.odd_one_out == (0,)
