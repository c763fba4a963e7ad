"""``dmvx real``, item 3: the command line.

``dmvx real --topology two-host [--scenario FILE] [--policy dmvx|dmon]``
with no scenario runs the built-in demo: a server as leader and follower, a
client on the third host, and a report of verdict, slowdown against a
native run on the same topology, the link's bytes and messages and the
leader's lead; ``--json`` gives the same as one document on stdout.
"""

from __future__ import annotations

import json

import pytest

from dmvx.exitstatus import ExitStatus
from test_net_support import REPO, needs_mininet, run_dmvx

pytestmark = [pytest.mark.root, needs_mininet]


@pytest.mark.parametrize("policy", ["dmvx", "dmon"])
def test_demo_json(clean_check, policy: str) -> None:
    done = run_dmvx("real", "--topology", "two-host", "--policy", policy, "--json")
    assert done.returncode == ExitStatus.OK, done.stderr
    report = json.loads(done.stdout)
    print(json.dumps({k: report[k] for k in ("slowdown", "native", "mvx", "link", "lead", "connector_rtt")}))
    assert report["verdict"] is None and report["status"] == "ok" and report["policy"] == policy
    assert report["hosts"] == {"variants": ["h1", "h2"], "client": "h3", "attacker": None}
    assert report["native"]["requests"] == report["mvx"]["requests"] == 20
    assert report["native"]["bytes"] == report["mvx"]["bytes"] == 20 * 4096
    assert report["slowdown"] == pytest.approx(report["mvx"]["elapsed_s"] / report["native"]["elapsed_s"], rel=1e-3)
    link = report["link"]
    assert link["messages"] > 20 and link["frame_bytes"] > 20 * 4096  # the responses are compared
    lead = report["lead"]
    assert lead["max_calls"] >= 1 and lead["max_cb_entries"] <= (1 if policy == "dmon" else 4096)
    assert lead["max_seconds"] >= lead["median_seconds"] > 0
    assert report["link_delay"]["leader_follower_one_way_s"] == pytest.approx(0.002)
    for variant in report["variants"]:
        assert variant["status"] == 0 and variant["stops"] > 20


def test_demo_on_the_in_process_path(clean_check, monkeypatch) -> None:
    """``DMVX_IN_PROCESS=on`` takes the emulated hosts' variants onto the
    in-process path as it does ``dmvx run``'s (the attack suite runs there
    under it too): the demo's answers are the same and both variants say
    they took the path."""
    monkeypatch.setenv("DMVX_IN_PROCESS", "on")
    done = run_dmvx("real", "--topology", "two-host", "--json")
    assert done.returncode == ExitStatus.OK, done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] is None and report["mvx"]["bytes"] == 20 * 4096
    assert [v["in_process"]["path"] for v in report["variants"]] == ["in-process", "in-process"], report["variants"]
    assert report["variants"][0]["in_process"]["fast_calls"] > 20


def test_demo_for_people(clean_check) -> None:
    done = run_dmvx("real", "--topology", "two-host")
    assert done.returncode == ExitStatus.OK, done.stderr
    assert done.stdout == ""
    for words in (
        "ok (the variants agreed)",
        "slowdown",
        "vs native over the same topology",
        "leader-follower link",
        "messages",
        "frame bytes",
        "leader's lead",
        "CONNECTOR round trip",
    ):
        assert words in done.stderr, done.stderr


def test_scenario_with_an_expected_rejection(clean_check) -> None:
    done = run_dmvx("real", "--scenario", str(REPO / "scenarios" / "real-connector-forgery.yml"), "--json")
    report = json.loads(done.stdout)
    assert report["verdict"]["kind"] == "auth-failure" and report["as_expected"] is True, done.stderr
    assert done.returncode == ExitStatus.OK  # the run ended as the file expects


def test_bad_topology_is_one_line(clean_check) -> None:
    done = run_dmvx("real", "--topology", "no-such-topology")
    assert done.returncode == ExitStatus.USAGE
    assert len(done.stderr.strip().splitlines()) == 1 and "no-such-topology" in done.stderr


def test_simulated_only_attacks_are_refused(clean_check, tmp_path) -> None:
    scenario = tmp_path / "rop.yml"
    scenario.write_text(
        "topology: two-host\nworkload: {kind: server, requests: 3}\nattack: {kind: rop-absolute, at_call: 5}\n"
    )
    done = run_dmvx("real", "--scenario", str(scenario))
    assert done.returncode == ExitStatus.UNAVAILABLE
    assert "rop-absolute" in done.stderr and len(done.stderr.strip().splitlines()) == 1
