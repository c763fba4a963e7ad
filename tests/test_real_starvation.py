"""A follower the machine does not run is not a stalled one
(realmode.tracer.starvation): squeezed off its CPU by other work, it ends
the run as natively; one spinning in a loop is still reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_real_support import POLICIES, REAL_RUNS, no_strays  # noqa: F401

pytestmark = REAL_RUNS

#: CPU hogs, each a session (and so a scheduler autogroup) of its own, as
#: other people's work on a shared machine is: with ten of them on its CPU
#: the follower gets about a tenth of it.
HOGS = 10
#: Iterations of a shell loop that makes no call: about 0.25 CPU seconds,
#: 2.5 s or more of wall clock at a tenth of a CPU.
LOOP = 120_000
#: Nothing a hog runs longer than this, whatever happens to the test.
HOG_LIMIT = 30.0


def _dmvx(policy: str, *argv: str, variant: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dmvx", "run", "--stall-timeout", "1", "--policy", policy]
    command += ["--variant", variant] if variant is not None else []
    return subprocess.run(
        [*command, "--", *argv], capture_output=True, timeout=120, start_new_session=True, stdin=subprocess.DEVNULL
    )


def _hog(cpu: int, go: Path) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setsid()
            os.sched_setaffinity(0, {cpu})
            end = time.monotonic() + HOG_LIMIT
            while not go.exists() and time.monotonic() < end:
                time.sleep(0.005)
            while time.monotonic() < end:
                pass
        finally:
            os._exit(0)
    return pid


@pytest.mark.parametrize("policy", POLICIES)
def test_a_follower_squeezed_off_its_cpu_is_not_reported(policy: str, tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("the squeeze needs the follower on a CPU of its own")
    # Both presets' placement puts the follower's program on the second CPU
    # (realmode.orchestrator.placement); the hogs start once the program is
    # under way (it makes the file), and its loop makes no call for seconds.
    go = tmp_path / "go"
    script = f'touch {go}; sleep 0.3; i=0; while [ $i -lt {LOOP} ]; do i=$((i+1)); done; echo "$i"'
    hogs = [_hog(cpus[1], go) for _ in range(HOGS)]
    try:
        done = _dmvx(policy, "sh", "-c", script)
    finally:
        for pid in hogs:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert done.returncode == 0 and done.stdout == f"{LOOP}\n".encode(), done.stderr.decode()
    assert b"dmvx:" not in done.stderr, done.stderr.decode()


@pytest.mark.parametrize("policy", POLICIES)
def test_a_follower_spinning_in_a_loop_is_still_reported(policy: str) -> None:
    start = time.monotonic()
    done = _dmvx(policy, "sh", "-c", ": ; echo hi", variant="sh -c 'while :; do :; done; echo hi'")
    said = done.stderr.decode()
    assert done.returncode == 1 and "no-progress" in said and "odd one out: follower 1" in said, said
    assert time.monotonic() - start < 60, said
