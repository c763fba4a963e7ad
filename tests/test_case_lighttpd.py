"""Issue 7, item 1: Debian's lighttpd as leader and follower on two hosts.

``dmvx real``'s experiment with a served program of one's own
(``realmode.net.experiment.Served``): lighttpd with a static tree of 100 B to
1 MiB files, natively on the leader's host and then as leader (h1) and
follower (h2) of ``two-host``; the client host (h3) checks a sample of
bodies against the files' SHA-256 and runs ``ab``. lighttpd never exits, so
the run ends once the client is done; no verdict by then is a clean run.
A small N here; ``benchmarks/bench_lighttpd.py --topology two-host`` runs
the full 10,000 requests and 500 bodies (docs/case-study.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dmvx.verdict import VerdictKind
from realmode.net import experiment as ex
from realmode.net.lighttpd import two_host_config
from test_net_support import kill_agent, needs_mininet

pytestmark = [
    pytest.mark.root,
    needs_mininet,
    pytest.mark.skipif(
        shutil.which("lighttpd") is None or shutil.which("ab") is None,
        reason="needs Debian's lighttpd and apache2-utils (ab)",
    ),
]

REQUESTS = 300
SAMPLE = 100


def _config(tmp_path: Path, **changes: object) -> ex.Config:
    tmp_path.chmod(0o755)
    config = two_host_config(tmp_path, "two-host", "dmvx", REQUESTS, SAMPLE)
    for name, value in changes.items():
        setattr(config, name, value)
    return config


def test_lighttpd_two_host_agrees_and_serves_the_files(clean_check, tmp_path: Path) -> None:
    result = ex.NetExperiment(_config(tmp_path)).run()
    print(
        {
            "native": result.native and result.native["ab"],
            "mvx": result.mvx_client and result.mvx_client["ab"],
            "slowdown": result.slowdown,
            "link": result.link.get("messages"),
            "lead": result.lead.get("max_calls"),
        }
    )
    assert result.outcome is not None and result.outcome.error is None, result.outcome
    assert result.verdict is None and result.outcome_label == "ok"
    for report in (result.native, result.mvx_client):
        assert report is not None and report["error"] is None, report
        assert report["requests"] == report["asked"] == REQUESTS
        assert report["bytes"] == REQUESTS * 4096
        assert report["digests"] == {
            "checked": SAMPLE,
            "wrong": 0,
            "asked": SAMPLE,
            "bytes": SAMPLE // 4 * (100 + 4096 + 65536 + (1 << 20)),
        }
    # Both variants served every request under the monitors, and were still
    # serving when the run ended: it was the client's end that ended it.
    for variant in result.variants:
        assert variant["status"] is None and variant["end"] is None
    # The leader's calls crossed the link to the follower, which answered
    # (acknowledged) them: it was consuming them, not waiting elsewhere.
    follower = result.link["per_follower"]["1"]
    print(follower)
    assert follower["messages_out"] > REQUESTS + SAMPLE and follower["messages_in"] > (REQUESTS + SAMPLE) // 10


def test_a_verdict_while_serving_still_ends_the_run(clean_check, tmp_path: Path) -> None:
    """The client's end is not the only way out: killing the follower's
    monitor mid-run gives connector-lost, as for the built-in server."""
    fault = ex.Fault(after=1.0, action=kill_agent(1, "monitor"), label="follower monitor killed")
    result = ex.NetExperiment(_config(tmp_path, native=False), faults=[fault]).run()
    assert result.verdict is not None and result.verdict.kind is VerdictKind.CONNECTOR_LOST, result.outcome
    assert result.mvx_client is not None and result.mvx_client["error"] is not None
