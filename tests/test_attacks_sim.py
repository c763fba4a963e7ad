"""The attack scenarios in sim mode, their file format, and the cross-mode
comparison (issue 6, items 4 and 5). No root needed.

Each file of ``scenarios/attacks`` runs in sim mode once per diversity
setting and must end as its ``expect.sim`` says, effect included. The
format tests check the ``diversity``/``setting``/``exploit``/``effect``
additions to the scenario schema; the comparison tests check that the suite
calls any difference between the modes a failure.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from dmvx.attacktable import BothModesResult, Cell, disagreements
from dmvx.cli import cli
from dmvx.errors import InputError
from dmvx.exitstatus import ExitStatus
from dmvx.scenario import Expect, NotRun, load_scenario
from dmvx.verdict import VerdictKind
from sim.attacks import sim_cells
from sim.cli_entry import AttackSuiteResult, run, suite

ATTACKS = Path(__file__).resolve().parent.parent / "scenarios" / "attacks"
FILES = sorted(ATTACKS.glob("*.yml"))
SETTINGS = ("identical", "aslr", "disjoint", "abi", "isa")


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_every_attack_file_lists_every_setting_for_both_modes() -> None:
    assert len(FILES) >= 7
    kinds = set()
    for path in FILES:
        scenario = load_scenario(path)
        assert scenario.diversity is not None and tuple(scenario.diversity) == SETTINGS, path.name
        for name, setting in scenario.diversity.items():
            assert isinstance(setting.expect.sim, Expect), (path.name, name)
            assert isinstance(setting.expect.real, (Expect, NotRun)), (path.name, name)
        assert isinstance(scenario.diversity["isa"].expect.real, NotRun)  # no aarch64 host here
        assert scenario.attack is not None, path.name
        kinds.add(scenario.attack.kind)
    assert kinds == {
        "rop-absolute",
        "relative-rop",
        "pointer-leak",
        "data-only",
        "record-forgery",
        "connector-forgery",
        "connector-replay",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_attack_file_in_sim_mode(path: Path) -> None:
    result = run(path, seed=None, overrides={}, plot=None, console=quiet())
    scenario = load_scenario(path)
    cells = sim_cells(str(path), result.points, scenario)
    assert [c.setting for c in cells] == list(SETTINGS)
    for cell in cells:
        assert cell.as_expected, f"{cell.setting}: expected {cell.expected}, found {cell.found()}: {cell.detail}"
        if cell.outcome == "divergence" or cell.outcome == "rejected":
            assert cell.latency_s is not None and 0 < cell.latency_s < 0.1


def test_the_table_of_design_section_3() -> None:
    """Absolute addresses: caught by any address diversity; relative
    offsets and data-only: only by ABI (or ISA) diversity; pointer leaks:
    by output comparison; CONNECTOR traffic: by authentication."""
    found = {}
    for path in FILES:
        result = run(path, seed=None, overrides={}, plot=None, console=quiet())
        for point in result.points:
            verdict = point.verdict
            found[path.stem, point.labels["setting"]] = verdict.verdict.kind.value if verdict else point.outcome.value
    for attack in ("stack-overflow", "heap-overflow"):
        assert [found[attack, s] for s in SETTINGS] == ["missed", "crash", "crash", "crash", "crash"]
    # Another ABI of the same ISA lands inside admin_reply and calls execve
    # with an argv it does not have; another ISA has other code there.
    assert [found["partial-overwrite", s] for s in SETTINGS] == ["missed", "missed", "missed", "arg-mismatch", "crash"]
    assert [found["struct-overflow", s] for s in SETTINGS] == ["missed", "missed", "missed", "call-mismatch", "missed"]
    assert [found["format-string", s] for s in SETTINGS] == ["missed"] + ["output-mismatch"] * 4
    for attack in ("connector-forgery", "connector-replay"):
        assert {found[attack, s] for s in SETTINGS} == {"auth-failure"}
    # A compromised leader's lie in its in-process ring: no diversity helps;
    # its answer differs from the followers' and is caught, after it left.
    assert {found["record-forgery", s] for s in SETTINGS} == {"output-mismatch"}


@pytest.mark.parametrize("relaxation,effect", [("socket-ro", False), ("socket-rw", True)])
def test_whether_the_leak_leaves_depends_on_socket_writes_in_lockstep(relaxation: str, effect: bool) -> None:
    path = ATTACKS / "format-string.yml"
    result = run(
        path, seed=None, overrides={"setting": "aslr", "policy.relaxation": relaxation}, plot=None, console=quiet()
    )
    (point,) = result.points
    assert point.verdict is not None and point.verdict.verdict.kind is VerdictKind.OUTPUT_MISMATCH
    assert point.effect is effect
    assert point.attack is not None and point.attack.harmful_before_verdict is effect


def test_an_effect_that_does_not_happen_fails_the_file(tmp_path: Path) -> None:
    copy = _copy(tmp_path, "stack-overflow.yml")
    text = copy.read_text()
    # ASLR stops the shell; a file claiming it runs must fail.
    copy.write_text(
        text.replace(
            """      sim: {verdict: divergence, kind: crash, effect: false}
      real: {verdict: divergence, kind: crash, effect: false}
  disjoint:""",
            """      sim: {verdict: divergence, kind: crash, effect: true}
      real: {verdict: divergence, kind: crash, effect: false}
  disjoint:""",
        )
    )
    result = suite(copy, console=quiet())
    assert isinstance(result, AttackSuiteResult) and result.exit_status is ExitStatus.ATTACK_MISSED
    bad = [c for c in result.attack_cells() if c.as_expected is False]
    assert [(c.setting, c.effect) for c in bad] == [("aslr", False)]


def test_suite_command_prints_the_attack_table(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["suite", str(ATTACKS / "struct-overflow.yml")])
    assert result.exit_code == 0, result.output
    for word in ("struct-overflow", "identical", "abi", "call-mismatch", "missed, effect", "as expected"):
        assert word in result.output
    as_json = runner.invoke(cli, ["suite", str(ATTACKS / "struct-overflow.yml"), "--json"])
    document = json.loads(as_json.stdout)
    points = document["scenarios"][0]["points"]
    assert [p["effect"] for p in points] == [True, True, True, False, True]


# -- the file format ------------------------------------------------------------------


def _copy(tmp_path: Path, name: str) -> Path:
    shutil.copytree(ATTACKS / "topologies", tmp_path / "topologies")
    target = tmp_path / name
    shutil.copy(ATTACKS / name, target)
    return target


def _broken(tmp_path: Path, old: str, new: str) -> InputError:
    path = _copy(tmp_path, "format-string.yml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    report = str(caught.value)
    assert "\n" not in report and report.startswith(str(path))
    return caught.value


def test_setting_selects_variants_and_sim_expectation() -> None:
    scenario = load_scenario(ATTACKS / "struct-overflow.yml")
    assert scenario.variants is None and [s.parameter for s in scenario.sweeps] == ["setting"]
    abi = scenario.with_values({"setting": "abi"})
    assert abi.variants is not None and [v.arch and v.arch.value for v in abi.variants] == ["x86_64", "i386"]
    assert abi.expect is not None and abi.expect.kind is not None
    assert abi.expect.kind.value == "call-mismatch" and abi.expect.effect is False
    real = abi.expectation("real")
    assert isinstance(real, Expect) and real.kind is not None and real.kind.value == "call-mismatch"
    isa = scenario.with_values({"setting": "isa"}).expectation("real")
    assert isinstance(isa, NotRun) and "aarch64" in isa.skip


def test_variants_beside_settings_are_refused(tmp_path: Path) -> None:
    error = _broken(tmp_path, "diversity:\n", "variants: [{host: h1}, {host: h2}]\ndiversity:\n")
    assert error.field == "variants" and "beside diversity settings" in error.message


def test_an_unknown_setting_is_named(tmp_path: Path) -> None:
    error = _broken(tmp_path, "diversity:\n", "setting: asrl\ndiversity:\n")
    assert error.field == "setting" and "did you mean 'aslr'" in error.message


def test_an_exploit_of_another_kind_is_refused(tmp_path: Path) -> None:
    error = _broken(tmp_path, "  exploit: format-string", "  exploit: heap-overflow")
    assert error.field == "attack.exploit" and "rop-absolute attack, not pointer-leak" in error.message


def test_a_missed_attack_without_effect_is_refused(tmp_path: Path) -> None:
    error = _broken(
        tmp_path, "      sim: {verdict: missed, effect: true}", "      sim: {verdict: missed, effect: false}"
    )
    assert error.field == "diversity.identical.expect.sim.effect"


def test_a_setting_name_must_be_a_word(tmp_path: Path) -> None:
    error = _broken(tmp_path, "  aslr:\n", "  ASLR on:\n")
    assert "not a setting name" in error.message


# -- comparing the modes --------------------------------------------------------------


def _cell(mode: str, setting: str, outcome: str, verdict: str | None, effect: bool | None, **kw) -> Cell:
    return Cell(
        file="f.yml",
        attack="a",
        kind="rop-absolute",
        setting=setting,
        mode=mode,
        outcome=outcome,
        verdict=verdict,
        effect=effect,
        **kw,
    )


def test_disagreements_are_every_difference_of_outcome_kind_or_effect() -> None:
    sim = [
        _cell("sim", "aslr", "divergence", "crash", False),
        _cell("sim", "abi", "divergence", "crash", False),
        _cell("sim", "identical", "missed", None, True),
        _cell("sim", "disjoint", "divergence", "crash", False),
        _cell("sim", "isa", "divergence", "crash", False),
    ]
    real = [
        _cell("real", "aslr", "divergence", "crash", False),
        _cell("real", "abi", "divergence", "arg-mismatch", False),
        _cell("real", "identical", "missed", None, False),
        _cell("real", "disjoint", "error", None, None, error="monitor failed"),
        _cell("real", "isa", "divergence", "crash", False, skip="no aarch64 host"),
    ]
    found = {(real.setting, what) for _, real, what in disagreements(sim, real)}
    assert {setting for setting, _ in found} == {"abi", "identical", "disjoint"}
    assert ("abi", "sim: divergence (crash), no effect; real: divergence (arg-mismatch), no effect") in found


def test_both_modes_fail_on_disagreement_even_when_each_matches_its_file() -> None:
    from realmode.suite import RealSuiteResult

    want = {"verdict": "divergence", "kind": None, "effect": None}

    class SimPart:
        exit_status = ExitStatus.OK

        def attack_cells(self) -> list[Cell]:
            return [_cell("sim", "abi", "divergence", "crash", False, expected=want)]

        def problems(self) -> list[str]:
            return []

        def to_json(self) -> dict:
            return {}

    real = RealSuiteResult("d", [_cell("real", "abi", "divergence", "arg-mismatch", False, expected=want)])
    assert real.exit_status is ExitStatus.OK
    both = BothModesResult("d", SimPart(), real)
    assert both.exit_status is ExitStatus.ATTACK_MISSED
    assert both.to_json()["agreement"]["disagreements"][0]["setting"] == "abi"
    shown = io.StringIO()
    both.render(Console(file=shown, width=200))
    assert "DISAGREEMENT a / abi" in shown.getvalue()


def test_real_suite_status_is_a_miss_for_any_unexpected_cell_and_usage_for_a_bad_file() -> None:
    from realmode.suite import RealSuiteResult

    want = {"verdict": "divergence", "kind": "crash", "effect": False}
    good = _cell("real", "aslr", "divergence", "crash", False, expected=want)
    skipped = _cell("real", "isa", "divergence", "crash", False, expected=None, skip="no aarch64 host")
    assert RealSuiteResult("d", [good, skipped]).exit_status is ExitStatus.OK
    leaked = _cell("real", "abi", "divergence", "crash", True, expected=want)
    assert RealSuiteResult("d", [good, leaked]).exit_status is ExitStatus.ATTACK_MISSED
    failed = _cell("real", "disjoint", "error", None, None, expected=want, error="the monitor failed")
    assert RealSuiteResult("d", [good, failed]).exit_status is ExitStatus.ATTACK_MISSED
    assert RealSuiteResult("d", [good], [("bad.yml", "bad.yml:3:1: nope")]).exit_status is ExitStatus.USAGE
