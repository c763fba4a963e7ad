"""``dmvx real``, item 2: a monitor and a CONNECTOR per variant host.

Looked at from outside while a run goes on: on each variant host a monitor
process and a CONNECTOR process (separate pids), the variant traced by its
monitor, all in the host's network namespace; the CONNECTORs' TCP
connection runs between the two hosts' addresses (across the emulated
links, where the relay counts its frames); the client host runs no agent.
"""

from __future__ import annotations

import pytest

from realmode.net import experiment as ex
from realmode.net import netns
from realmode.net.agents import CONNECTOR_PORTS
from test_net_support import needs_mininet, outcome_of, two_host_run

pytestmark = [pytest.mark.root, needs_mininet]


def _tracer(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def _tcp_connections(pid: int) -> set[tuple[str, int, str, int]]:
    """Established IPv4 TCP connections in ``pid``'s network namespace."""
    out = set()
    with open(f"/proc/{pid}/net/tcp") as handle:
        next(handle)
        for line in handle:
            fields = line.split()
            if fields[3] != "01":
                continue
            (la, lp), (ra, rp) = (f.split(":") for f in fields[1:3])
            out.add(
                (
                    ".".join(str(b) for b in reversed(bytes.fromhex(la))),
                    int(lp, 16),
                    ".".join(str(b) for b in reversed(bytes.fromhex(ra))),
                    int(rp, 16),
                )
            )
    return out


def test_each_variant_host_has_its_own_monitor_and_connector(clean_check) -> None:
    seen: dict = {}

    def look(experiment: ex.NetExperiment) -> None:
        net, agents = experiment.net, experiment.agents
        assert agents is not None
        for agent in agents.variants:
            assert agent.monitor_pid is not None and agent.connector_pid is not None
            host_ns = netns.inode(net.node_pid(agent.host))
            seen[agent.host] = {
                "monitor": netns.inode(agent.monitor_pid) == host_ns,
                "connector": netns.inode(agent.connector_pid) == host_ns,
                "variant": agent.pid is not None and netns.inode(agent.pid) == host_ns,
                "traced_by_monitor": agent.pid is not None and _tracer(agent.pid) == agent.monitor_pid,
                "separate": agent.monitor_pid != agent.connector_pid,
                "tcp": _tcp_connections(agent.connector_pid),
            }
        client_ns = netns.inode(net.node_pid("h3"))
        agent_pids = set(agents.pids)
        seen["client_agents"] = [pid for pid in agent_pids if netns.inode(pid) == client_ns]
        seen["port"] = agents.port

    config = two_host_run(ex.Workload(requests=40, pace=0.01))
    result = ex.NetExperiment(config, faults=[ex.Fault(0.2, look, "look")]).run()
    assert result.verdict is None and outcome_of(result).error is None, result.to_json()
    leader_ip, follower_ip = "10.0.0.1", "10.0.0.2"
    for host in ("h1", "h2"):
        facts = seen[host]
        assert all(facts[k] for k in ("monitor", "connector", "variant", "traced_by_monitor", "separate")), facts
    port = seen["port"]  # drawn for this run, not a fixed well-known one
    assert port in CONNECTOR_PORTS
    assert any(c[:2] == (leader_ip, port) and c[2] == follower_ip for c in seen["h1"]["tcp"])
    assert any(c[0] == follower_ip and c[2:] == (leader_ip, port) for c in seen["h2"]["tcp"])
    assert seen["client_agents"] == []
    # The authenticated stream crossed the emulated link: frames on the
    # follower's access link, and messages through both CONNECTORs.
    assert result.link["messages"] > 40
    if result.delay_mechanism == "relay":
        assert result.link["wire_frames"] > 40 and result.link["wire_bytes"] > result.link["frame_bytes"] / 2
