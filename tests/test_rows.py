"""Flat rows (``--format csv|tsv|json``, :mod:`dmvx.rows`): the writers, SI
values, and every command that takes the option."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmvx.attacktable import Cell, cell_rows
from dmvx.cli import cli
from dmvx.rows import BYTES, SECONDS, TEXT, Column, RowFormat, Rows, flatten, render, rows_of_records, si_value

REPO = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def _table() -> Rows:
    return Rows(
        (Column("name", TEXT), Column("time_s", SECONDS), Column("ok", TEXT), Column("size", BYTES)),
        (("a, b", 0.0001, True, 4096), ('say "x"\tthen', None, False, None)),
    )


def test_csv_quotes_and_leaves_missing_values_empty() -> None:
    text = render(_table(), RowFormat.CSV)
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "time_s", "ok", "size"],
        ["a, b", "0.0001", "true", "4096"],
        ['say "x"\tthen', "", "false", ""],
    ]


def test_tsv_has_one_line_per_row_and_no_tab_inside_a_cell() -> None:
    lines = render(_table(), RowFormat.TSV).splitlines()
    assert [len(line.split("\t")) for line in lines] == [4, 4, 4]
    assert lines[2].split("\t")[0] == 'say "x" then'


def test_json_is_an_array_of_flat_objects_with_numbers_as_numbers() -> None:
    records = json.loads(render(_table(), RowFormat.JSON))
    assert records[0] == {"name": "a, b", "time_s": 0.0001, "ok": True, "size": 4096}
    assert records[1]["time_s"] is None


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="row 0 has 1 values for 2 columns"):
        Rows((Column("a"), Column("b")), ((1,),))


@pytest.mark.parametrize(
    ("value", "cell", "unit"),
    [
        ("100us", 0.0001, "s"),
        ("5ms", 0.005, "s"),
        ("100Mbit", 1e8, "bit/s"),
        ("4KiB", 4096, "B"),
        ("1%", 0.01, "fraction"),
        ("dmvx", "dmvx", ""),
        (64, 64, "1"),
        ([1, "a"], '[1,"a"]', ""),
    ],
)
def test_parameter_values_become_si_numbers(value: object, cell: object, unit: str) -> None:
    assert si_value(value) == (cell, unit)


def test_flatten_names_nested_fields_by_their_path() -> None:
    row = flatten({"a": {"b_s": 1.5, "c": [1, 2]}, "v": [{"x": 1}, {"x": 2}]})
    assert row == {"a.b_s": 1.5, "a.c": "[1,2]", "v[0].x": 1, "v[1].x": 2}
    assert rows_of_records([row]).unit("a.b_s") == SECONDS


def test_tables_concatenate_under_the_union_of_their_columns() -> None:
    both = Rows((Column("a"),), ((1,),)) + Rows((Column("b"),), ((2,),))
    assert both.records() == [{"a": 1, "b": None}, {"a": None, "b": 2}]


def test_attack_cells_as_rows() -> None:
    cell = Cell("f.yml", "stack", "stack-overflow", "aslr", "real", {"verdict": "divergence"}, outcome="divergence")
    (record,) = cell_rows([cell]).records()
    assert record["expected"] == "divergence" and record["as_expected"] is True and record["mode"] == "real"


# ---------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_sim_rows_have_the_swept_parameters_as_si_columns() -> None:
    result = invoke(
        "sim", "--set", "workload.iterations=300", "--set", "links.h1-s1.delay=[100us, 2ms]", "--format", "csv"
    )
    assert result.exit_code == 0, result.stderr
    rows = _csv(result.stdout)
    assert [(r["policy.preset"], r["topology.links[0].delay"]) for r in rows] == [
        ("dmon", "0.0001"),
        ("dmon", "0.002"),
        ("dmvx", "0.0001"),
        ("dmvx", "0.002"),
    ]
    first = rows[0]
    assert float(first["mvx_time_s"]) > float(first["native_time_s"]) > 0
    assert float(first["slowdown"]) == pytest.approx(float(first["mvx_time_s"]) / float(first["native_time_s"]), 1e-5)
    assert first["attack"] == "" and first["outcome"] == "ok"
    assert "┃" not in result.stderr  # no table next to the rows


def test_sim_rows_match_the_json_document() -> None:
    args = ("sim", "--set", "workload.iterations=300", "--set", "policy.preset=dmvx")
    document = json.loads(invoke(*args, "--json").stdout)
    (row,) = json.loads(invoke(*args, "--format", "json").stdout)
    (point,) = document["points"]
    assert row["mvx_time_s"] == point["mvx"]["time_ns"] / 1e9
    assert row["messages_bytes"] == point["messages"]["bytes"]
    assert row["lead_calls_max"] == point["lead"]["follower 1"]["calls_max"]


def test_attack_rows_carry_calls_ahead_and_time_to_detection() -> None:
    result = invoke("sim", str(REPO / "scenarios" / "attacks" / "stack-overflow.yml"), "--format", "json")
    rows = json.loads(result.stdout)
    detected = [r for r in rows if r["detected"]]
    assert detected and all(r["detection_calls"] >= 0 and r["detection_time_s"] > 0 for r in detected)
    assert {r["attack"] for r in rows} == {"rop-absolute"}


def test_suite_rows_name_their_file(tmp_path: Path) -> None:
    shutil.copy(REPO / "scenarios" / "default.yml", tmp_path / "a.yml")
    (tmp_path / "bad.yml").write_text("name: [\n")
    result = invoke("suite", str(tmp_path), "--format", "tsv")
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    header = lines[0]
    files = [row[header.index("file")] for row in lines[1:]]
    assert files == [str(tmp_path / "a.yml")] * 2 + [str(tmp_path / "bad.yml")]
    assert lines[3][header.index("error")] != ""


def test_json_and_format_together_are_a_usage_error() -> None:
    result = invoke("sim", "--json", "--format", "csv")
    assert result.exit_code == 2
    assert "--json and --format both write to stdout" in result.stderr


def test_run_rows_one_per_variant_with_the_program_output_on_stderr() -> None:
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "dmvx"), "run", "--format", "csv", "--", "/bin/echo", "hello"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = _csv(result.stdout)
    assert [r["variant"] for r in rows] == ["leader", "follower 1"]
    assert {r["status"] for r in rows} == {"ok"} and float(rows[0]["elapsed_s"]) > 0
    assert result.stderr == "hello\n"  # the program's output, moved off stdout
    assert not any(line.startswith("hello") for line in result.stdout.splitlines())


def test_docs_list_every_sim_column() -> None:
    from sim.rows import MEASURED

    page = (REPO / "docs" / "cli.md").read_text()
    assert [name for name in MEASURED if f"| `{name}` |" not in page] == []


def test_real_rows_are_the_document_flattened() -> None:
    from realmode.net import experiment as ex
    from test_net_support import two_host_run

    result = ex.NetResult(two_host_run(ex.Workload(requests=3)), "r1", "netem")
    result.lead = {"max_calls": 4, "max_seconds": 0.002}
    result.link = {"messages": 9, "frame_bytes": 900}
    (row,) = result.rows().records()
    assert row["topology"] == "two-host" and row["run_id"] == "r1"
    assert row["link_delay.leader_follower_one_way_s"] == result.to_json()["link_delay"]["leader_follower_one_way_s"]
    rows = result.rows()
    assert rows.unit("lead.max_seconds") == SECONDS and rows.unit("link.frame_bytes") == BYTES


def test_an_interrupted_sweep_writes_the_rows_of_its_finished_points(tmp_path: Path) -> None:
    from test_sim_interrupt import SWEEP, _cleanup, _interrupt, _start, _wait_for_line

    scenario = tmp_path / "sweep.yml"
    scenario.write_text(SWEEP)
    process = _start("sim", str(scenario), "--format", "csv")
    try:
        _wait_for_line(process, "2 of 4 points")
        _, out, err = _interrupt(process)
    finally:
        _cleanup(process)
    assert process.returncode == 130, err
    assert [r["workload.iterations"] for r in _csv(out)] == ["1000", "1500"]
