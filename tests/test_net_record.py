"""``dmvx real --record FILE`` writes a trace that ``dmvx sim`` replays.

The built-in server as leader (h1) and follower (h2) of ``two-host``, a few
requests from h3: each host's monitor writes its variant's part of the
trace, the orchestrator joins them into FILE, and sim mode replays FILE as a
``trace`` workload through the same monitors (outcome ok, every call). A run
whose recording cannot be whole (a monitor killed mid-run) leaves FILE as it
was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmvx.exitstatus import ExitStatus
from dmvx.topology import load_topology
from dmvx.trace import TraceCall, TraceEnd, read_trace
from realmode.net import experiment as ex
from realmode.net.entry import demo_config
from realmode.orchestrator import make_policy
from test_net_support import kill_agent, needs_mininet, run_dmvx

pytestmark = [pytest.mark.root, needs_mininet]

REQUESTS = 5


def replay(trace: Path, calls: int) -> None:
    """``dmvx sim`` on a scenario replaying ``trace``, with sim's default
    stall timeout: ok, as expected, every call (lighttpd's epoll_wait, which
    times out after 1 s when no request comes, is no stall)."""
    scenario = trace.with_suffix(".yml")
    scenario.write_text(
        f"name: replayed\ntopology: two-host\nseed: 1\nvariants:\n  - host: h1\n  - host: h2\n"
        f"policy:\n  preset: dmvx\n"
        f"workload:\n  kind: trace\n  path: {trace.name}\nexpect:\n  verdict: ok\n"
    )
    sim = run_dmvx("sim", "--json", str(scenario))
    assert sim.stdout, sim.stderr
    point = json.loads(sim.stdout)["points"][0]
    assert (point["outcome"], point["as_expected"], point["calls"]) == ("ok", True, calls), point.get("verdict")
    assert sim.returncode == ExitStatus.OK, sim.stderr


def test_recorded_demo_replays_in_sim(clean_check, tmp_path: Path) -> None:
    trace_path = tmp_path / "demo.jsonl"
    done = run_dmvx("real", "--requests", str(REQUESTS), "--record", str(trace_path), "--json")
    assert done.returncode == ExitStatus.OK, done.stderr
    report = json.loads(done.stdout)
    assert report["mvx"]["requests"] == REQUESTS and report["verdict"] is None

    trace = read_trace(trace_path)
    header = trace.header
    assert (header["recorded"], header["policy"], header["topology"]) == ("dmvx real", "dmvx", "two-host")
    assert header["stall_timeout"] == 2.0
    assert [v["host"] for v in header["variants"]] == ["h1", "h2"]
    leader, follower = ([e for e in trace.streams[i] if isinstance(e, TraceCall)] for i in (0, 1))
    # The server exited by itself after its requests: whole streams, and no call left out.
    assert trace.streams[0][-1] == trace.streams[1][-1] == TraceEnd("exit", 0)
    assert report["trace"] == {
        "path": str(trace_path),
        "calls": {"0": len(leader), "1": len(follower)},
        "dropped": {"0": 0, "1": 0},
    }
    assert [c.call for c in leader] == [c.call for c in follower]
    assert sum(c.call.name in ("accept", "accept4") for c in leader) == REQUESTS
    assert all(c.ns is not None and c.gap is not None for c in leader)  # timed; the leader ran every call
    assert any(c.ns is None for c in follower)  # the follower skipped some
    # The follower got the requests the leader read from the network.
    assert any(c.call.name in ("read", "recvfrom") and c.outcome.outputs and c.ns is None for c in follower)
    replay(trace_path, len(leader))


def test_a_run_whose_monitor_was_killed_writes_no_trace(clean_check, tmp_path: Path) -> None:
    """A monitor killed outright loses what it had not written: the run's
    trace would be partial, so FILE is left as it was."""
    trace_path = tmp_path / "t.jsonl"
    trace_path.write_text("an earlier file\n")
    config = demo_config(load_topology("two-host"), make_policy("dmvx"), requests=20)
    config.workload.pace = 0.1
    config.native = config.measure_rtt = False
    config.record = trace_path
    fault = ex.Fault(after=0.5, action=kill_agent(1, "monitor"), label="follower monitor killed")
    result = ex.NetExperiment(config, faults=[fault]).run()
    assert result.verdict is not None and result.verdict.kind.value == "connector-lost", result.outcome
    assert result.trace is not None and result.trace["path"] is None
    assert "follower 1" in result.trace["reason"]
    assert trace_path.read_text() == "an earlier file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]  # no .part beside it
