"""The ``dmvx`` command line: exit statuses, streams, dispatch to the modes.

Modes are replaced by small fake modules put in ``sys.modules`` under the
entry's name, so these tests pin the CLI's side of the contract whether or
not the real modes exist yet; ``None`` in ``sys.modules`` stands for a mode
that is not built.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import dmvx
import dmvx.cli as cli_module
from dmvx.cli import DEFAULT_SCENARIO, cli
from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem, ExitStatus, Unavailable, worst
from dmvx.modeloader import ModeEntry

REPO = Path(__file__).resolve().parent.parent


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


@dataclass
class FakeResult:
    exit_status: ExitStatus = ExitStatus.OK
    document: Any = field(default_factory=lambda: {"verdict": None, "calls": 3})

    def to_json(self) -> Any:
        return self.document

    def render(self, console: Any) -> None:
        console.print("TABLE FOR PEOPLE")

    def attack_cells(self) -> list:
        return []

    def problems(self) -> list:
        return []


def fake_mode(monkeypatch: pytest.MonkeyPatch, name: str, **functions: Any) -> list:
    """Install a fake entry module; return the list its functions log calls to."""
    calls: list = []
    module = types.ModuleType(name)

    for fname, behaviour in functions.items():

        def entry(*args: Any, _fname: str = fname, _do: Any = behaviour, **kwargs: Any) -> Any:
            calls.append((_fname, args, kwargs))
            return _do(*args, **kwargs) if callable(_do) else _do

        setattr(module, fname, entry)
    monkeypatch.setitem(sys.modules, name, module)
    return calls


def not_built(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setitem(sys.modules, name, None)


# --- the group ----------------------------------------------------------------


def test_version_goes_to_stdout() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"dmvx {dmvx.__version__}"


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("sim", "real", "run", "suite", "validate"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command


def test_no_command_shows_help_and_is_a_usage_error() -> None:
    result = invoke()
    assert result.exit_code == ExitStatus.USAGE
    assert "Commands:" in result.stderr
    assert result.stdout == ""


def test_unknown_command_is_one_line_usage_error() -> None:
    result = invoke("frobnicate")
    assert result.exit_code == ExitStatus.USAGE == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("dmvx: error: ") and "frobnicate" in lines[0]


def test_bad_option_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    not_built(monkeypatch, "sim.cli_entry")
    result = invoke("sim", "--sed", "3")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr.startswith("dmvx: error: ")
    assert "'dmvx sim --help'" in result.stderr


# --- modes not built ------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "args", "words"),
    [
        ("sim.cli_entry", ["sim"], "dmvx sim: simulation mode is not built yet"),
        ("realmode.cli_entry", ["real"], "dmvx real: real mode is not built yet"),
        ("realmode.cli_entry", ["run", "--", "/bin/true"], "dmvx run: real mode is not built"),
        ("sim.cli_entry", ["suite", "."], "dmvx suite: the suite runner of simulation mode"),
        ("realmode.cli_entry", ["suite", ".", "--mode", "real"], "suite runner of real mode"),
        ("dmvx.validate", ["validate", "x.yml"], "dmvx validate: the file validator is not"),
    ],
)
def test_unbuilt_mode_says_so_and_exits_5(
    monkeypatch: pytest.MonkeyPatch, module: str, args: list[str], words: str
) -> None:
    not_built(monkeypatch, module)
    result = invoke(*args)
    assert result.exit_code == ExitStatus.UNAVAILABLE == 5
    assert words in result.stderr
    assert result.stdout == ""


def test_entry_module_without_the_function_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_mode(monkeypatch, "realmode.cli_entry", real=FakeResult())
    result = invoke("run", "--", "/bin/true")
    assert result.exit_code == ExitStatus.UNAVAILABLE


def test_unavailable_comes_before_the_root_check(monkeypatch: pytest.MonkeyPatch) -> None:
    not_built(monkeypatch, "realmode.cli_entry")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert invoke("real").exit_code == ExitStatus.UNAVAILABLE


# --- dispatch, streams and statuses --------------------------------------------


def test_sim_passes_plain_values_and_defaults_to_builtin_scenario(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = fake_mode(monkeypatch, "sim.cli_entry", run=FakeResult())
    monkeypatch.setattr("dmvx.cli.DEFAULT_SCENARIO", tmp_path / "default.yml")
    (tmp_path / "default.yml").write_text("{}\n")
    args = ["sim", "--seed", "7", "--set", "a.b=5ms", "--set", "c=x=y", "--set", "a.b=6ms"]
    result = invoke(*args, "--plot", str(tmp_path / "t.png"))
    assert result.exit_code == 0, result.stderr
    ((name, pos, kw),) = calls
    assert name == "run"
    assert pos == (tmp_path / "default.yml",)
    assert kw["seed"] == 7
    assert kw["overrides"] == {"a.b": "6ms", "c": "x=y"}
    assert kw["plot"] == tmp_path / "t.png"


def test_sim_without_default_scenario_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_mode(monkeypatch, "sim.cli_entry", run=FakeResult())
    monkeypatch.setattr("dmvx.cli.DEFAULT_SCENARIO", tmp_path / "absent.yml")
    result = invoke("sim")
    assert result.exit_code == ExitStatus.USAGE
    assert "absent.yml is missing" in result.stderr


def test_default_scenario_points_into_the_checkout() -> None:
    assert DEFAULT_SCENARIO == REPO / "scenarios" / "default.yml"


@pytest.mark.parametrize("bad", ["novalue", "=5ms"])
def test_malformed_set_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    calls = fake_mode(monkeypatch, "sim.cli_entry", run=FakeResult())
    result = invoke("sim", "--set", bad)
    assert result.exit_code == ExitStatus.USAGE
    assert "KEY=VALUE" in result.stderr
    assert calls == []


def test_json_goes_to_stdout_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_mode(monkeypatch, "sim.cli_entry", run=FakeResult())
    scenario = tmp_path / "s.yml"
    scenario.write_text("{}\n")
    result = invoke("sim", str(scenario), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"verdict": None, "calls": 3}
    assert "verdict" not in result.stderr and "TABLE" not in result.stderr


def test_people_output_goes_to_stderr_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_mode(monkeypatch, "sim.cli_entry", run=FakeResult())
    scenario = tmp_path / "s.yml"
    scenario.write_text("{}\n")
    result = invoke("sim", str(scenario))
    assert result.stdout == ""
    assert "TABLE FOR PEOPLE" in result.stderr


@pytest.mark.parametrize("status", [ExitStatus.DIVERGENCE, ExitStatus.ATTACK_MISSED, ExitStatus.OK])
def test_result_status_is_the_exit_status(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, status: ExitStatus) -> None:
    fake_mode(monkeypatch, "sim.cli_entry", run=FakeResult(status))
    scenario = tmp_path / "s.yml"
    scenario.write_text("{}\n")
    assert invoke("sim", str(scenario), "--json").exit_code == status


def test_real_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_mode(monkeypatch, "realmode.cli_entry", real=FakeResult())
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = invoke("real", "--topology", "two-host")
    assert result.exit_code == ExitStatus.ENVIRONMENT == 4
    assert "dmvx: error: dmvx real needs root" in result.stderr
    assert calls == []


def test_real_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_mode(monkeypatch, "realmode.cli_entry", real=FakeResult())
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = invoke("real", "--topology", "two-host", "--policy", "dmon", "--json")
    assert result.exit_code == 0, result.stderr
    ((_, pos, kw),) = calls
    assert pos == ()
    assert (kw["topology"], kw["scenario"], kw["policy"]) == ("two-host", None, "dmon")


@pytest.mark.parametrize(
    ("args", "variants"),
    [
        (["--", "prog", "-x"], [["prog", "-x"], ["prog", "-x"]]),
        (["prog", "-x"], [["prog", "-x"], ["prog", "-x"]]),
        (["--variants", "3", "--", "p"], [["p"], ["p"], ["p"]]),
        (["--variant", "./p32 -v", "--", "./p64", "-v"], [["./p64", "-v"], ["./p32", "-v"]]),
        (["--variant", "a", "--variant", "'b c' d"], [["a"], ["b c", "d"]]),
        (["--variants", "2", "--variant", "a", "--", "b"], [["b"], ["a"]]),
    ],
)
def test_run_builds_variant_commands(
    monkeypatch: pytest.MonkeyPatch, args: list[str], variants: list[list[str]]
) -> None:
    calls = fake_mode(monkeypatch, "realmode.cli_entry", run_program=FakeResult())
    result = invoke("run", "--record", "t.trace", *args)
    assert result.exit_code == 0, result.stderr
    ((_, pos, kw),) = calls
    assert pos == (variants,)
    assert kw["policy"] == "dmvx" and kw["record"] == Path("t.trace")


def test_run_passes_its_placement_and_refuses_an_unknown_one(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_mode(monkeypatch, "realmode.cli_entry", run_program=FakeResult())
    assert invoke("run", "--placement", "spread", "--", "p").exit_code == 0
    assert invoke("run", "--", "p").exit_code == 0
    ((_, _, placed), (_, _, default)) = calls
    assert placed["placement"] == "spread" and "placement" not in default  # run_program's own default: auto
    refused = invoke("run", "--placement", "anywhere", "--", "p")
    assert refused.exit_code == ExitStatus.USAGE and "--placement" in refused.stderr
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "no program given"),
        (["--variant", "a"], "at least two variants"),
        (["--variants", "3", "--variant", "a", "--", "b"], "does not match"),
        (["--variants", "1", "--", "p"], "--variants"),
        (["--variant", "'unclosed", "--", "p"], "--variant"),
    ],
)
def test_run_rejects_impossible_variant_sets(monkeypatch: pytest.MonkeyPatch, args: list[str], words: str) -> None:
    calls = fake_mode(monkeypatch, "realmode.cli_entry", run_program=FakeResult())
    result = invoke("run", *args)
    assert result.exit_code == ExitStatus.USAGE
    assert words in result.stderr
    assert calls == []


def test_suite_both_combines_and_reports_the_worst(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_mode(monkeypatch, "sim.cli_entry", suite=FakeResult(ExitStatus.OK, {"n": 1}))
    fake_mode(monkeypatch, "realmode.cli_entry", suite=FakeResult(ExitStatus.ATTACK_MISSED, {"n": 2}))
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = invoke("suite", str(tmp_path), "--mode", "both", "--json")
    assert result.exit_code == ExitStatus.ATTACK_MISSED
    assert json.loads(result.stdout) == {
        "sim": {"n": 1},
        "real": {"n": 2},
        "agreement": {"compared": 0, "disagreements": []},
    }


def test_suite_both_checks_every_part_before_running_any(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = fake_mode(monkeypatch, "sim.cli_entry", suite=FakeResult())
    not_built(monkeypatch, "realmode.cli_entry")
    assert invoke("suite", str(tmp_path), "--mode", "both").exit_code == ExitStatus.UNAVAILABLE
    assert calls == []


def test_suite_topology_goes_to_real_mode_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--topology`` gives real mode's hosts (machines over SSH, say): the
    real part gets it, sim never does, and --mode sim refuses it in one line."""
    sim_calls = fake_mode(monkeypatch, "sim.cli_entry", suite=FakeResult())
    real_calls = fake_mode(monkeypatch, "realmode.cli_entry", suite=FakeResult())
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert invoke("suite", str(tmp_path), "--mode", "both", "--topology", "m.yml").exit_code == 0
    assert real_calls[0][2]["topology"] == "m.yml" and "topology" not in sim_calls[0][2]
    refused = invoke("suite", str(tmp_path), "--topology", "m.yml")
    assert refused.exit_code == ExitStatus.USAGE
    assert "--topology gives real mode's hosts; it needs --mode real or both" in refused.output


def test_worst_ranks_failures_to_run_above_findings() -> None:
    assert worst([]) is ExitStatus.OK
    assert worst([ExitStatus.DIVERGENCE, ExitStatus.OK]) is ExitStatus.DIVERGENCE
    assert worst([ExitStatus.ATTACK_MISSED, ExitStatus.DIVERGENCE]) is ExitStatus.ATTACK_MISSED
    assert worst([ExitStatus.UNAVAILABLE, ExitStatus.ATTACK_MISSED]) is ExitStatus.UNAVAILABLE
    assert worst([ExitStatus.ENVIRONMENT, ExitStatus.INTERNAL]) is ExitStatus.INTERNAL


# --- failures from inside a mode -------------------------------------------------


def raises(exc: BaseException) -> Any:
    def entry(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return entry


def test_bug_in_a_mode_is_one_line_and_a_traceback_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fake_mode(monkeypatch, "sim.cli_entry", suite=raises(ZeroDivisionError("boom at call 7")))
    result = invoke("suite", str(tmp_path))
    assert result.exit_code == ExitStatus.INTERNAL == 70
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("dmvx: error: internal error")
    assert "ZeroDivisionError: boom at call 7" in line
    saved = re.search(r"full traceback in (\S+)$", line)
    assert saved, line
    text = Path(saved.group(1)).read_text()
    assert Path(saved.group(1)).parent == tmp_path
    assert "Traceback (most recent call last)" in text and "boom at call 7" in text


def test_result_with_unknown_status_is_a_bug(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fake_mode(monkeypatch, "sim.cli_entry", suite=FakeResult(exit_status=42))  # type: ignore[arg-type]
    assert invoke("suite", str(tmp_path)).exit_code == ExitStatus.INTERNAL


@pytest.mark.parametrize(
    ("exc", "status", "prefix"),
    [
        (EnvironmentProblem("mnexec is missing; apt-get install mininet"), 4, "dmvx: error: "),
        (InputError("bad delay", file="s.yml", line=3, column=9), 2, "dmvx: error: s.yml:3:9: "),
        (KeyboardInterrupt(), 130, "dmvx: interrupted"),
    ],
)
def test_mode_failures_map_to_their_status(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    exc: BaseException,
    status: int,
    prefix: str,
) -> None:
    fake_mode(monkeypatch, "sim.cli_entry", suite=raises(exc))
    result = invoke("suite", str(tmp_path))
    assert result.exit_code == status
    assert prefix in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ("import dmvx_surely_absent_package\n", EnvironmentProblem),
        ("import sim.dmvx_surely_absent_module\n", ModuleNotFoundError),
        ("def other():\n    pass\n", Unavailable),
    ],
)
def test_entry_import_failures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: str, outcome: type) -> None:
    """A missing third-party package is the environment's fault; a missing
    module of our own is a bug and propagates; a missing function is a part
    not built yet."""
    (tmp_path / "dmvx_fake_entry.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "dmvx_fake_entry", raising=False)
    entry = ModeEntry("dmvx_fake_entry", "run", "fake mode is not built yet")
    with pytest.raises(outcome) as caught:
        cli_module._load(click.Context(cli, info_name="dmvx"), entry)
    if outcome is EnvironmentProblem:
        assert "'dmvx_surely_absent_package' is missing; run ./run setup" in str(caught.value)
    if outcome is Unavailable:
        assert str(caught.value) == "dmvx: fake mode is not built yet"


# --- validate --------------------------------------------------------------------


def test_validate_reports_every_file_and_fails_if_any_is_bad(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def validate_file(path: Path) -> str:
        if path.name.startswith("bad"):
            raise InputError("unknown field 'delya'", file=str(path), line=2, column=3)
        return "topology, 2 hosts"

    fake_mode(monkeypatch, "dmvx.validate", validate_file=validate_file)
    result = invoke("validate", "good.yml", "bad.yml", "good2.yml")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "good.yml: ok — topology, 2 hosts",
        "dmvx: error: bad.yml:2:3: unknown field 'delya'",
        "good2.yml: ok — topology, 2 hosts",
    ]

    result = invoke("validate", "--json", "good.yml", "bad.yml")
    assert json.loads(result.stdout) == {
        "ok": False,
        "files": [
            {"file": "good.yml", "ok": True, "summary": "topology, 2 hosts"},
            {
                "file": "bad.yml",
                "ok": False,
                "error": "bad.yml:2:3: unknown field 'delya'",
                "errors": ["bad.yml:2:3: unknown field 'delya'"],
            },
        ],
    }


def test_validate_all_good_is_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mode(monkeypatch, "dmvx.validate", validate_file="scenario, 1 attack")
    assert invoke("validate", "a.yml").exit_code == ExitStatus.OK


def test_validate_real_yaml_syntax_error(tmp_path: Path) -> None:
    pytest.importorskip("dmvx.validate")
    bad = tmp_path / "broken.yml"
    bad.write_text("hosts: [h1, h2\nlinks:\n")
    result = invoke("validate", str(bad))
    assert result.exit_code == ExitStatus.USAGE
    (line,) = result.stderr.splitlines()
    assert line.startswith("dmvx: error: ") and "broken.yml" in line


def test_validate_missing_file(tmp_path: Path) -> None:
    pytest.importorskip("dmvx.validate")
    result = invoke("validate", str(tmp_path / "nope.yml"))
    assert result.exit_code == ExitStatus.USAGE
    assert "nope.yml" in result.stderr and "Traceback" not in result.stderr


# --- the installed command and the documentation --------------------------------


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_console_script_and_python_m() -> None:
    script = Path(sys.executable).parent / "dmvx"
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Usage: dmvx" in done.stdout
    done = run_python("-m", "dmvx", "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"dmvx {dmvx.__version__}")
    done = subprocess.run([script, "frobnicate"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("dmvx: error:")


def test_help_imports_no_mode_library() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from dmvx.cli import cli\n"
        "for args in (['--help'], *[[c, '--help'] for c in cli.commands]):\n"
        "    assert CliRunner().invoke(cli, args).exit_code == 0, args\n"
        "heavy = {'simpy', 'scapy', 'ptrace', 'matplotlib', 'rich', 'pydantic', 'networkx'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = run_python("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("doc", ["README.md", "docs/cli.md"])
def test_documented_exit_statuses_match_the_enum(doc: str) -> None:
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|", (REPO / doc).read_text(), re.M)
    assert {int(code): name for code, name in rows} == {s.value: s.name for s in ExitStatus}


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--stall-timeout", "nan", "--", "true"], "'nan' is not a number"),
        (["run", "--stall-timeout", "inf", "--", "true"], "inf is not in the range 0.1<=x<=3600.0"),
        (["run", "--variants", "99999999999999999999", "--", "true"], "is not in the range 2<=x<=16"),
        (
            ["run", *[a for i in range(17) for a in ("--variant", "true")], "--", "true"],
            "18 variants given; at most 16",
        ),
    ],
)
def test_counts_and_durations_are_bounded_and_finite(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert needle in result.output


def test_a_file_error_met_late_is_one_line_and_status_2_not_70(capsys) -> None:
    import errno

    from dmvx.cli import _guarded

    def fails() -> None:
        raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out.png")

    assert _guarded(fails) == ExitStatus.USAGE
    assert capsys.readouterr().err == "dmvx: error: /mnt/ro/out.png: Read-only file system\n"

    def bug() -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")  # no file named: a bug, as before

    assert _guarded(bug) == ExitStatus.INTERNAL


def test_calibrate_check_combines_the_modes_in_the_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Real mode measures, sim predicts what real mode measured on the CPUs
    real mode used, and the CLI sets the two side by side: neither mode
    calls the other."""
    from dmvx.calibration import (
        CalibrationResult,
        MeasuredCall,
        MeasuredServer,
        Predicted,
        RealMeasurements,
    )

    profile = tmp_path / "measured.yml"
    places = {"dmvx": [(0, 0, 1), (1, 1, 1)]}
    real = RealMeasurements(
        [MeasuredCall("getpid", "dmvx", 500, 0.1, 3.0)],
        MeasuredServer(50.0, {"dmvx": tmp_path / "trace.jsonl"}, {"dmvx": 60.0}, {"dmvx": 1500}, {"dmvx": 14.5}),
        places,
    )
    asked: list = []

    def predictions(path: Path, asks: list, *, console: Any) -> list:
        asked.append((path, asks))
        return [Predicted(2.5, "cpu 0"), Predicted(12.0, "timelines")]

    fake_mode(
        monkeypatch,
        "realmode.cli_entry",
        calibrate=lambda **kw: CalibrationResult(profile, None, None),
        calibration_measurements=lambda **kw: real,
    )
    fake_mode(monkeypatch, "sim.cli_entry", calibration_predictions=predictions)
    result = invoke("calibrate", "--check-only", "--json")
    assert result.exit_code == ExitStatus.OK, result.stderr
    rows = json.loads(result.stdout)["check"]
    assert [(r["call"], r["native_us"], r["predicted_us"], r["measured_us"], r["bound"]) for r in rows] == [
        ("getpid", 0.1, 2.5, 3.0, "cpu 0"),
        ("lighttpd", 50.0, 62.0, 60.0, "timelines"),
    ]
    ((path, asks),) = asked
    assert path == profile and [a.placement for a in asks] == [places["dmvx"]] * 2
    assert asks[0].call == "getpid" and asks[0].iterations == 500 and asks[1].trace == tmp_path / "trace.jsonl"
    assert asks[1].iterations == 1500  # the measured run's requests: how far past the CB and ring it went
    assert asks[1].calls_per_request == 14.5  # and the leader's calls a request in it
