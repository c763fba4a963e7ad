"""``dmvx sim`` holds an attack to the ``effect`` its scenario expects, as
``dmvx suite`` does: a run whose verdict is as expected but whose attack
reached (or missed) its goal against the file's word exits 3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from dmvx.cli import cli
from dmvx.exitstatus import ExitStatus

STACK = Path(__file__).resolve().parent.parent / "scenarios" / "attacks" / "stack-overflow.yml"
ASLR_SIM = "sim: {verdict: divergence, kind: crash, effect: false}"


def wrong_effect(tmp_path: Path) -> Path:
    """stack-overflow.yml with the aslr setting expecting the shell to run:
    the verdict (divergence, crash) still holds, the effect does not."""
    text = STACK.read_text()
    start = text.index("  aslr:")
    at = text.index(ASLR_SIM, start)
    shutil.copytree(STACK.parent / "topologies", tmp_path / "topologies")
    path = tmp_path / "stack-overflow.yml"
    path.write_text(text[:at] + ASLR_SIM.replace("effect: false", "effect: true") + text[at + len(ASLR_SIM) :])
    return path


def sim(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["sim", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_a_wrong_effect_exits_3_for_one_setting(tmp_path: Path) -> None:
    code, document = sim(str(wrong_effect(tmp_path)), "--set", "setting=aslr")
    (point,) = document["points"]
    assert point["outcome"] == "divergence" and point["verdict"]["kind"] == "crash"
    assert point["effect"] is False and point["expected"]["effect"] is True
    assert point["as_expected"] is False
    assert code == ExitStatus.ATTACK_MISSED and document["exit_status"] == ExitStatus.ATTACK_MISSED.label


def test_a_wrong_effect_exits_3_in_the_sweep_over_settings(tmp_path: Path) -> None:
    code, document = sim(str(wrong_effect(tmp_path)))
    assert code == ExitStatus.ATTACK_MISSED
    failed = [p["labels"]["setting"] for p in document["points"] if p["as_expected"] is False]
    assert failed == ["aslr"]


def test_the_shipped_file_is_as_expected_effects_included() -> None:
    code, document = sim(str(STACK))
    assert code == ExitStatus.OK
    effects = {p["labels"]["setting"]: (p["effect"], p["expected"]["effect"]) for p in document["points"]}
    assert effects == {
        "identical": (True, True),
        "aslr": (False, False),
        "disjoint": (False, False),
        "abi": (False, False),
        "isa": (False, False),
    }
