"""The teaching labs: pages, scenario files, checkers, reference solutions.

Every checker runs against its lab's reference solution (every task must
pass) and against a wrong answer for every key (every task must fail, with
its hint shown). Tasks that run real mode on emulated hosts are checked as
root only; without root they must say so and exit 4.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from dmvx.cli import cli
from dmvx.exitstatus import ExitStatus
from dmvx.lab.labs import LABS, get_lab
from dmvx.lab.model import Kind, Lab

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "dmvx" / "lab" / "solutions"
LAB_SCENARIOS = REPO / "scenarios" / "labs"
SECTIONS = ("## Goals", "## Set-up", "## Tasks", "## Expected observations", "## Questions")

#: A wrong file for every file answer: one that exists and fails the task.
WRONG_FILES = {
    "local_scenario": LAB_SCENARIOS / "lab1-motd.yml",  # nothing local
    "relative_scenario": LAB_SCENARIOS / "lab2-exploit.yml",  # rop-absolute, not relative-rop
    "sweep_file": LAB_SCENARIOS / "lab3-distance.yml",  # no sweep
    "plot": LAB_SCENARIOS / "lab3-distance.yml",  # not a PNG
    "defended_scenario": LAB_SCENARIOS / "lab4-window.yml",  # the leak gets out first
    "abi_scenario": LAB_SCENARIOS / "lab5-data-only.yml",  # no i386 variant
    "replay_stream": SOLUTIONS / "lab6-forged.hex",  # forged, not replayed
    "forged_stream": SOLUTIONS / "lab6-replay.hex",  # replayed, not forged
    "replay_scenario": LAB_SCENARIOS / "lab6-forgery.yml",  # a forgery, not a replay
}
#: Wrong words (one word per key that takes one).
WRONG_WORDS = {
    "identical_harm": "openat",
    "disjoint_harm": "execve",
    "first_lockstep_call": "openat",
    "lockstep_call": "read",
}


def check(*args: str) -> Any:
    return CliRunner().invoke(cli, ["lab", "check", *args])


def root_tasks(lab: Lab) -> set[int]:
    return {task.number for task in lab.tasks if task.needs_root}


def unprivileged_tasks(lab: Lab) -> list[str]:
    return [arg for task in lab.tasks if not task.needs_root for arg in ("--task", str(task.number))]


@pytest.fixture(scope="module")
def solutions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The solutions in a scratch directory, with lab 3's plot drawn as a student draws it.

    The copy sits as deep below a ``scenarios`` link as the original below
    the source root, so the solutions' relative paths hold."""
    root = tmp_path_factory.mktemp("labs")
    target = root / "dmvx" / "lab" / "solutions"
    shutil.copytree(SOLUTIONS, target)
    (root / "scenarios").symlink_to(REPO / "scenarios")
    drawn = CliRunner().invoke(cli, ["sim", str(target / "lab3-sweep.yml"), "--plot", str(target / "lab3.png")])
    assert drawn.exit_code == 0, drawn.stderr
    return target


def task_lines(output: str) -> dict[int, str]:
    return {int(m.group(2)): m.group(1) for m in re.finditer(r"^(PASS|FAIL|TODO|ROOT|SKIP) task (\d+) ", output, re.M)}


# --- pages and files -----------------------------------------------------------------


def test_there_are_at_least_six_labs_numbered_from_one() -> None:
    assert len(LABS) >= 6
    assert [lab.number for lab in LABS] == list(range(1, len(LABS) + 1))


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: f"lab{lab.number}")
def test_every_lab_has_its_page_scenarios_and_solution(lab: Lab) -> None:
    page = (REPO / lab.doc).read_text()
    for section in SECTIONS:
        assert f"\n{section}\n" in page, f"{lab.doc} has no {section!r} section"
    for task in lab.tasks:
        assert re.search(rf"^### {task.number}\. ", page, re.M), f"{lab.doc} has no task {task.number}"
        for key in task.keys:
            assert f"`{key.name}`" in page, f"{lab.doc} does not name the answer key {key.name}"
    if lab.needs_root:
        assert "root" in page.split("## Tasks")[0].lower(), f"{lab.doc} does not say it needs root"
    assert sorted(LAB_SCENARIOS.glob(f"lab{lab.number}-*")), f"no scenarios/labs/lab{lab.number}-* files"
    solution = yaml.safe_load((SOLUTIONS / f"lab{lab.number}.yml").read_text())
    assert set(solution) - {"lab"} == set(lab.keys()), "the solution answers exactly the lab's keys"


def test_lab_scenarios_are_valid_and_end_as_they_expect() -> None:
    files = sorted(str(p) for p in LAB_SCENARIOS.glob("*.yml"))
    assert CliRunner().invoke(cli, ["validate", *files]).exit_code == 0
    suite = CliRunner().invoke(cli, ["suite", str(LAB_SCENARIOS)])
    assert suite.exit_code == ExitStatus.OK, suite.stderr


def test_lab_list_names_every_lab_and_key() -> None:
    import json

    listed = CliRunner().invoke(cli, ["lab", "list", "--json"])
    assert listed.exit_code == 0
    document = json.loads(listed.stdout)
    assert [entry["lab"] for entry in document["labs"]] == [lab.number for lab in LABS]
    for entry, lab in zip(document["labs"], LABS):
        keys = [answer["key"] for task in entry["tasks"] for answer in task["answers"]]
        assert keys == [key.name for task in lab.tasks for key in task.keys]
    people = CliRunner().invoke(cli, ["lab", "list"])
    assert people.exit_code == 0 and all(lab.doc in people.stderr for lab in LABS)


# --- reference solutions ---------------------------------------------------------------


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: f"lab{lab.number}")
def test_reference_solution_passes(lab: Lab, solutions: Path) -> None:
    answers = solutions / f"lab{lab.number}.yml"
    result = check(str(lab.number), "--answers", str(answers), *unprivileged_tasks(lab))
    lines = task_lines(result.stderr)
    assert lines == {t.number: "PASS" for t in lab.tasks if not t.needs_root}, result.stderr
    assert result.exit_code == ExitStatus.OK, result.stderr
    assert "hint:" not in result.stderr


@pytest.mark.root
@pytest.mark.parametrize("lab", [lab for lab in LABS if lab.needs_root], ids=lambda lab: f"lab{lab.number}")
def test_reference_solution_passes_the_real_mode_tasks(lab: Lab) -> None:
    tasks = [arg for number in sorted(root_tasks(lab)) for arg in ("--task", str(number))]
    result = check(str(lab.number), "--answers", str(SOLUTIONS / f"lab{lab.number}.yml"), *tasks)
    assert task_lines(result.stderr) == dict.fromkeys(root_tasks(lab), "PASS"), result.stderr
    assert result.exit_code == ExitStatus.OK


# --- wrong answers ------------------------------------------------------------------------


def wrong_value(key_name: str, kind: Kind, right: Any, choices: tuple[str, ...]) -> Any:
    if kind is Kind.FILE:
        return str(WRONG_FILES[key_name])
    if kind is Kind.WORD:
        return WRONG_WORDS[key_name]
    if kind is Kind.CHOICE:
        return next(c for c in choices if c != right)
    if kind is Kind.BOOL:
        return not right
    if kind is Kind.DURATION:
        return "97ms" if right != "97ms" else "3ms"
    if kind is Kind.COUNTS:
        return {**right, "replicate": right.get("replicate", 0) + 7}
    return right * 3 + 101  # NUMBER, INTEGER


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: f"lab{lab.number}")
def test_wrong_answers_fail_with_the_hint(lab: Lab, tmp_path: Path) -> None:
    right = yaml.safe_load((SOLUTIONS / f"lab{lab.number}.yml").read_text())
    keys = lab.keys()
    wrong = {name: wrong_value(name, key.kind, right[name], key.choices) for name, key in keys.items()}
    answers = tmp_path / "wrong.yml"
    answers.write_text(yaml.safe_dump(wrong))
    result = check(str(lab.number), "--answers", str(answers), *unprivileged_tasks(lab))
    lines = task_lines(result.stderr)
    assert lines == {t.number: "FAIL" for t in lab.tasks if not t.needs_root}, result.stderr
    assert result.exit_code == ExitStatus.ATTACK_MISSED
    hints = re.findall(r"^ +hint: (.+)$", result.stderr, re.M)
    assert len(hints) == len(lines) and all(hints), result.stderr


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: f"lab{lab.number}")
def test_each_wrong_key_alone_fails_its_task(lab: Lab, solutions: Path) -> None:
    """A right answers file with one key wrong fails exactly that key's task."""
    right = yaml.safe_load((solutions / f"lab{lab.number}.yml").read_text())
    for task in lab.tasks:
        if task.needs_root:
            continue
        for key in task.keys:
            answers = dict(right)
            answers[key.name] = wrong_value(key.name, key.kind, right[key.name], key.choices)
            path = solutions / f"lab{lab.number}-one-wrong.yml"
            path.write_text(yaml.safe_dump(answers))
            result = check(str(lab.number), "--answers", str(path), "--task", str(task.number))
            assert task_lines(result.stderr) == {task.number: "FAIL"}, (key.name, result.stderr)
            assert "hint: " in result.stderr


# --- statuses and errors -------------------------------------------------------------------


def fake_real_mode(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A real mode that must not be reached: the root check comes first."""
    calls: list[Any] = []
    module = types.ModuleType("realmode.cli_entry")
    module.real = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "realmode.cli_entry", module)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    return calls


@pytest.mark.parametrize("number", [lab.number for lab in LABS if lab.needs_root])
def test_real_mode_tasks_without_root_say_so_and_exit_4(
    number: int, monkeypatch: pytest.MonkeyPatch, solutions: Path
) -> None:
    lab = get_lab(number)
    calls = fake_real_mode(monkeypatch)
    answers = solutions / f"lab{number}.yml"
    result = check(str(number), "--answers", str(answers))
    lines = task_lines(result.stderr)
    assert {n for n, word in lines.items() if word == "ROOT"} == root_tasks(lab), result.stderr
    assert all(word == "PASS" for n, word in lines.items() if n not in root_tasks(lab))
    assert result.exit_code == ExitStatus.ENVIRONMENT
    assert "needs root" in result.stderr and calls == []


def test_an_unanswered_root_task_asks_for_its_keys_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_real_mode(monkeypatch)
    answers = tmp_path / "lab5-answers.yml"
    answers.write_text("lab: 5\n")
    result = check("5", "--answers", str(answers), "--task", "5")
    assert task_lines(result.stderr) == {5: "TODO"}
    assert "real_verdict" in result.stderr and result.exit_code == ExitStatus.ATTACK_MISSED


def test_without_an_answers_file_every_task_lists_its_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = check("2")
    assert result.exit_code == ExitStatus.ATTACK_MISSED
    assert set(task_lines(result.stderr).values()) == {"TODO"}
    assert "no lab2-answers.yml here yet" in result.stderr
    questions = get_lab(2).keys()  # a Lab, not a dict: its keys() names its questions
    assert all(name in result.stderr for name in questions)


@pytest.mark.parametrize(
    ("content", "args", "words"),
    [
        ("lab: 4\nlead_calls_cb61: 15\n", [], ["did you mean 'lead_calls_cb16'?", ":2:1:"]),
        ("lab: 3\n", [], ["for lab 3, not lab 4"]),
        ("- a list\n", [], ["mapping"]),
        ("lead_calls_cb16: 15\n", ["--task", "9"], ["lab 4 has no task 9"]),
    ],
)
def test_an_unusable_answers_file_is_one_line_and_status_2(
    tmp_path: Path, content: str, args: list[str], words: list[str]
) -> None:
    answers = tmp_path / "a.yml"
    answers.write_text(content)
    result = check("4", "--answers", str(answers), *args)
    assert result.exit_code == ExitStatus.USAGE
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("dmvx: error: ")
    assert all(word in result.stderr for word in words), result.stderr


def test_a_missing_answers_file_named_on_the_command_line_is_a_usage_error(tmp_path: Path) -> None:
    result = check("4", "--answers", str(tmp_path / "nope.yml"))
    assert result.exit_code == ExitStatus.USAGE and "no such file" in result.stderr


def test_there_is_no_lab_zero() -> None:
    result = check("0")
    assert result.exit_code == ExitStatus.USAGE and "there is no lab 0" in result.stderr


def test_a_malformed_value_fails_only_its_task_and_names_the_place(tmp_path: Path) -> None:
    answers = tmp_path / "a.yml"
    answers.write_text("lead_calls_cb16: many\nlead_time: 2\nlead_time_depends_on_cb: no\nleak_escaped: maybe\n")
    result = check("4", "--answers", str(answers), "--task", "1", "--task", "2", "--task", "4")
    assert task_lines(result.stderr) == {1: "FAIL", 2: "FAIL", 4: "FAIL"}
    text = result.stderr.replace("\n", " ")
    assert f"{answers}:1:18: lead_calls_cb16: 'many' is not a whole number" in text
    assert "write 2ms, not 2" in text
    assert "'maybe' is not yes or no" in text


def test_a_malformed_scenario_of_the_student_fails_its_task_with_the_line(tmp_path: Path) -> None:
    scenario = tmp_path / "mine.yml"
    scenario.write_text((LAB_SCENARIOS / "lab4-window.yml").read_text().replace("preset: dmvx", "preset: dmvxx"))
    answers = tmp_path / "a.yml"
    answers.write_text(f"defended_scenario: {scenario.name}\n")
    result = check("4", "--answers", str(answers), "--task", "5")
    assert task_lines(result.stderr) == {5: "FAIL"}
    assert f"{scenario}:" in result.stderr and "'dmvxx'" in result.stderr
    assert "dmvx validate" in result.stderr


def test_json_report(tmp_path: Path) -> None:
    import json

    answers = tmp_path / "a.yml"
    answers.write_text("frame_overhead: 56\nreflected_error: BadMagic\n")
    result = check("6", "--answers", str(answers), "--task", "1", "--json")
    document = json.loads(result.stdout)
    assert document["lab"] == 6 and document["passed"] == 0 and document["total"] == 1
    (task,) = document["tasks"]
    assert task["status"] == "fail" and task["hint"] and "reflected" in task["detail"]
    assert document["exit_status"] == "attack-missed" and result.exit_code == ExitStatus.ATTACK_MISSED


# --- dmvx lab watch ----------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["dmvx", "dmon"])
def test_watch_agrees_with_sim_mode_on_routes_runs_and_messages(preset: str) -> None:
    """The watch drives the same monitors as sim mode: same routes, same calls
    run and skipped, same number of messages, whatever the schedule."""
    import json

    from dmvx.lab.watch import watch_trace

    watched = watch_trace(LAB_SCENARIOS / "lab1-motd.jsonl", preset)
    simulated = CliRunner().invoke(
        cli, ["sim", str(LAB_SCENARIOS / "lab1-motd.yml"), "--json", "--set", f"policy.preset={preset}"]
    )
    point = json.loads(simulated.stdout)["points"][0]
    assert watched.verdict is None and point["verdict"] is None
    for mine, theirs in zip(watched.variants, point["variants"]):
        assert (mine["routes"], mine["executed"], mine["skipped"]) == (
            theirs["routes"],
            theirs["executed"],
            theirs["skipped"],
        )
    assert watched.messages == point["messages"]["total"]


def test_watch_shows_the_leader_running_ahead_under_dmvx_only() -> None:
    from dmvx.lab.watch import watch_trace

    def leader_calls_before_follower_runs(preset: str) -> int:
        events = watch_trace(LAB_SCENARIOS / "lab1-motd.jsonl", preset).events
        first = next(e.step for e in events if e.variant == 1 and e.what.startswith("enters "))
        return sum(1 for e in events if e.variant == 0 and e.what.startswith("enters ") and e.step < first)

    assert leader_calls_before_follower_runs("dmvx") > leader_calls_before_follower_runs("dmon") + 5


def test_watch_of_a_divergence_exits_1_with_the_verdict() -> None:
    import json

    result = CliRunner().invoke(cli, ["lab", "watch", str(LAB_SCENARIOS / "lab1-diverge.jsonl"), "--json"])
    assert result.exit_code == ExitStatus.DIVERGENCE
    document = json.loads(result.stdout)
    assert document["verdict"]["kind"] == "output-mismatch" and document["verdict"]["seq"] == 14
    assert any("VERDICT" in event["actions"] for event in document["events"])


def test_watch_refuses_a_scenario_without_a_trace() -> None:
    result = CliRunner().invoke(cli, ["lab", "watch", str(LAB_SCENARIOS / "lab2-exploit.yml")])
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr.startswith("dmvx: error: ") and "not a trace" in result.stderr
