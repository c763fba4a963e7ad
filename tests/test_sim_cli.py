"""``dmvx sim`` and ``dmvx suite`` end to end, through the real command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from dmvx.cli import cli

REPO = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_the_default_scenario_compares_dmon_and_dmvx() -> None:
    result = invoke("sim", "--set", "workload.iterations=500")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "dmon" in result.stderr and "dmvx" in result.stderr and "slowdown" in result.stderr


def test_one_point_prints_its_details() -> None:
    result = invoke("sim", "--set", "workload.iterations=500", "--set", "policy.preset=dmvx")
    assert result.exit_code == 0, result.stderr
    for word in ("slowdown", "CB occupancy", "lead over follower 1", "links", "h1->s1"):
        assert word in result.stderr


def test_json_is_the_only_thing_on_stdout() -> None:
    result = invoke("sim", str(REPO / "scenarios" / "paper-lighttpd.yml"), "--set", "workload.requests=40", "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["exit_status"] == "ok"
    assert [p["labels"] for p in document["points"]] == [{"policy.preset": "dmon"}, {"policy.preset": "dmvx"}]
    assert "table" not in result.stderr.lower()


def test_plot_is_written(tmp_path: Path) -> None:
    plot = tmp_path / "run.png"
    result = invoke("sim", "--set", "workload.iterations=300", "--plot", str(plot))
    assert result.exit_code == 0, result.stderr
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_bad_override_is_one_line_and_status_2() -> None:
    result = invoke("sim", "--set", "workload.iterations=-3")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dmvx: error: --set") and "workload.iterations" in lines[0]


def test_bad_cost_profile_is_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yml"
    scenario.write_text((REPO / "scenarios" / "default.yml").read_text() + "cost_profile: ./p.yml\n")
    (tmp_path / "p.yml").write_text("base: paper\nmonitor: {compare: fast}\n")
    result = invoke("sim", str(scenario))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "p.yml:2" in result.stderr


def test_attack_missed_exits_3() -> None:
    result = invoke(
        "sim",
        str(REPO / "scenarios" / "attack-table.yml"),
        "--set",
        "sweep[1].values=[[{host: h1, layout: {aslr: false}}, {host: h2, layout: {aslr: false}}]]",
    )
    assert result.exit_code == 3, result.stderr
    assert "missed" in result.stderr


def test_suite_checks_each_file_against_its_expectation(tmp_path: Path) -> None:
    shutil.copy(REPO / "scenarios" / "default.yml", tmp_path / "a.yml")
    text = (REPO / "scenarios" / "default.yml").read_text().replace("iterations: 20000", "iterations: 300")
    (tmp_path / "b.yml").write_text(text.replace("verdict: ok", "verdict: divergence"))
    result = invoke("suite", str(tmp_path), "--json")
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert [Path(s["file"]).name for s in document["scenarios"]] == ["a.yml", "b.yml"]
    assert [s["points"][0]["as_expected"] for s in document["scenarios"]] == [True, False]
    (tmp_path / "b.yml").unlink()
    assert invoke("suite", str(tmp_path)).exit_code == 0
