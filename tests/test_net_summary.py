"""``dmvx real --summary``: the per-call summary on emulated hosts.

The built-in demo server as leader (h1) and follower (h2), a few requests
from h3: each host's monitor counts its variant's calls per route, and the
run's document holds them (realmode/callsummary.py), as ``dmvx run
--summary`` does."""

from __future__ import annotations

import csv
import io
import json

import pytest

from dmvx.exitstatus import ExitStatus
from test_net_support import needs_mininet, run_dmvx

pytestmark = [pytest.mark.root, needs_mininet]

REQUESTS = 3


def test_the_demo_s_calls_per_variant_and_route(clean_check) -> None:
    done = run_dmvx("real", "--requests", str(REQUESTS), "--summary", "--json")
    assert done.returncode == ExitStatus.OK, done.stderr
    report = json.loads(done.stdout)
    rows = report["summary"]
    assert {r["variant"] for r in rows} == {"leader", "follower 1"}
    accepts = {r["variant"]: r for r in rows if r["call"] in ("accept", "accept4")}
    # Every request's connection is accepted by the leader and replicated to the follower.
    assert {v: (r["route"], r["calls"]) for v, r in accepts.items()} == {
        "leader": ("replicate", REQUESTS),
        "follower 1": ("replicate", REQUESTS),
    }
    assert all(r["stopped_s"] >= 0 and r["monitor_s"] >= 0 for r in rows)
    assert all("calls" not in v for v in report["variants"])  # the summary holds the tally


def test_the_summary_as_flat_rows(clean_check) -> None:
    done = run_dmvx("real", "--requests", str(REQUESTS), "-c", "--format", "tsv")
    assert done.returncode == ExitStatus.OK, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout), delimiter="\t"))
    assert {r["policy"] for r in table} == {"dmvx"} and {r["variant"] for r in table} == {"leader", "follower 1"}
    assert all(int(r["calls"]) > 0 for r in table)
