"""``dmvx real``, item 4: nothing is left, whatever way a run ends.

Every test here takes ``ip -o link`` and the process table before and after
(:class:`test_net_support.Snapshot`): no interface, process or network
namespace of the run may survive it -- after a clean end, a divergence, an
exception in the middle, Ctrl-C, SIGTERM, and an orchestrator killed outright
(whose processes die with it and whose bridges the next run removes). And
cleanup touches only what this run made.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from typing import Any

import pytest

from dmvx.exitstatus import EnvironmentProblem, ExitStatus
from realmode.net import experiment as ex
from realmode.net import runs
from test_net_support import REPO, Snapshot, dmvx_command, ip_links, needs_mininet, outcome_of, two_host_run

pytestmark = [pytest.mark.root, needs_mininet]


def _config(**changes: object) -> ex.Config:
    config = two_host_run(ex.Workload(requests=60, pace=0.01))
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def _assert_clean(before: Snapshot) -> None:
    left = before.leftovers()
    assert not any(left.values()), left


def test_clean_end_and_divergence_leave_nothing() -> None:
    before = Snapshot()
    ok = ex.NetExperiment(_config()).run()
    assert ok.verdict is None and outcome_of(ok).error is None
    _assert_clean(before)
    diverged = ex.NetExperiment(_config(attack=ex.NetAttack("exploit", "h3"))).run()
    assert diverged.verdict is not None
    _assert_clean(before)
    for result in (ok, diverged):
        assert runs.leftovers(result.run_id, result.pids) == {"links": [], "processes": []}
        assert len(result.pids) >= 8  # shells, relay, monitors, CONNECTORs, client: all were tracked


def test_an_exception_mid_run_leaves_nothing() -> None:
    before = Snapshot()
    seen: dict[str, Any] = {}

    def fail(experiment: ex.NetExperiment) -> None:
        seen["run_id"] = experiment.run_id
        seen["links"] = runs.run_links(experiment.run_id)
        raise RuntimeError("a failure injected mid-run")

    with pytest.raises(RuntimeError, match="injected"):
        ex.NetExperiment(_config(), faults=[ex.Fault(0.2, fail, "fail")]).run()
    assert seen["links"], "the network was up when the failure came"
    _assert_clean(before)
    assert runs.leftovers(seen["run_id"]) == {"links": [], "processes": []}


def test_a_host_lost_before_the_monitored_run_is_one_line_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The leader host's shell (which holds its namespace) dies after the
    # network is up and before the monitors start, as it did three times
    # under nice at load ~20: one line naming the host, never a
    # FileNotFoundError from Agents.start, and nothing left behind.
    before = Snapshot()
    seen: dict[str, Any] = {}
    builds = ex.NetExperiment._builds

    def lose_h1(experiment: ex.NetExperiment) -> list[str]:
        seen["run_id"] = experiment.run_id
        shell = experiment.net.nodes["h1"].shell
        shell.kill()
        shell.wait()
        return builds(experiment)

    monkeypatch.setattr(ex.NetExperiment, "_builds", lose_h1)
    with pytest.raises(EnvironmentProblem) as lost:
        ex.NetExperiment(_config()).run()
    assert (
        str(lost.value)
        == "dmvx real: the shell of host h1 ended during the run (killed by signal 9); its network is gone"
    )
    _assert_clean(before)
    assert runs.leftovers(seen["run_id"]) == {"links": [], "processes": []}


_STARTED: list[tuple[subprocess.Popen, list[str]]] = []


@pytest.fixture(autouse=True)
def _no_stray_runs():
    """Whatever a failing test leaves half done here is ended and removed."""
    yield
    while _STARTED:
        process, run_ids = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.communicate()
        for run_id in run_ids:
            runs.clean(run_id)


def _start_cli(tmp_path, requests: int) -> subprocess.Popen:
    """``dmvx real`` on a scenario long enough to be interrupted."""
    scenario = tmp_path / "long.yml"
    scenario.write_text(f"topology: two-host\nworkload: {{kind: server, requests: {requests}, file_size: 1KiB}}\n")
    process = subprocess.Popen(
        dmvx_command("real", "--scenario", str(scenario)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _STARTED.append((process, []))
    return process


def _wait_for(process: subprocess.Popen, text: str, timeout: float = 30) -> tuple[str, str]:
    """Read stderr until a line containing ``text``; (run id, lines so far)."""
    deadline = time.monotonic() + timeout
    seen = ""
    stderr = process.stderr
    assert stderr is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stderr], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = stderr.readline()
        if not line:
            break
        seen += line
        match = re.search(r"run ([0-9a-f]{5})", line)
        if match:
            for started, run_ids in _STARTED:
                if started is process:
                    run_ids.append(match.group(1))
        if text in line:
            match = re.search(r"run ([0-9a-f]{5})", seen)
            assert match, seen
            return match.group(1), seen
    process.kill()
    raise AssertionError(f"{text!r} never came: {seen}")


@pytest.mark.parametrize(
    "signum,phase",
    [
        (signal.SIGINT, "run under the monitors"),
        (signal.SIGINT, "native run"),
        (signal.SIGTERM, "run under the monitors"),
    ],
)
def test_interrupted_run_leaves_nothing(tmp_path, signum: int, phase: str) -> None:
    before = Snapshot()
    process = _start_cli(tmp_path, 150)
    run_id, _ = _wait_for(process, phase)
    time.sleep(0.4)
    assert runs.run_links(run_id), "the network is up"
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == ExitStatus.INTERRUPTED, err
    assert "interrupted" in err
    _assert_clean(before)
    assert runs.leftovers(run_id) == {"links": [], "processes": []}


def test_orchestrator_killed_outright(tmp_path) -> None:
    before = Snapshot()
    process = _start_cli(tmp_path, 150)
    run_id, _ = _wait_for(process, "run under the monitors")
    time.sleep(0.4)
    process.kill()
    process.communicate(timeout=10)
    # Nothing could clean up: every process dies with the orchestrator
    # (PR_SET_PDEATHSIG, and EXITKILL for the variants); the bridges stay
    # until the next run, which removes what dead runs left.
    deadline = time.monotonic() + 2
    while True:
        left = before._leftovers()
        gone = not (left["marked_processes"] or left["processes_in_new_namespaces"] or left["children"])
        if gone or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert gone, left
    assert runs.run_links(run_id)
    assert run_id in runs.reap_stale()
    _assert_clean(before)


def test_cleanup_removes_only_what_this_run_made() -> None:
    other_run = "dmvxfffffb0"  # what another (live) run's bridge would look like
    foreign = "nodmvxtestbr"
    for name in (other_run, foreign):
        subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        result = ex.NetExperiment(_config(workload=ex.Workload(requests=5))).run()
        assert result.verdict is None
        assert {other_run, foreign} <= ip_links()
        assert runs.run_links(result.run_id) == []
    finally:
        for name in (other_run, foreign):
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def test_another_live_run_is_not_this_tests_leftover() -> None:
    # A run owned by a live process outside this test session (another
    # engineer's tests, a benchmark) that starts during a test: its bridge
    # is not this test's leftover, and the clean_check must not clean it up
    # (runs.clean of that run killed a benchmark's Mininet shells so).
    env = {k: v for k, v in os.environ.items() if k != "DMVX_TEST_SESSION"}
    owner = subprocess.Popen(["sleep", "30"], env=env)
    run_id = runs.new_run_id()
    bridge = runs.bridge_name(run_id, 0)
    try:
        before = Snapshot()
        state = runs.RunState(run_id, owner.pid)
        state.save()
        subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
        left = before.leftovers(settle=0)
        assert bridge not in left["links"], left
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        runs.clean(run_id)
        owner.kill()
        owner.wait()
