"""Sim results are typed values (sim/report.py), read without string keys;
a suite reads each scenario file once (dmvx/suitefiles.py)."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from dmvx.outcome import Ending, Expectation
from dmvx.verdict import VerdictKind
from sim import cli_entry
from sim.report import AttackReport, MicrobenchLoad, PointReport

REPO = Path(__file__).resolve().parent.parent
ATTACK = REPO / "scenarios" / "attacks" / "stack-overflow.yml"


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


@pytest.fixture(scope="module")
def attacked() -> list[PointReport]:
    return cli_entry.run(ATTACK, seed=None, overrides={}, plot=None, console=quiet()).points


def test_an_attack_run_reports_typed_frozen_points(attacked: list[PointReport]) -> None:
    by_setting = {p.labels["setting"]: p for p in attacked}
    identical, aslr = by_setting["identical"], by_setting["aslr"]
    assert identical.outcome is Ending.MISSED and identical.verdict is None
    assert isinstance(identical.attack, AttackReport) and identical.attack.first_harm is not None
    assert identical.effect is True and identical.expected == Expectation(Ending.MISSED, None, True)
    assert aslr.outcome is Ending.DIVERGENCE and aslr.verdict is not None
    assert aslr.verdict.verdict.kind is VerdictKind.CRASH and aslr.as_expected is True
    assert aslr.attack is not None and aslr.attack.detection is not None and not aslr.attack.harmful_before_verdict
    with pytest.raises(dataclasses.FrozenInstanceError):
        aslr.outcome = Ending.OK  # type: ignore[misc]


def test_the_json_of_a_point_is_written_from_its_typed_values(attacked: list[PointReport]) -> None:
    point = next(p for p in attacked if p.verdict is not None)
    doc = point.to_json()
    assert point.verdict is not None
    assert doc["outcome"] == point.outcome.value == "divergence"
    assert doc["verdict"]["kind"] == "crash" and doc["verdict"]["by"] == point.verdict.by_name
    assert doc["attack"]["harmful_before_verdict"] is False and doc["effect"] is False
    assert doc["expected"] == {"verdict": "divergence", "kind": "crash", "effect": False}
    assert set(doc["lead"]) == {lead.name for lead in point.lead} == {"follower 1"}


def test_a_point_without_attack_writes_no_effect() -> None:
    result = cli_entry.run(
        REPO / "scenarios" / "default.yml",
        seed=None,
        plot=None,
        console=quiet(),
        overrides={"workload.iterations": "200", "policy.preset": "dmvx"},
    )
    (point,) = result.points
    assert isinstance(point.workload, MicrobenchLoad) and point.attack is None and point.outcome is Ending.OK
    doc = point.to_json()
    assert "effect" not in doc and doc["expected"] == {"verdict": "ok", "kind": None}
    assert doc["mvx"]["slowdown"] == point.mvx.slowdown > 1


@pytest.mark.parametrize("module", ["table", "plot", "results", "attacks", "cli_entry", "runner"])
def test_the_renderers_read_no_report_by_string_key(module: str) -> None:
    """Reports are read through attributes: no ``point["mvx"]``-style access
    (the labels, whose keys are the swept parameters, are data)."""
    text = (REPO / "sim" / f"{module}.py").read_text()
    keyed = re.findall(
        r"\b(point|p|report|mvx|native|attack|a|verdict|w|pol|m|n|lead|d|h|r|v|s|c|stats|cb)"
        r"\[\s*[\"'][a-z_]+[\"']\s*\]",
        text,
    )
    assert keyed == []


def test_a_suite_reads_each_scenario_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = (REPO / "scenarios" / "default.yml").read_text()
    scenario = scenario.replace("iterations: 20000", "iterations: 100")
    (tmp_path / "a.yml").write_text(scenario)
    (tmp_path / "b.yml").write_text("workload: [not, a, mapping\n")
    import dmvx.yamlfile

    reads: list[str] = []
    real = dmvx.yamlfile.parse_yaml

    def counting(raw: bytes | str, *, file: str, expect_mapping: bool = True) -> dmvx.yamlfile.YamlDocument:
        if Path(file).parent == tmp_path:
            reads.append(Path(file).name)
        return real(raw, file=file, expect_mapping=expect_mapping)

    monkeypatch.setattr(dmvx.yamlfile, "parse_yaml", counting)
    result = cli_entry.suite(tmp_path, console=quiet())
    assert sorted(reads) == ["a.yml", "b.yml"]
    (a, b) = result.results
    assert a.error is None and a.result is not None and len(a.result.points) == 2
    assert b.result is None and b.error is not None and "b.yml" in b.error
