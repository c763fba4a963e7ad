"""Whole simulated runs: strategies, determinism, servers, stalls, sweeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from dmvx.exitstatus import ExitStatus
from dmvx.scenario import Scenario
from sim import cli_entry
from sim.profile import load_profile
from sim.results import point_report
from sim.runner import simulate

REPO = Path(__file__).resolve().parent.parent
QUIET = Console(file=open("/dev/null", "w"), width=200)  # noqa: SIM115 - lives as long as the tests


def lan(delay: str = "500ns", bw: str = "10Gbit", **extra: Any) -> dict[str, Any]:
    return {
        "name": "lan",
        "hosts": {
            "h1": {"role": "variant"},
            "h2": {"role": "variant"},
            "h3": {"role": "variant"},
            "c1": {"role": "client"},
        },
        "switches": ["s1"],
        "links": [{"a": h, "b": "s1", "delay": delay, "bw": bw, **extra} for h in ("h1", "h2", "h3", "c1")],
    }


def scenario(workload: dict[str, Any], preset: str = "dmvx", variants: int = 2, **more: Any) -> Scenario:
    data = {
        "name": "t",
        "topology": more.pop("topology", lan()),
        "variants": [{"host": h} for h in ("h1", "h2", "h3")[:variants]],
        "policy": {"preset": preset, **more.pop("policy", {})},
        "workload": workload,
        **more,
    }
    return Scenario.model_validate(data)


def report(sc: Scenario) -> dict[str, Any]:
    """The point's ``--json`` document (the contract these tests hold it to)."""
    return point_report(sc, simulate(sc, load_profile(sc.cost_profile)), {}).to_json()


def test_dmon_is_much_slower_than_dmvx_on_the_paper_profile() -> None:
    bench = {"kind": "microbench", "call": "read", "iterations": 2000}
    dmon, dmvx = report(scenario(bench, "dmon")), report(scenario(bench, "dmvx"))
    assert dmon["native"] == dmvx["native"]
    assert dmon["mvx"]["slowdown"] > 5 * dmvx["mvx"]["slowdown"]
    assert dmvx["mvx"]["slowdown"] > 1.5  # monitoring is never free
    # DMON checks every read in lockstep; dMVX replicates it asynchronously.
    assert dmon["variants"][0]["routes"] == {"lockstep": 2001}
    assert dmvx["variants"][0]["routes"] == {"replicate": 2001}
    assert dmon["cb"]["max_entries"] == 0 and dmvx["cb"]["max_entries"] > 1
    assert dmvx["lead"]["follower 1"]["calls_max"] > dmon["lead"]["follower 1"]["calls_max"]


def test_both_variants_see_every_call_and_the_follower_runs_none_of_the_replicated_ones() -> None:
    r = report(scenario({"kind": "microbench", "call": "getcwd", "iterations": 300}))
    leader, follower = r["variants"]
    assert leader["entered"] == follower["entered"] == 300
    assert (leader["executed"], leader["skipped"]) == (300, 0)
    assert (follower["executed"], follower["skipped"]) == (0, 300)
    assert leader["ended_by"] == follower["ended_by"] == "done"
    assert r["outcome"] == "ok" and r["verdict"] is None
    # Entries one way, acknowledgements the other, over the modelled links.
    assert r["links"]["h1->s1"]["messages"] > 0 and r["links"]["s1->h1"]["messages"] > 0


def test_ablation_knobs_change_the_result() -> None:
    bench = {"kind": "microbench", "call": "sched_yield", "iterations": 1000}
    base = report(scenario(bench))
    sync = report(scenario(bench, policy={"async_replication": False}))
    no_predict = report(scenario(bench, policy={"predict": False}))
    small_cb = report(scenario(bench, policy={"cb": {"entries": 2}}))
    assert base["variants"][0]["routes"] == {"predict": 1000}
    assert no_predict["variants"][0]["routes"] == {"replicate": 1000}
    assert sync["mvx"]["time_ns"] > 3 * base["mvx"]["time_ns"]
    assert small_cb["cb"]["max_entries"] <= 2 < base["cb"]["max_entries"]
    assert small_cb["mvx"]["time_ns"] > base["mvx"]["time_ns"]


def test_local_files_keep_bytes_off_the_network() -> None:
    bench = {"kind": "microbench", "call": "read4k", "iterations": 300}
    replicated = report(scenario(bench))
    local = report(scenario(bench, policy={"local_files": ["/var/tmp/*"]}))
    assert local["variants"][1]["routes"].get("local-file") == 301
    assert local["messages"]["bytes"] < replicated["messages"]["bytes"] / 10


def test_three_variants_have_a_lead_for_each_follower() -> None:
    r = report(scenario({"kind": "microbench", "call": "getpid", "iterations": 500}, variants=3))
    assert set(r["lead"]) == {"follower 1", "follower 2"}
    assert all(v["ended_by"] == "done" for v in r["variants"])


def test_server_workload_serves_every_request_and_costs_more_under_dmon() -> None:
    server = {"kind": "server", "requests": 60, "concurrency": 4, "file_size": "4KiB", "client": "c1"}
    dmvx, dmon = report(scenario(server)), report(scenario(server, "dmon"))
    for r in (dmvx, dmon):
        assert r["native"]["requests_done"] == r["mvx"]["requests_done"] == 60
        assert r["variants"][0]["entered"] == 6 + 60 * 10
    assert 0 <= dmvx["mvx"]["overhead_pct"] < dmon["mvx"]["overhead_pct"]
    # The responses travel to the client over the links.
    assert dmvx["links"]["s1->c1"]["bytes"] > 60 * 4096


def test_a_silent_leader_ends_in_no_progress() -> None:
    topology = lan()
    topology["links"][1]["loss"] = "100%"  # h2's link loses everything
    sc = scenario(
        {"kind": "microbench", "call": "getpid", "iterations": 200}, topology=topology, policy={"stall_timeout": "50ms"}
    )
    r = report(sc)
    assert r["outcome"] == "divergence"
    assert r["verdict"]["kind"] == "no-progress"
    assert r["messages"]["lost"] > 0
    assert r["verdict"]["time_ns"] >= 50_000_000


def test_same_scenario_and_seed_give_byte_identical_json() -> None:
    args: dict[str, Any] = {"seed": None, "overrides": {"workload.requests": "100"}, "plot": None, "console": QUIET}
    first = cli_entry.run(REPO / "scenarios" / "paper-lighttpd.yml", **args)
    second = cli_entry.run(REPO / "scenarios" / "paper-lighttpd.yml", **args)
    dump = lambda r: json.dumps(r.to_json(), indent=2, allow_nan=False)  # noqa: E731 - as dmvx.output writes it
    assert dump(first) == dump(second)
    assert [p["labels"] for p in first.to_json()["points"]] == [{"policy.preset": "dmon"}, {"policy.preset": "dmvx"}]


def test_the_seed_matters_where_randomness_does() -> None:
    topology = lan(loss="2%")
    bench = {"kind": "microbench", "call": "getpid", "iterations": 400}
    one = [report(scenario(bench, topology=topology, seed=s))["mvx"]["time_ns"] for s in (1, 1, 2)]
    assert one[0] == one[1] != one[2]


def test_sweep_points_keep_their_order_and_match_single_runs() -> None:
    path = REPO / "scenarios" / "paper-microbench.yml"
    swept = cli_entry.run(path, seed=None, overrides={"workload.iterations": "500"}, plot=None, console=QUIET)
    points = swept.to_json()["points"]
    calls = ["read", "getcwd", "sched_yield", "getpid", "read4k"]
    # A grid: the first sweep (the preset) varies slowest.
    assert [(p["labels"]["policy.preset"], p["labels"]["workload.call"]) for p in points] == [
        (preset, call) for preset in ("dmon", "dmvx") for call in calls
    ]
    # Pinning the swept preset on the command line leaves the call sweep.
    single = cli_entry.run(
        path,
        seed=None,
        plot=None,
        console=QUIET,
        overrides={"workload.iterations": "500", "policy.preset": "dmvx", "sweep.values": "[getcwd]"},
    )
    [point] = single.to_json()["points"]
    assert point["labels"] == {"workload.call": "getcwd"}
    assert {k: v for k, v in point.items() if k != "labels"} == {
        k: v for k, v in points[len(calls) + 1].items() if k != "labels"
    }


def test_a_list_for_a_scalar_field_is_a_second_dimension(tmp_path: Path) -> None:
    path = REPO / "scenarios" / "paper-microbench.yml"
    result = cli_entry.run(
        path,
        seed=None,
        plot=tmp_path / "p.png",
        console=QUIET,
        overrides={"workload.iterations": "300", "policy.preset": "[dmon, dmvx]", "sweep.values": "[read, getcwd]"},
    )
    labels = [p.labels for p in result.points]
    assert labels == [{"workload.call": c, "policy.preset": p} for c in ("read", "getcwd") for p in ("dmon", "dmvx")]
    assert result.dimensions == [("workload.call", ["read", "getcwd"]), ("policy.preset", ["dmon", "dmvx"])]
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.exit_status is ExitStatus.OK


def test_a_grid_index_that_does_not_exist_is_one_clear_line() -> None:
    from dmvx.errors import InputError

    path = REPO / "scenarios" / "paper-microbench.yml"
    with pytest.raises(InputError, match=r"sweep\[N\]\.values with N from 0 to 1"):
        cli_entry.run(path, seed=None, overrides={"sweep.values": "[read]"}, plot=None, console=QUIET)
    with pytest.raises(InputError, match="the grid has 2 sweeps"):
        cli_entry.run(path, seed=None, overrides={"sweep[2].values": "[read]"}, plot=None, console=QUIET)


def test_links_shorthand_and_bad_overrides() -> None:
    from dmvx.errors import InputError

    path = REPO / "scenarios" / "paper-microbench.yml"
    r = cli_entry.run(
        path,
        seed=3,
        overrides={"links.h1-s1.delay": "1ms", "workload.iterations": "200", "sweep[1].values": "[getpid]"},
        plot=None,
        console=QUIET,
    )
    point = r.to_json()["points"][0]
    assert point["seed"] == 3
    assert point["lead"]["follower 1"]["time_max_ns"] > 1_000_000  # the leader's entries cross a 1 ms link
    with pytest.raises(InputError, match="no link between 'h1' and 'h9'"):
        cli_entry.run(path, seed=None, overrides={"links.h1-h9.delay": "1ms"}, plot=None, console=QUIET)
    with pytest.raises(InputError, match=r"policy\.preset") as info:
        cli_entry.run(path, seed=None, overrides={"policy.preset": "fast"}, plot=None, console=QUIET)
    assert "\n" not in str(info.value)


def _reports_as_often_as_forced(force: bool) -> list[Any]:
    """The reports of a few scenarios, with variants forced back into SimPy after every call or not."""
    from sim import engine
    from sim.sweep import expand

    if force:
        engine._Proc.next_horizon = lambda self: self.env.now + 1  # type: ignore[method-assign]
    out = []
    for name, over in (
        ("paper-microbench", {"workload.iterations": "800"}),
        ("paper-lighttpd", {"workload.requests": "60"}),
        ("attack-table", {"attack.kind": "[rop-absolute, pointer-leak, connector-replay]"}),
    ):
        sc, extra = cli_entry.prepare(REPO / "scenarios" / f"{name}.yml", seed=None, overrides=over)
        for point in expand(sc, extra)[1]:
            out.append(point_report(point.scenario, simulate(point.scenario, load_profile("paper")), point.labels))
    return out


def test_results_do_not_depend_on_how_often_variants_yield() -> None:
    """The lookahead horizon only saves SimPy events: a run forced back into
    SimPy after every call finds exactly the same (with one sender per link
    direction; several senders sharing one are ordered within a window).

    The engine's own calls to ``next_horizon`` pass by a replaced method once
    it is compiled (dmvx/compiled.py), so both runs are made by the sources,
    in a child with ``DMVX_PURE=1``."""
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); import sim.engine as e; "
        "assert e.__file__.endswith('.py'), e.__file__; "
        "from test_sim_runs import _reports_as_often_as_forced as r; "
        "print(json.dumps([r(False), r(True)], default=str))"
    )
    env = {**os.environ, "DMVX_PURE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    normal, forced = json.loads(done.stdout)
    assert normal and forced == normal


@pytest.mark.parametrize("preset", ["dmvx", "dmon"])
def test_a_long_run_keeps_only_recent_link_reservations(monkeypatch: pytest.MonkeyPatch, preset: str) -> None:
    # Links drop reservations that ended before the simulation's now, so a
    # run's memory does not grow with its length (1M calls kept 250 MB before).
    from sim import runner

    made: list[runner.Network] = []

    class Recording(runner.Network):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(runner, "Network", Recording)
    sc = scenario(
        {"kind": "microbench", "call": "read", "iterations": 20_000}, preset, topology=lan(delay="1us", bw="1Gbit")
    )
    assert report(sc)["verdict"] is None
    busy = [link for net in made for link in net.links.values() if link.messages > 10_000]
    assert busy, "the run sent no traffic"
    assert all(len(link.res) <= 1024 + 256 + 64 for link in busy), [len(link.res) for link in busy]
