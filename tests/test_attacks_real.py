"""The attack scenarios in real mode, and each against sim mode (issue 6,
items 3, 4 and 5). Root: real programs on Mininet hosts.

pytest collects the same files as ``dmvx suite scenarios/attacks``: one test
per attack and diversity setting, which runs the setting in real mode, holds
it to the file's ``expect.real`` and then to what sim mode finds for the same
point (outcome, verdict kind, effect). A setting real mode cannot run (an
aarch64 follower) is skipped with the file's reason.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from dmvx.scenario import NotRun, load_scenario
from realmode.suite import run_point
from sim.attacks import sim_cells
from sim.cli_entry import run as sim_run
from test_net_support import REPO, needs_mininet

pytestmark = [pytest.mark.root, needs_mininet]

ATTACKS = Path(__file__).resolve().parent.parent / "scenarios" / "attacks"
POINTS = [(path, name) for path in sorted(ATTACKS.glob("*.yml")) for name in load_scenario(path).diversity or {}]
ABSOLUTE = ("stack-overflow", "heap-overflow")


def _sim_cell(path: Path, setting: str, overrides: dict[str, str] | None = None):
    result = sim_run(
        path,
        seed=None,
        overrides={"setting": setting, **(overrides or {})},
        plot=None,
        console=Console(file=io.StringIO()),
    )
    (cell,) = sim_cells(
        str(path), [replace(p, labels={"setting": setting}) for p in result.points], load_scenario(path)
    )
    return cell


@pytest.mark.parametrize("path,setting", POINTS, ids=[f"{p.stem}-{s}" for p, s in POINTS])
def test_attack_in_real_mode_and_against_sim(clean_check, path: Path, setting: str) -> None:
    point = load_scenario(path).with_values({"setting": setting}).model_copy(update={"sweep": None})
    wanted = point.expectation("real")
    if isinstance(wanted, NotRun):
        pytest.skip(f"real mode: {wanted.skip}")
    cell = run_point(str(path), point, setting)
    assert cell.error is None, cell.to_json()
    assert cell.as_expected, f"expected {cell.expected}, found {cell.found()}: {cell.detail}"
    # Item 3 in detail.
    assert point.attack is not None
    attack = point.attack.kind
    if cell.outcome == "divergence" and attack == "record-forgery":
        # The leader's answer to the request its record hid ran before the
        # followers' answer was compared with it: it left the machine.
        assert cell.details["verdict_calls"]["leader"].startswith("writev(1, b'answer: GET /secret")
        assert any(call.startswith("writev(1, b'answer: GET /secret") for call in cell.details["ran_ahead"])
        assert cell.details["paths"] == ["in-process", "in-process"] and cell.effect is True
    elif cell.outcome == "divergence":
        assert cell.latency_s is not None and cell.latency_s < 1.0
        calls = cell.details["verdict_calls"]
        if path.stem in ABSOLUTE:
            # Stopped at the leader's execve of the shell, which never ran.
            assert calls["leader"].startswith("execve('/bin/sh'") and cell.effect is False
        if attack in ("pointer-leak", "data-only"):
            assert cell.details["answer"] == "", "bytes left the leader"
    if cell.outcome == "missed":
        assert cell.effect is True and cell.verdict is None
    if cell.outcome == "rejected":
        assert cell.verdict == "auth-failure" and cell.latency_s is not None
    # Item 5: the same finding as sim mode.
    sim = _sim_cell(path, setting)
    assert (sim.outcome, sim.verdict, sim.effect) == (cell.outcome, cell.verdict, cell.effect), (
        f"sim: {sim.found()}; real: {cell.found()}"
    )


#: One cell of each exploit whose server reads its request and writes its
#: answer through calls the in-process path runs without a stop (read,
#: writev, recvfrom), under a setting where the variants differ: what the
#: path could change -- the leak leaving before the verdict, a verdict on a
#: call the core saw late -- would show in these.
ON_THE_PATH = [
    ("stack-overflow", "aslr"),
    ("heap-overflow", "disjoint"),
    ("partial-overwrite", "abi"),
    ("format-string", "aslr"),
    ("struct-overflow", "abi"),
]


@pytest.mark.parametrize("name,setting", ON_THE_PATH, ids=[f"{n}-{s}" for n, s in ON_THE_PATH])
def test_the_in_process_path_finds_what_the_ptrace_path_finds(
    clean_check, monkeypatch, name: str, setting: str
) -> None:
    """DMVX_IN_PROCESS=on (the emulated hosts' agents take the path): the
    cell ends as the file's ``expect.real`` says -- what the ptrace path is
    held to in the test above -- with the same verdict kind and effect, and
    both variants took the path. (``DMVX_IN_PROCESS=on pytest`` of this file
    runs every cell on the path; this keeps five of them there in every run.)"""
    monkeypatch.setenv("DMVX_IN_PROCESS", "on")
    path = ATTACKS / f"{name}.yml"
    point = load_scenario(path).with_values({"setting": setting}).model_copy(update={"sweep": None})
    cell = run_point(str(path), point, setting)
    assert cell.error is None, cell.to_json()
    assert cell.as_expected, f"expected {cell.expected}, found {cell.found()}: {cell.detail}"
    assert cell.details["paths"] == ["in-process", "in-process"], cell.details
    if point.attack is not None and point.attack.kind in ("pointer-leak", "data-only") and cell.outcome == "divergence":
        assert cell.details["answer"] == "", "bytes left the leader"


@pytest.mark.parametrize("setting", ["aslr", "abi"])
def test_under_socket_rw_the_leak_leaves_before_the_verdict_in_both_modes(clean_check, setting: str) -> None:
    """Why format-string.yml puts socket writes in lockstep: without it the
    run is still stopped, but after the leader sent the pointer."""
    path = ATTACKS / "format-string.yml"
    point = load_scenario(path).with_values({"setting": setting, "policy.relaxation": "socket-rw"})
    cell = run_point(str(path), point.model_copy(update={"sweep": None}), setting)
    assert (cell.outcome, cell.verdict, cell.effect) == ("divergence", "output-mismatch", True), cell.to_json()
    sim = _sim_cell(path, setting, {"policy.relaxation": "socket-rw"})
    assert (sim.outcome, sim.verdict, sim.effect) == ("divergence", "output-mismatch", True)


def test_suite_command_in_both_modes(clean_check) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dmvx", "suite", str(ATTACKS / "struct-overflow.yml"), "--mode", "both", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    assert document["agreement"] == {"compared": 4, "disagreements": []}
    cells = document["real"]["cells"]
    assert [(c["setting"], c["outcome"]) for c in cells] == [
        ("identical", "missed"),
        ("aslr", "missed"),
        ("disjoint", "missed"),
        ("abi", "divergence"),
        ("isa", None),
    ]
    assert cells[3]["verdict"] == "call-mismatch" and cells[3]["latency_s"] > 0
