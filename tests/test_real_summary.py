"""``dmvx run --summary``: the calls per variant and route, as ``strace -c`` counts them.

The tracer counts where it handles stops (realmode/tracer/tally.py); the
run's typed summary (realmode/callsummary.py) is drawn for people, written
into ``--json`` and flattened for ``--format``. A program whose calls are
known is counted exactly, in every variant, under both presets.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from dmvx.policy import Route
from realmode.callsummary import COLUMNS, CallRow, CallSummary
from realmode.orchestrator import run
from test_real_support import POLICIES, REAL_RUNS, assert_no_survivors, captured, no_strays  # noqa: F401

pytestmark = REAL_RUNS

PYTHON = "/usr/bin/python3"
#: 40 getppid calls (replicated) and 7 rmdir that fail (ENOENT; the core
#: names them unlinkat, and runs them in lockstep).
PROGRAM = [
    PYTHON,
    "-c",
    "import os\nfor _ in range(40): os.getppid()\n"
    "for _ in range(7):\n    try: os.rmdir('/nonexistent/x')\n    except OSError: pass",
]


def _row(summary: CallSummary, variant: int, call: str) -> CallRow:
    [row] = [r for r in summary.rows if r.variant == variant and r.call == call]
    return row


@pytest.mark.parametrize("policy", POLICIES)
def test_every_variant_s_calls_are_counted_per_route(policy: str) -> None:
    result, _, _ = captured(lambda: run([PROGRAM, PROGRAM], policy, summary=True))
    assert result.verdict is None and result.process_exit_code == 0, result.to_json()
    summary = result.summary
    assert summary is not None
    for variant in (0, 1):
        getppid = _row(summary, variant, "getppid")
        assert (getppid.route, getppid.calls, getppid.errors) == (Route.REPLICATE, 40, 0)
        rmdir = _row(summary, variant, "unlinkat")
        assert (rmdir.route, rmdir.calls, rmdir.errors) == (Route.LOCKSTEP, 7, 7)
        mine = [r for r in summary.rows if r.variant == variant]
        assert all(r.stopped_s >= 0 and r.monitor_s >= 0 for r in mine)
        assert sum(r.stopped_s for r in mine) > 0 and sum(r.monitor_s for r in mine) > 0
        assert [r.stopped_s for r in mine] == sorted((r.stopped_s for r in mine), reverse=True)
    # The tally is the summary's, not each variant's figures' as well.
    document = result.to_json()
    assert document["summary"] == summary.to_json()
    assert all("calls" not in v for v in document["variants"])
    assert_no_survivors(result)


def test_without_summary_nothing_is_counted() -> None:
    result, _, _ = captured(lambda: run([PROGRAM, PROGRAM], "dmvx"))
    assert result.summary is None and "summary" not in result.to_json()
    assert all("calls" not in v.stats for v in result.variants)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dmvx", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_the_command_line_in_every_output_format() -> None:
    # Text: the program's output alone on stdout, a table per variant on stderr.
    done = _cli("--summary", "--", "sh", "-c", "echo hi; cat /nonexistent 2>/dev/null; true")
    assert done.returncode == 0 and done.stdout == "hi\n", done.stderr
    assert "calls of the leader" in done.stderr and "calls of the follower 1" in done.stderr
    assert "total" in done.stderr and "lockstep" in done.stderr
    # --json: the summary list.
    done = _cli("-c", "--json", "--", *PROGRAM)
    rows = json.loads(done.stdout)["summary"]
    assert {(r["variant"], r["route"], r["calls"], r["errors"]) for r in rows if r["call"] == "unlinkat"} == {
        ("leader", "lockstep", 7, 7),
        ("follower 1", "lockstep", 7, 7),
    }
    # --format csv: one row per variant, call and route.
    done = _cli("-c", "--format", "csv", "--", *PROGRAM)
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(table[0]) == ["policy", *(c.name for c in COLUMNS)]
    getppid = [r for r in table if r["call"] == "getppid"]
    assert [(r["variant"], r["route"], r["calls"]) for r in getppid] == [
        ("leader", "replicate", "40"),
        ("follower 1", "replicate", "40"),
    ]
    assert all(float(r["stopped_s"]) >= 0 for r in table)
