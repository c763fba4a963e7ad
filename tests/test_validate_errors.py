"""``dmvx validate`` shows every error of a file at once, and a file nested
thousands deep is a bad file (status 2, one line), not a RecursionError (70)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dmvx.cli import cli

REPO = Path(__file__).resolve().parent.parent

THREE_WRONG = """\
name: three-wrong
topology: two-host
variants: [{host: h1}, {host: h2}]
policy:
  preset: dmvxx
  cb: {entries: many}
workload:
  kind: microbench
  call: read
  iterations: -5
"""


def test_every_error_of_a_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(THREE_WRONG)
    result = CliRunner().invoke(cli, ["validate", str(bad), str(REPO / "scenarios" / "default.yml")])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("dmvx: error: ")]
    assert [line.split(": ")[2].split(":")[1] for line in errors] == ["5", "6", "10"], result.stderr
    assert "policy.preset" in errors[0] and "policy.cb.entries" in errors[1] and "workload.iterations" in errors[2]
    assert "default.yml: ok" in result.stderr

    document = json.loads(CliRunner().invoke(cli, ["validate", str(bad), "--json"]).stdout)
    (entry,) = document["files"]
    assert len(entry["errors"]) == 3 and entry["error"] == entry["errors"][0]


def _deep(path: Path, levels: int) -> Path:
    path.write_text("name: deep\nworkload: " + "[" * levels + "]" * levels + "\n")
    return path


def test_a_5000_deep_list_is_a_bad_file_not_a_bug(tmp_path: Path) -> None:
    deep = _deep(tmp_path / "deep.yml", 5000)
    for command in (["validate", str(deep)], ["sim", str(deep)]):
        done = subprocess.run([sys.executable, "-m", "dmvx", *command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"dmvx: error: {deep}:2:") and "nested more than 64 deep" in line, line


def test_a_deep_block_list_is_a_bad_file_too(tmp_path: Path) -> None:
    deep = tmp_path / "block.yml"
    deep.write_text("name: deep\nworkload:\n" + "".join("  " * i + "-\n" for i in range(1, 600)))
    result = CliRunner().invoke(cli, ["validate", str(deep)])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "nested more than 64 deep" in line


def test_a_huge_file_is_one_line_and_status_2(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yml"
    huge.write_text("name: huge\ndescription: " + "x" * 2_000_000 + "\n")
    result = CliRunner().invoke(cli, ["validate", str(huge)])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"dmvx: error: {huge}: ")


def test_a_bad_cost_profile_is_reported_with_the_fields_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: m2\ntopology: two-host\nvariants: [{host: h1}, {host: h2}]\ncost_profile: nosuch\n"
        "policy: {preset: dmvxx}\nworkload: {kind: microbench, call: read, iterations: 10}\n"
    )
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and "cost_profile" in errors[0] and "policy.preset" in errors[1], result.stderr
