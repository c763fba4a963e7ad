"""``dmvx run`` ends on SIGTERM as on Ctrl-C: every process killed, status 130.

The run's program sleeps; the signal goes to the ``dmvx run`` process alone
(as ``kill PID`` or a service manager sends it). Its monitors, CONNECTORs and
both variants must be gone at once, and the exit status is the defined
"interrupted" one, never a traceback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dmvx.exitstatus import ExitStatus
from test_real_support import REAL_RUNS, descendants, no_strays, running  # noqa: F401

pytestmark = REAL_RUNS

ROOT = Path(__file__).resolve().parent.parent


def _sleeping_variants(pid: int, timeout: float = 10.0) -> set[int]:
    """The run's processes once both variants are asleep in ``sleep``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = descendants(pid)
        sleepers = [p for p in found if _comm(p) == "sleep"]
        if len(sleepers) == 2:
            return found
        time.sleep(0.05)
    raise AssertionError(f"the variants never started: {sorted(found)}")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("policy", ["dmvx", "dmon"])
def test_run_ends_on_signal_killing_everything(sig: signal.Signals, policy: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dmvx", "run", "--policy", policy, "--", "sleep", "30"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        processes = _sleeping_variants(proc.pid)
        assert len(processes) >= 6  # two monitors, two CONNECTORs, two variants
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == int(ExitStatus.INTERRUPTED), err.decode()
    assert b"Traceback" not in err and b"interrupted" in err
    # Well under 1 s on a quiet machine: the orchestrator ends its monitors,
    # CONNECTORs and variants, each a Python process that needs a CPU to go,
    # which a machine at load 15 on 2 vCPUs gives slowly. 10 s is a third of
    # the 30 s sleep: a run that waited for its program cannot pass.
    assert took < 10.0
    left = [pid for pid in processes if running(pid)]
    assert not left, f"survived the {sig.name}: {left}"
