"""Honest verdicts (issue 15): a verdict says what the leader ran before it
(asynchronous replication), and ``dmvx run --json`` stopped by Ctrl-C or
SIGTERM still writes its document with the figures so far."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from dmvx.exitstatus import ExitStatus
from realmode.orchestrator import run
from test_real_support import REAL_RUNS, assert_no_survivors, captured, descendants, no_strays  # noqa: F401

pytestmark = REAL_RUNS

ROOT = Path(__file__).resolve().parent.parent
#: Writes that run before the branch where one variant differs, and after it.
SCRIPT = (
    "echo before; i=0; while [ $i -lt 3 ]; do echo line $i; i=$((i+1)); done; "
    'if [ -n "$DMVX_EVIL" ]; then echo evil; else echo good; fi; echo after'
)


def _diverging(policy: str):
    argv = ["sh", "-c", SCRIPT]
    env = dict(os.environ)
    result, out, _ = captured(lambda: run([argv, argv], policy, envs=[env, dict(env, DMVX_EVIL="1")]))
    assert result.verdict is not None and "write" in result.verdict.summary(), result.to_json()
    assert_no_survivors(result)
    text = io.StringIO()
    result.render(Console(file=text, width=400))
    return result, out, text.getvalue()


def test_a_verdict_after_the_leader_ran_ahead_says_what_ran_and_what_it_wrote() -> None:
    result, out, message = _diverging("dmvx")
    document = result.to_json()["ran_ahead"]
    ran = [call["call"] for call in document["calls"]]
    # The leader wrote "good" (the call at the verdict) and ran on before the
    # follower compared it: those bytes left the process, and the message says so.
    assert "write(1, b'good\\n', 5)" in ran, document
    assert out.endswith((b"good\n", b"after\n")), out
    assert int(document["written"]["1"]) >= 5
    assert "every variant was stopped before the call ran" not in message
    assert "the call at the verdict among them" in message and "bytes to fd 1" in message, message


def test_a_lockstep_verdict_still_says_nothing_ran() -> None:
    result, out, message = _diverging("dmon")
    assert result.to_json()["ran_ahead"] == {"calls": [], "written": {}}
    assert b"good" not in out
    assert "every variant was stopped before the call ran." in message


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_json_run_still_writes_its_document(sig: signal.Signals) -> None:
    argv = [sys.executable, "-m", "dmvx", "run", "--json", "--", "sh", "-c", "while :; do echo x; sleep 0.1; done"]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while len(descendants(process.pid)) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)  # two monitors, two CONNECTORs and the variants
        time.sleep(0.5)
        process.send_signal(sig)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == ExitStatus.INTERRUPTED, err.decode()
    document = json.loads(out)
    assert document["status"] == "interrupted" and document["interrupted_by"] == sig.name
    assert document["elapsed_s"] > 0 and b"Traceback" not in err
    # The figures so far: every monitor answered before it was stopped.
    assert all(v["stops"] > 0 and v["routes"] for v in document["variants"]), document["variants"]
