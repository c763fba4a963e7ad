"""The one outcome vocabulary (dmvx/outcome.py) and who speaks it."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import pytest

from dmvx.outcome import EXPECTABLE, Ending, Expectation, ending_of
from dmvx.scenario import Expect
from dmvx.verdict import Verdict, VerdictKind


def test_a_verdict_decides_divergence_or_rejection_and_no_verdict_ok_or_missed() -> None:
    assert ending_of(Verdict(VerdictKind.CRASH, 3), attacked=True) is Ending.DIVERGENCE
    assert ending_of(Verdict(VerdictKind.AUTH_FAILURE, 3), attacked=True) is Ending.REJECTED
    assert ending_of(None, attacked=True) is Ending.MISSED
    assert ending_of(None, attacked=False) is Ending.OK
    assert {e for e in Ending if e.stopped} == {Ending.DIVERGENCE, Ending.REJECTED}


def test_the_expectation_checks_the_ending_then_the_kind_then_the_effect() -> None:
    crash = Verdict(VerdictKind.CRASH, 3)
    assert Expectation(Ending.DIVERGENCE).met_by(Ending.DIVERGENCE, crash)
    assert not Expectation(Ending.OK).met_by(Ending.DIVERGENCE, crash)
    assert Expectation(Ending.DIVERGENCE, VerdictKind.CRASH).met_by(Ending.DIVERGENCE, VerdictKind.CRASH)
    assert not Expectation(Ending.DIVERGENCE, VerdictKind.ARG_MISMATCH).met_by(Ending.DIVERGENCE, crash)
    assert not Expectation(Ending.MISSED, VerdictKind.CRASH).met_by(Ending.MISSED, None)
    # The effect counts only where the scenario names one.
    assert Expectation(Ending.MISSED).met_by(Ending.MISSED, None, effect=True)
    assert Expectation(Ending.MISSED, effect=True).met_by(Ending.MISSED, None, effect=True)
    assert not Expectation(Ending.MISSED, effect=True).met_by(Ending.MISSED, None, effect=False)
    assert not Expectation(Ending.DIVERGENCE, effect=False).met_by(Ending.DIVERGENCE, crash, effect=None)
    # An error is never what a file expects.
    assert not any(Expectation(e).met_by(Ending.ERROR, None) for e in EXPECTABLE)


def test_scenario_files_and_the_labs_speak_the_core_vocabulary() -> None:
    from dmvx.lab.labs import lab2, lab5

    field = Expect.model_fields["verdict"].annotation
    assert set(typing.get_args(field)) == {e.value for e in EXPECTABLE}
    assert lab2.OUTCOMES == lab5.OUTCOMES == tuple(e.value for e in EXPECTABLE)


@dataclass
class _Agents:
    verdict: Verdict | None
    error: str | None = None
    unsupported: str | None = None


@pytest.mark.parametrize(
    "agents,attack,expect,ending,as_expected",
    [
        (_Agents(None), False, ("ok", None), Ending.OK, True),
        (_Agents(None), True, ("divergence", None), Ending.MISSED, False),
        (_Agents(Verdict(VerdictKind.CRASH, 2)), True, ("divergence", "crash"), Ending.DIVERGENCE, True),
        (_Agents(Verdict(VerdictKind.CRASH, 2)), True, ("divergence", "arg-mismatch"), Ending.DIVERGENCE, False),
        (_Agents(Verdict(VerdictKind.AUTH_FAILURE, 2)), True, ("rejected", None), Ending.REJECTED, True),
        (_Agents(None, error="boom"), False, ("ok", None), Ending.ERROR, False),
        (None, False, None, Ending.ERROR, None),
    ],
)
def test_real_mode_ends_and_checks_as_the_core_says(
    agents: _Agents | None,
    attack: bool,
    expect: tuple[str, str | None] | None,
    ending: Ending,
    as_expected: bool | None,
) -> None:
    """realmode/net/experiment.py's result uses the core's rule, not a copy."""
    from types import SimpleNamespace

    from realmode.net.experiment import NetResult

    config = SimpleNamespace(attack=object() if attack else None, expect=expect)
    result = NetResult.__new__(NetResult)
    result.config, result.outcome = config, agents  # type: ignore[assignment]
    assert result.ending is ending and result.outcome_label == ending.value
    assert result.as_expected is as_expected
