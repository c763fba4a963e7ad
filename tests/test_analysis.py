"""Results for analysis: repetitions and their summary (:mod:`dmvx.stats`),
the Python API (:mod:`dmvx.api`), plots (:mod:`sim.plot`) and the docs'
notebook-style script (docs/guide/delay_sweep.py)."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmvx import api
from dmvx.cli import cli
from dmvx.errors import InputError
from dmvx.output import stderr_console
from dmvx.rows import SECONDS, Column, Rows
from dmvx.stats import summarize, summary, t975

REPO = Path(__file__).resolve().parent.parent
SMALL = "workload.iterations=300"
LAB4 = str(REPO / "scenarios" / "labs" / "lab4-window.yml")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def test_t_quantiles_match_the_tables() -> None:
    assert t975(1) == 12.706 and t975(10) == 2.228 and t975(30) == 2.042
    assert t975(60) == pytest.approx(2.000, abs=0.001) and t975(120) == pytest.approx(1.980, abs=0.001)


def test_summary_is_mean_min_max_and_the_t_interval() -> None:
    values = [12.0, 9.0, 17.0, 13.0, 10.0]
    s = summary(values)
    assert (s.n, s.mean, s.min, s.max) == (5, 12.2, 9.0, 17.0)
    assert s.ci95 == pytest.approx(2.776 * statistics.stdev(values) / 5**0.5, rel=1e-9)
    assert summary([4.0]).ci95 is None


def test_summarize_groups_by_the_parameters_that_are_not_repetitions() -> None:
    rows = Rows(
        (Column("delay", SECONDS), Column("seed"), Column("t_s", SECONDS), Column("ok", ""), Column("o", "")),
        (
            (0.001, 1, 2.0, True, "ok"),
            (0.001, 2, 4.0, False, "ok"),
            (0.01, 1, 5.0, True, "ok"),
            (0.01, 2, 5.0, True, "x"),
        ),
        ("delay", "seed"),
    )
    out = summarize(rows, ["seed"], ["t_s", "ok", "o"]).records()
    assert [(r["delay"], r["n"], r["t_s_mean"], r["t_s_min"], r["t_s_max"]) for r in out] == [
        (0.001, 2, 3.0, 2.0, 4.0),
        (0.01, 2, 5.0, 5.0, 5.0),
    ]
    assert [r["ok_fraction"] for r in out] == [0.5, 1.0]
    assert [r["o"] for r in out] == ["ok", "ok:1 x:1"]


# ---------------------------------------------------------------------------
# Repetitions on the command line
# ---------------------------------------------------------------------------


def test_seeds_repeat_every_point_and_the_summary_matches_the_runs() -> None:
    args = ("sim", "--set", SMALL, "--set", "links.h1-s1.loss=1%", "--set", "policy.preset=dmvx", "--seeds", "1,2,3")
    runs = _csv(invoke(*args, "--format", "csv", "--per-run").stdout)
    assert [r["seed"] for r in runs] == ["1", "2", "3"]
    times = [float(r["mvx_time_s"]) for r in runs]
    assert len(set(times)) > 1  # the loss draws differ with the seed
    (point,) = _csv(invoke(*args, "--format", "csv").stdout)
    assert point["n"] == "3"
    assert float(point["mvx_time_s_min"]) == min(times) and float(point["mvx_time_s_max"]) == max(times)
    assert float(point["mvx_time_s_mean"]) == pytest.approx(statistics.mean(times), rel=1e-9)
    assert float(point["mvx_time_s_ci95"]) == pytest.approx(4.303 * statistics.stdev(times) / 3**0.5, rel=1e-6)


def test_repetitions_are_deterministic_for_a_seed_list() -> None:
    args = ("sim", "--set", SMALL, "--set", "links.h1-s1.loss=2%", "--format", "csv")
    first = invoke(*args, "--seeds", "3").stdout
    assert first == invoke(*args, "--seeds", "3").stdout
    assert first == invoke(*args, "--seeds", "1,2,3").stdout  # the default scenario's seed is 1
    assert first != invoke(*args, "--seeds", "4,5,6").stdout


def test_attack_positions_repeat_an_attack_and_the_table_shows_mean_and_range() -> None:
    result = invoke("sim", LAB4, "--set", "policy.cb.entries=64", "--at-calls", "500,1000,2000")
    assert result.exit_code == 0, result.stderr
    assert "calls ahead" in result.stderr and "min-max" in result.stderr and "95% interval" in result.stderr
    runs = json.loads(
        invoke("sim", LAB4, "--set", "policy.cb.entries=64", "--at-calls", "500,1000,2000", "--json").stdout
    )
    assert runs["repeat"] == ["attack.at_call"]
    assert [p["attack"]["at_call"] for p in runs["points"]] == [500, 1000, 2000]
    calls = [p["attack"]["detection"]["leader_calls"] for p in runs["points"]]
    (summary_row,) = runs["summary"]
    assert summary_row["detection_calls_min"] == min(calls) and summary_row["detection_calls_max"] == max(calls)


def test_a_scenario_file_can_ask_for_repetitions(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yml"
    scenario.write_text((REPO / "scenarios" / "default.yml").read_text() + "repeat:\n  seeds: 2\n")
    rows = _csv(invoke("sim", str(scenario), "--set", SMALL, "--format", "csv").stdout)
    assert [r["n"] for r in rows] == ["2", "2"]


def test_attack_positions_without_an_attack_are_one_line_and_status_2() -> None:
    result = invoke("sim", "--at-calls", "10,20")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "without an attack" in lines[0], result.stderr


@pytest.mark.parametrize("value", ["0", "a,b", "1,,2"])
def test_bad_seeds_are_usage_errors(value: str) -> None:
    result = invoke("sim", "--seeds", value)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr


def test_runs_without_repetitions_write_the_document_they_always_have() -> None:
    document = json.loads(invoke("sim", "--set", SMALL, "--json").stdout)
    assert "summary" not in document and "repeat" not in document


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def _figure(*args: str):
    from sim.cli_entry import run
    from sim.plot import figure

    overrides = dict(a.split("=", 1) for a in args)
    result = run(
        REPO / "scenarios" / "default.yml", seed=None, overrides=overrides, plot=None, console=stderr_console()
    )
    return figure(result)


@pytest.mark.parametrize(
    "order",
    [
        ("policy.preset=[dmon, dmvx]", "links.h1-s1.delay=[100us, 1ms, 10ms]"),
        ("links.h1-s1.delay=[100us, 1ms, 10ms]", "policy.preset=[dmon, dmvx]"),
    ],
)
def test_a_numeric_sweep_is_a_line_per_preset_on_a_log_axis_whatever_the_order(order: tuple[str, str]) -> None:
    fig = _figure(SMALL, *order)
    (axes,) = fig.axes
    assert axes.get_xscale() == "log"
    assert axes.get_xlabel() == "topology.links[0].delay (s)"
    assert [line.get_label() for line in axes.get_lines()] == ["dmon", "dmvx"]
    assert [list(line.get_xdata()) for line in axes.get_lines()] == [[0.0001, 0.001, 0.01]] * 2
    assert axes.get_legend().get_title().get_text() == "policy.preset"


def test_a_narrow_numeric_sweep_stays_linear() -> None:
    (axes,) = _figure(SMALL, "policy.preset=dmvx", "policy.cb.entries=[8, 16, 32]").axes
    assert axes.get_xscale() == "linear" and axes.get_xlabel() == "policy.cb.entries"


def test_an_attack_sweep_plots_calls_ahead_and_time_to_detection(tmp_path: Path) -> None:
    from sim.cli_entry import run
    from sim.plot import figure

    result = run(
        Path(LAB4),
        seed=None,
        overrides={"policy.cb.entries": "[16, 64]", "repeat.at_calls": "[500, 2000]"},
        plot=None,
        console=stderr_console(),
    )
    left, right = figure(result).axes
    assert left.get_ylabel().startswith("calls ahead") and right.get_ylabel().startswith("time to detection")
    assert left.get_xlabel() == right.get_xlabel() == "policy.cb.entries"


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plots_are_written_in_the_format_of_their_suffix(tmp_path: Path, suffix: str) -> None:
    plot = tmp_path / f"run{suffix}"
    result = invoke("sim", "--set", SMALL, "--plot", str(plot), "--timeline")
    assert result.exit_code == 0, result.stderr
    head = plot.read_bytes()[:8]
    assert head.startswith({".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix])


def test_the_timeline_panel_is_optional_and_labelled() -> None:
    from sim.cli_entry import run
    from sim.plot import figure
    from sim.sweep import expand, run_points

    result = run(
        REPO / "scenarios" / "default.yml",
        seed=None,
        overrides={"workload.iterations": "300"},
        plot=None,
        console=stderr_console(),
    )
    assert len(figure(result).axes) == 1
    from sim.cli_entry import prepare
    from sim.profile import load_profile

    prepared, extra = prepare(REPO / "scenarios" / "default.yml", seed=None, overrides={"workload.iterations": "300"})
    _, points = expand(prepared, extra)
    timelines = [t for _, t in run_points(points, load_profile("paper"), timeline=True)]
    axes = figure(result, timelines).axes
    assert len(axes) == 2 and axes[1].get_title().startswith("progress of one run: policy.preset = dmvx")
    assert axes[1].get_xlabel() == "virtual time (s)"


def test_a_timeline_without_a_plot_is_a_usage_error() -> None:
    result = invoke("sim", "--timeline")
    assert result.exit_code == 2 and "--timeline is a panel of the plot" in result.stderr


def test_an_unknown_plot_suffix_fails_before_anything_runs(tmp_path: Path) -> None:
    result = invoke("sim", "--plot", str(tmp_path / "run.jpg"))
    assert result.exit_code == 2 and "a .png, .svg or .pdf file" in result.stderr
    assert "simulating" not in result.stderr


# ---------------------------------------------------------------------------
# The Python API and the docs' script
# ---------------------------------------------------------------------------


def test_the_api_returns_typed_rows_in_si_units() -> None:
    run = api.simulate(set={"workload.iterations": 300, "links.h1-s1.delay": ["100us", "1ms"]}, seeds=[1, 2])
    assert run.parameters == ("policy.preset", "topology.links[0].delay", "seed")
    assert run.rows.unit("topology.links[0].delay") == "s" and run.rows.unit("mvx_time_s") == "s"
    assert len(run.rows) == 8 and len(run.summary) == 4 and run.summary.column("n") == [2] * 4
    assert {r["topology.links[0].delay"] for r in run.rows} == {0.0001, 0.001}
    assert run.exit_status == 0 and len(run.points) == 8


def test_the_api_raises_the_line_the_command_prints() -> None:
    with pytest.raises(InputError, match=r"workload\.iterations"):
        api.simulate(set={"workload.iterations": -1})


def test_to_pandas_keeps_columns_and_units() -> None:
    pytest.importorskip("pandas")
    frame = api.simulate(set={"workload.iterations": 300}).to_pandas()
    assert list(frame["policy.preset"]) == ["dmon", "dmvx"] and frame.attrs["units"]["mvx_time_s"] == "s"
    assert frame["slowdown"].dtype.kind == "f"


def test_importing_the_api_loads_neither_pandas_nor_matplotlib() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dmvx.api, dmvx.rows, dmvx.stats; print(sorted({'pandas', 'matplotlib', 'sim'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


SCRIPT = REPO / "docs" / "guide" / "delay_sweep.py"


def test_the_analysis_page_shows_the_script_as_it_is() -> None:
    page = (REPO / "docs" / "guide" / "analysis.md").read_text()
    assert f"```python\n{SCRIPT.read_text()}```" in page


def test_the_delay_sweep_script_runs_and_draws_the_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The script as a notebook runs it, with its parameters cell set to fewer calls (as papermill would)."""
    source = SCRIPT.read_text()
    source, count = re.subn(r"^ITERATIONS = .*$", "ITERATIONS = 1_000", source, flags=re.M)
    assert count == 1
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {"__name__": "__main__"}
    exec(compile(source, str(SCRIPT), "exec"), scope)
    assert (tmp_path / "delay-sweep.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "delay-sweep-plot.png").read_bytes().startswith(b"\x89PNG")
    rows = scope["rows"]
    assert isinstance(rows, Rows)
    slowdown = {(str(r["policy.preset"]), float(r["topology.links[*].delay"])): float(r["slowdown"]) for r in rows}  # type: ignore[arg-type]
    delays = sorted({d for _, d in slowdown})
    assert len(delays) == 7
    for preset in ("dmon", "dmvx"):
        assert [slowdown[(preset, d)] for d in delays] == sorted(slowdown[(preset, d)] for d in delays)
    assert all(slowdown[("dmon", d)] > slowdown[("dmvx", d)] for d in delays)
