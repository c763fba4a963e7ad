"""``dmvx real --server lighttpd``: the case study's lighttpd from the command line.

Debian's lighttpd as leader (h1) and follower (h2) of ``two-host``, natively
first; the client host checks a few bodies of every size against their
SHA-256, then ``ab`` asks for the 4 KiB file. With ``--record`` the run's
trace replays in sim (issue 7, item 3: a recorded lighttpd trace). A missing
lighttpd or ab is one line and exit status 4.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dmvx.exitstatus import ExitStatus
from dmvx.trace import TraceCall, TraceEnd, read_trace
from realmode.net.lighttpd import SIZES
from test_net_record import replay
from test_net_support import REPO, dmvx_command, needs_mininet, run_dmvx

pytestmark = [pytest.mark.root]
needs_lighttpd = pytest.mark.skipif(
    shutil.which("lighttpd", path=os.environ.get("PATH", "") + ":/usr/sbin") is None or shutil.which("ab") is None,
    reason="needs Debian's lighttpd and apache2-utils (ab)",
)

REQUESTS = 30
SAMPLE = 8


@needs_mininet
@needs_lighttpd
def test_lighttpd_serves_from_the_command_line_and_its_trace_replays(clean_check, tmp_path: Path) -> None:
    trace_path = tmp_path / "lighttpd.jsonl"
    done = run_dmvx(
        "real",
        "--server",
        "lighttpd",
        "--requests",
        str(REQUESTS),
        "--sample",
        str(SAMPLE),
        "--record",
        str(trace_path),
        "--json",
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] is None and report["outcome"] == "ok"
    for run in ("native", "mvx"):
        client = report[run]
        assert client["error"] is None, client
        assert client["requests"] == client["asked"] == REQUESTS and client["bytes"] == REQUESTS * 4096
        assert client["digests"] == {
            "checked": SAMPLE,
            "wrong": 0,
            "asked": SAMPLE,
            "bytes": SAMPLE // len(SIZES) * sum(SIZES.values()),
        }
    assert report["variants"][0]["argv"][1:3] == ["-D", "-f"] and "lighttpd" in report["variants"][0]["argv"][0]

    # lighttpd never exits: the run stopped it once the client was done, so
    # both streams end killed, after the same calls.
    trace = read_trace(trace_path)
    leader, follower = ([e for e in trace.streams[i] if isinstance(e, TraceCall)] for i in (0, 1))
    assert trace.streams[0][-1] == trace.streams[1][-1] == TraceEnd("killed", 9)
    assert len(leader) == len(follower) == int(report["trace"]["calls"]["0"])
    assert sum(c.call.name == "accept4" for c in leader) >= REQUESTS + SAMPLE
    replay(trace_path, len(leader))


def test_sample_needs_a_server(clean_check) -> None:
    done = run_dmvx("real", "--sample", "5")
    assert done.returncode == ExitStatus.USAGE
    assert len(done.stderr.strip().splitlines()) == 1 and "--sample" in done.stderr


def test_a_missing_client_program_is_one_line(clean_check, tmp_path: Path) -> None:
    """Without ab on the PATH (lighttpd is looked for in /usr/sbin too), the
    command stops before building anything: one line, status 4."""
    env = dict(os.environ, PATH=str(tmp_path))
    done = subprocess.run(
        dmvx_command("real", "--server", "lighttpd"), capture_output=True, text=True, timeout=60, cwd=REPO, env=env
    )
    assert done.returncode == ExitStatus.ENVIRONMENT, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "not installed" in done.stderr
