"""Lab checkers take answers as the tool shows them, say what each wrong
answer got wrong (every wrong key, not only the first of a task), and
``--sim-only`` leaves the real-mode tasks out."""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from dmvx.cli import cli
from dmvx.exitstatus import ExitStatus
from dmvx.lab.answers import shown_number
from dmvx.lab.checking import mistake
from dmvx.lab.labs import get_lab

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "dmvx" / "lab" / "solutions"


def check(*args: str) -> Any:
    return CliRunner().invoke(cli, ["lab", "check", *args])


@pytest.mark.parametrize(
    ("text", "value", "resolution"),
    [
        ("1.91k", 1910.0, 5.0),
        ("9559.46x", 9559.46, 0.0),
        ("+3.1%", 3.1, 0.0),
        ("40,000", 40000.0, 0.0),
        ("2.5M", 2.5e6, 5e4),
        (15, 15.0, 0.0),
        ("1905", 1905.0, 0.0),
    ],
)
def test_numbers_as_tables_show_them(text: Any, value: float, resolution: float) -> None:
    assert shown_number(text) == pytest.approx((value, resolution))


@pytest.mark.parametrize("text", ["many", "1,9", "x", "1.9 kB", True])
def test_what_is_not_a_number_stays_refused(text: Any) -> None:
    assert shown_number(text) is None


@pytest.mark.parametrize(
    ("answer", "truth", "duration", "words"),
    [
        (4.02e-6, 4.02e-3, True, "factor of 1000: check the unit"),
        (1.905, 1905, False, "a k in a table is 1000"),
        (4.0, 2.0, False, "about twice"),
        (1.0, 2.0, False, "about half"),
        (95.6, 9.56, False, "power of ten"),
        (-3, 3, False, "sign"),
        (2.6, 2.0, False, "too high"),
    ],
)
def test_a_wrong_number_gets_a_hint_for_its_mistake(answer: float, truth: float, duration: bool, words: str) -> None:
    hint = mistake(answer, truth, duration)
    assert words in hint
    assert str(truth) not in hint  # never the answer itself


def _answers(tmp_path: Path, lab: int, **changed: Any) -> Path:
    data = yaml.safe_load((SOLUTIONS / f"lab{lab}.yml").read_text())
    data.update(changed)
    path = tmp_path / f"lab{lab}.yml"
    path.write_text(yaml.safe_dump(data))
    for extra in SOLUTIONS.glob(f"lab{lab}-*"):
        (tmp_path / extra.name).write_bytes(extra.read_bytes())
    return path


def test_answers_copied_from_the_tables_pass(tmp_path: Path) -> None:
    # lab 3 task 3: the lead at 1 ms as the table shows it; lab 4 task 6: slowdowns with their x and k.
    three = check("3", "--answers", str(_answers(tmp_path, 3, dmvx_lead_calls_1ms="1.91k")), "--task", "3")
    assert three.exit_code == ExitStatus.OK, three.stderr
    four = check(
        "4",
        "--answers",
        str(_answers(tmp_path, 4, defended_write_slowdown="9577.00x", dmon_write_slowdown="9.56k")),
        "--task",
        "6",
    )
    assert four.exit_code == ExitStatus.OK, four.stderr


def test_the_harmful_call_as_the_attack_table_shows_it_passes(tmp_path: Path) -> None:
    result = check("5", "--answers", str(_answers(tmp_path, 5, disjoint_harm="open of /etc/shadow")), "--task", "1")
    assert result.exit_code == ExitStatus.OK, result.stderr


def test_every_wrong_key_of_a_task_is_reported_with_its_own_hint(tmp_path: Path) -> None:
    answers = _answers(tmp_path, 4, window_calls_cb64=66, window_time_cb64="4.02us")
    result = check("4", "--answers", str(answers), "--task", "3")
    assert result.exit_code == ExitStatus.ATTACK_MISSED
    text = result.stderr.replace("\n", " ")
    assert "window_calls_cb64: " in text and "window_time_cb64: " in text, result.stderr
    (hint,) = re.findall(r"hint: (.+)", result.stderr)
    assert "window_calls_cb64: about twice" in hint and "window_time_cb64: off by a factor of 1000" in hint


def test_sim_only_leaves_the_real_mode_tasks_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[Any] = []
    module = types.ModuleType("realmode.cli_entry")
    module.real = lambda **kwargs: reached.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "realmode.cli_entry", module)
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # as root: without --sim-only real mode would start
    lab = get_lab(6)
    result = check("6", "--answers", str(_answers(tmp_path, 6)), "--sim-only", "--json")
    assert reached == []
    import json

    document = json.loads(result.stdout)
    statuses = {t["task"]: t["status"] for t in document["tasks"]}
    assert {n for n, s in statuses.items() if s == "skipped"} == {t.number for t in lab.tasks if t.needs_root}
    assert all(s == "pass" for n, s in statuses.items() if statuses[n] != "skipped")
    assert document["skipped"] >= 1 and result.exit_code == ExitStatus.OK
    shown = check("6", "--answers", str(_answers(tmp_path, 6)), "--sim-only")
    assert "not run: --sim-only" in shown.stderr and "SKIP task" in shown.stderr
