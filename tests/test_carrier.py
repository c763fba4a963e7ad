"""One dispatcher of a monitor's actions (dmvx.actions.Carrier) for every mode."""

from __future__ import annotations

import pytest

from dmvx.actions import Carrier, Done, Execute, Halt, LeaderPid, Send, Skip, Wait, WaitReason
from dmvx.calls import Outcome
from dmvx.messages import Ack
from dmvx.verdict import Verdict, VerdictKind


class _Log(Carrier):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def execute(self, action: Execute) -> None:
        self.seen.append("execute")

    def skip(self, action: Skip) -> None:
        self.seen.append("skip")

    def send(self, action: Send) -> None:
        self.seen.append("send")

    def halt(self, action: Halt) -> None:
        self.seen.append("halt")

    def done(self, action: Done) -> None:
        self.seen.append("done")


def test_each_action_goes_to_its_method_in_order_and_a_halt_ends_the_answer() -> None:
    hands = _Log()
    verdict = Verdict(VerdictKind.CRASH, 1)
    hands.carry_out(
        [
            Send(0, Ack("0", 1, 1)),
            Wait(WaitReason.ENTRY, 1),
            LeaderPid(7),
            Skip(1, Outcome(0)),
            Execute(2),
            Halt(verdict),
            Execute(3),
        ]
    )
    assert hands.seen == ["send", "skip", "execute", "halt"]
    hands.seen.clear()
    hands.carry_out([Done(0), Execute(4)])
    assert hands.seen == ["done"]


def test_a_mode_that_forgets_a_required_action_fails_loudly() -> None:
    class Lazy(Carrier):
        pass

    with pytest.raises(NotImplementedError):
        Lazy().carry_out([Execute(1)])


def test_replay_sim_and_real_mode_carry_out_through_it() -> None:
    from dmvx.replay import _Hands
    from realmode.tracer.process import Hands
    from sim.engine import Variant

    assert all(issubclass(cls, Carrier) for cls in (_Hands, Hands, Variant))
