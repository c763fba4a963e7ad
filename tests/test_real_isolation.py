"""A compromised variant cannot reach dmvx, nor anything outside its own tree.

``realmode/targets/hostile.c`` tries, one way per run, to read and write its
monitor's memory, trace it, read its environment, signal it, signal dmvx's
process group, every process, its own group, and a process outside the run.
Under both presets each attempt is refused (by the core: the call never runs)
or contained (its own group), the run ends as the program does, with dmvx's
own report, and nothing is left running. The kernel's line is tested on its
own: with the core told that every pid is the variant's, the same attempts
still fail (realmode/isolation.py). And a call that reaches outside runs
once: the outside process gets one signal, not one per variant.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dmvx.policy import Reach
from dmvx.verdict import VerdictKind
from realmode import isolation
from realmode.orchestrator import run
from test_real_support import POLICIES, REAL_RUNS, assert_no_survivors, captured, compile_target, no_strays  # noqa: F401

pytestmark = REAL_RUNS


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> str:
    return compile_target("hostile", tmp_path_factory.mktemp("targets"))


def _dmvx_run(policy: str, *argv: str, variant: list[str] | None = None) -> tuple[dict, str]:
    """``dmvx run --json`` in a session of its own, so that whatever the
    variant reaches, this test's process is not in its group; (the JSON
    document, the leader's output). No JSON means dmvx did not survive."""
    extra = [arg for cmd in (variant or []) for arg in ("--variant", cmd)]
    done = subprocess.run(
        [sys.executable, "-m", "dmvx", "run", "--policy", policy, "--json", *extra, "--", *argv],
        capture_output=True,
        timeout=60,
        start_new_session=True,
    )
    assert done.stdout, f"dmvx did not survive (status {done.returncode}): {done.stderr.decode()[-500:]}"
    return json.loads(done.stdout), done.stderr.decode()


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "how, refused",
    [
        ("mem", "mem -1 EACCES"),
        ("environ", "environ -1 EACCES"),
        ("ptrace", "ptrace -1 EPERM"),
        ("vm-write", "vm-write -1 EPERM"),
        ("vm-read", "vm-read -1 EPERM"),
        ("kill-parent", "kill-parent -1 EPERM"),
        ("kill-all", "kill-all -1 EPERM"),
        ("kill-dmvx", "kill-dmvx -1 EPERM"),
    ],
)
def test_every_way_to_the_monitor_is_refused(hostile: str, policy: str, how: str, refused: str) -> None:
    report, output = _dmvx_run(policy, hostile, how)
    assert report["status"] == "ok" and report["verdict"] is None, report
    assert report["program_status"] == 0
    assert refused in output.splitlines(), output


@pytest.mark.parametrize("policy", POLICIES)
def test_kill_0_stays_in_the_variants_own_group(hostile: str, policy: str) -> None:
    # Before: variants shared dmvx's process group, and kill(0, SIGKILL)
    # ended dmvx itself (exit 137, no report). Now each variant kills only
    # itself, in step: the program's status, reported by dmvx.
    report, _ = _dmvx_run(policy, hostile, "kill-group")
    assert report["status"] == "ok" and report["program_status"] == 128 + signal.SIGKILL, report


@pytest.mark.parametrize("policy", POLICIES)
def test_own_tree_is_the_variants_to_signal(hostile: str, policy: str) -> None:
    report, output = _dmvx_run(policy, hostile, "own-tree")
    assert report["status"] == "ok", report
    assert output.splitlines()[-2:] == ["own-kill 0 ok", "own-wait 0 ok"], output


@pytest.mark.parametrize("policy", POLICIES)
def test_a_leader_alone_reaching_for_its_monitor_is_stopped_first(hostile: str, policy: str) -> None:
    # Only the leader is compromised: the open of /proc/<monitor>/mem is a
    # lockstep call now (it was replicated asynchronously under dmvx: the
    # leader opened it before any follower was compared), so it meets the
    # follower's different call and never runs.
    report, output = _dmvx_run(policy, hostile, "mem", variant=[f"{hostile} mem", f"{hostile} environ"])
    assert report["status"] == "divergence", report
    assert report["verdict"]["kind"] == VerdictKind.ARG_MISMATCH.value
    assert "mem" not in output.split(), output


_COUNTER = """
import signal, sys, time
count = 0
def got(*_):
    global count
    count += 1
signal.signal(signal.SIGUSR1, got)
signal.signal(signal.SIGTERM, lambda *_: (print(count, flush=True), sys.exit(0)))
print("ready", flush=True)
while True:
    time.sleep(0.01)
"""


@pytest.mark.parametrize("policy", POLICIES)
def test_a_signal_outside_the_run_is_sent_once(hostile: str, policy: str) -> None:
    outside = subprocess.Popen([sys.executable, "-c", _COUNTER], stdout=subprocess.PIPE, text=True)
    assert outside.stdout is not None
    try:
        assert outside.stdout.readline() == "ready\n"
        report, output = _dmvx_run(policy, hostile, "kill", str(outside.pid))
        assert report["status"] == "ok", report
        assert "kill 0 ok" in output.splitlines()
        time.sleep(0.1)
        outside.terminate()
        received = int(outside.stdout.readline())
    finally:
        outside.kill()
        outside.wait()
    assert received == 1, f"the outside process got SIGUSR1 {received} times"


class _EveryPidIsTheTrees:
    """A scope that tells the core every pid is the variant's own, as a core
    that missed a call would: what stops the variant then is the kernel."""

    def __init__(self, in_tree, run: int) -> None:
        pass

    def __call__(self, pid: int) -> Reach:
        return Reach.TREE


@pytest.mark.parametrize(
    "how, denied",
    [
        ("mem", "mem -1 EACCES"),
        ("ptrace", "ptrace -1 EPERM"),
        ("vm-write", "vm-write -1 EPERM"),
        ("vm-read", "vm-read -1 EPERM"),
        ("kill-parent", "kill-parent -1 EPERM"),
    ],
)
def test_the_kernel_holds_where_the_core_would_not(hostile: str, monkeypatch, how: str, denied: str) -> None:
    monkeypatch.setattr(isolation, "ProcessScope", _EveryPidIsTheTrees)
    result, out, _ = captured(lambda: run([[hostile, how], [hostile, how]], "dmon"))
    assert result.verdict is None and result.error is None, result.to_json()
    assert denied in out.decode().splitlines(), out
    assert_no_survivors(result)


def _holds(pid: int, needle: bytes) -> bool:
    """Whether ``needle`` is anywhere in the writable memory of ``pid``."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if "w" not in fields[1]:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except OSError:
                continue
    return False


def test_the_run_key_is_only_in_the_connectors(tmp_path, monkeypatch) -> None:
    # A key this test can look for. It is written a byte at a time and the
    # whole of it is made only once the monitors exist: a copy in this
    # process's memory (where the monitors are forked from) would be found
    # in theirs.
    draw = random.Random(13)
    values = [draw.randrange(256) for _ in range(isolation.RunKey.SIZE)]
    fd = os.open(tmp_path / "key", os.O_WRONLY | os.O_CREAT)
    for value in values:
        os.write(fd, bytes((value,)))
    os.close(fd)
    monkeypatch.setattr(isolation.RunKey, "source", str(tmp_path / "key"))
    found: dict[str, list[bool]] = {}

    def look() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(found.get("monitor", [])) < 2:
            found.clear()
            helpers = [int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]
            roles = {}
            for child in helpers:
                try:
                    roles[child] = (
                        "monitor" if Path(f"/proc/{child}/task/{child}/children").read_text().split() else "connector"
                    )
                except OSError:
                    continue
            if list(roles.values()).count("monitor") == 2:
                marker = bytes(values)
                try:
                    for child, role in roles.items():
                        found.setdefault(role, []).append(_holds(child, marker))
                except OSError:  # one ended while it was scanned: scan them all again
                    found.clear()
            time.sleep(0.1)

    watcher = threading.Thread(target=look)
    watcher.start()
    # (The scan takes CPU time the monitors would use: no stall verdict for that.)
    result, _, _ = captured(lambda: run([["sleep", "3"], ["sleep", "3"]], "dmvx", stall_timeout=30))
    watcher.join()
    assert result.verdict is None, result.to_json()
    assert found.get("connector") == [True, True], found  # the scan finds it where it is
    assert found.get("monitor") == [False, False], found
