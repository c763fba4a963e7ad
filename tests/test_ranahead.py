"""What the leader ran before a verdict (dmvx.ranahead, LeaderMonitor.unconfirmed):
the message says which calls ran and what they wrote, not that nothing ran."""

from __future__ import annotations

from dmvx.actions import Execute
from dmvx.calls import Call, Outcome
from dmvx.messages import Ack, Report
from dmvx.monitor import LeaderMonitor
from dmvx.policy import Policy
from dmvx.ranahead import RanAhead

WRITE = Call("write", (1, b"ok\n", 3))


def _leader(preset: str = "dmvx") -> LeaderMonitor:
    leader = LeaderMonitor(Policy.preset(preset), 2)
    for call, result in ((Call("getpid"), 7), (WRITE, 3), (Call("sendto", (4, b"x" * 10, 10, 0, None, 0)), 10)):
        leader.call_entered(call)
        leader.call_exited(Outcome(result))
    return leader


def test_the_leader_knows_what_ran_unconfirmed_under_asynchronous_replication() -> None:
    leader = _leader("dmvx")
    assert [(seq, call.name, o and o.result) for seq, call, o in leader.unconfirmed()] == [
        (1, "getpid", 7),
        (2, "write", 3),
        (3, "sendto", 10),
    ]
    leader.message_received(Ack("0", 2, 1))  # the follower confirmed up to the write
    assert [seq for seq, _, _ in leader.unconfirmed()] == [3]
    leader.call_entered(Call("write", (2, b"half", 4)))  # still running when the verdict comes
    assert [(seq, o) for seq, _, o in leader.unconfirmed()] == [(3, Outcome(10)), (4, None)]


def test_nothing_runs_unconfirmed_in_lockstep() -> None:
    leader = LeaderMonitor(Policy.preset("dmon"), 2)
    leader.call_entered(WRITE)
    assert leader.unconfirmed() == ()  # held until the follower reports the same call
    assert leader.message_received(Report("0", 1, WRITE, 1))[-1] == Execute(1)
    leader.call_exited(Outcome(3))
    assert leader.unconfirmed() == ()  # the follower had agreed before it ran


def test_the_summary_says_which_calls_ran_and_what_left_the_process() -> None:
    ran = RanAhead.gather([("0", _leader("dmvx").unconfirmed()), ("0.1", ((9, WRITE, Outcome(3)),))])
    assert ran.written() == {1: 6, 4: 10}
    line = ran.summary(2, WRITE)
    assert line.startswith("the leader ran 4 calls the followers had not confirmed")
    assert "write x2" in line and "the call at the verdict among them" in line
    assert "6 bytes to fd 1, 10 bytes to fd 4" in line
    assert "did not run" in ran.summary(5, Call("execve", ("/bin/sh",)))
    assert RanAhead.from_dict(ran.to_dict()) == ran
    assert RanAhead().summary(3, WRITE) == "every variant was stopped before the call ran."
    failed = RanAhead.gather([("0", ((1, WRITE, Outcome(-32)), (2, WRITE, None)))])
    assert failed.written() == {} and "none of them wrote" in failed.summary(1, WRITE)
