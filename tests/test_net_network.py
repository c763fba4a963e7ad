"""``dmvx real``, item 1: the network comes from the topology file.

Hosts in their own namespaces, Linux bridges for switches (no controller),
htb shaping, and link delay -- netem where the kernel has it, the relay
otherwise -- measured on the CONNECTORs' own traffic.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import ClassVar

import pytest

from dmvx.topology import Topology, load_topology
from realmode.net import netns, network, runs
from realmode.net.network import EmulatedNetwork
from realmode.net.rtt import connector_rtt
from test_net_support import needs_mininet, two_host

pytestmark = [pytest.mark.root, needs_mininet]


def _ping(net: EmulatedNetwork, src: str, dst: str, count: int = 12) -> list[float]:
    done = net.popen(src, ["ping", "-c", str(count), "-i", "0.02", "-W", "2", net.ip(dst)], text=True)
    out, err = done.communicate(timeout=30)
    assert done.returncode == 0, err
    times = [float(line.split("time=")[1].split()[0]) / 1e3 for line in out.splitlines() if "time=" in line]
    return times[1:]  # the first waits for ARP


def test_hosts_switches_and_links_follow_the_file(clean_check) -> None:
    topo = load_topology("two-host")
    run_id = runs.new_run_id()
    with EmulatedNetwork(topo, run_id) as net:
        root = netns.inode(1)
        inodes = {name: netns.inode(net.node_pid(name)) for name in topo.hosts}
        assert root not in inodes.values() and len(set(inodes.values())) == 3
        bridge = runs.bridge_name(run_id, 0)
        ports = sorted(p for p in runs.run_links(run_id) if p != bridge)
        assert runs.run_links(run_id) == sorted([bridge, *ports]) and len(ports) == 3
        for port in ports:  # every switch port is enslaved to the switch's bridge
            with open(f"/sys/class/net/{port}/master/uevent") as handle:
                assert f"INTERFACE={bridge}" in handle.read()
        qdisc = net.popen("h1", ["tc", "class", "show", "dev", "h1-eth0"], text=True).communicate()[0]
        bw = topo.links[0].bw
        assert bw is not None
        rate = f"rate {bw / 1e9:g}Gbit" if bw >= 1e9 else f"rate {bw / 1e6:g}Mbit"
        assert "htb" in qdisc and rate in qdisc, (rate, qdisc)
        assert max(_ping(net, "h1", "h3")) < 1.0  # everyone reaches everyone, nothing routed out
        assert net.delay_mechanism == ("netem" if network.netem_available() else "relay")
    assert runs.run_links(run_id) == []


def test_switch_to_switch_links_and_per_direction_delay(clean_check) -> None:
    topo = Topology.model_validate(
        {
            "name": "asym",
            "hosts": {"h1": {"role": "variant"}, "h2": {"role": "variant"}},
            "switches": ["s1", "s2"],
            "links": [
                {"a": "h1", "b": "s1"},
                {"a": "s1", "b": "s2", "delay_ab": "2ms", "delay_ba": "6ms"},
                {"a": "s2", "b": "h2"},
            ],
        }
    )
    with EmulatedNetwork(topo, runs.new_run_id()) as net:
        rtt = statistics.median(_ping(net, "h1", "h2", 15))
    assert 0.008 * 0.9 <= rtt <= 0.008 * 1.15, f"ping round trip {rtt * 1e3:.2f} ms, links say 2 + 6 ms"


@pytest.mark.parametrize("delay", ["1ms", "10ms"])
def test_connector_round_trip_is_twice_the_one_way_delay(clean_check, delay: str) -> None:
    # Both access links of two-host get the delay: CONNECTOR traffic from
    # h1 to h2 crosses two of them, and the round trip crosses four.
    #
    # What the links add is the round trip with their delay less the round
    # trip without it, measured side by side on the same network (the delay
    # is changed live, in alternating blocks): the CONNECTORs' own round trip
    # (0.7-1.0 ms of Python, four processes and the relay's copies) is there
    # either way, and on a loaded machine it grows by as much as the whole
    # tolerance, so a bound on the raw round trip failed on load, not on the
    # links (CI: 5.85 ms for 4 ms).
    topo = two_host(delay)
    expected = 2 * topo.path_delay("h1", "h2")
    delayed: list[float] = []
    undelayed: list[float] = []
    with EmulatedNetwork(topo, runs.new_run_id()) as net:
        delays = {plan.index: (plan.delay_ab, plan.delay_ba) for plan in net.links if plan.delay_ab or plan.delay_ba}
        assert delays, net.links
        for _block in range(3):
            for plan in net.links:
                if plan.index in delays:
                    net.set_link_delay(plan, 0.0, 0.0)
            undelayed += connector_rtt(net, "h1", "h2", samples=10)
            for plan in net.links:
                if plan.index in delays:
                    net.set_link_delay(plan, *delays[plan.index])
            delayed += connector_rtt(net, "h1", "h2", samples=10)
    added = statistics.median(delayed) - statistics.median(undelayed)
    print(
        f"delay {delay} per link ({net.delay_mechanism}): CONNECTOR round trip median "
        f"{statistics.median(delayed) * 1e3:.3f} ms, without the delay {statistics.median(undelayed) * 1e3:.3f} ms, "
        f"added {added * 1e3:.3f} ms, 2 x one-way {expected * 1e3:.3f} ms, ratio {added / expected:.3f}"
    )
    # 20%, but never less than 1.5 ms: besides the relay's own lateness (it
    # learns to send on time, median within 10 us), every process of the
    # round trip sleeps through each crossing, and an idle vCPU of these VMs
    # wakes 40-150 us late (median; p90 160-400 us), four or more times a
    # round trip. Each side is bounded by the figure load cannot push across
    # it: load only adds to the delayed round trip, so it must hold the
    # delay (none applied fails); and the added part is the most load can
    # inflate (twice the delay fails). The added part is no lower bound: the
    # relay's sends wait for their time, and a late wake-up is hidden in the
    # delay, so load grows the round trip without the delay more (with two
    # spinning shells at load 8: 3.57 ms without, 5.23 ms with, added 1.65 ms
    # for 4 ms).
    tolerance = max(0.2 * expected, 0.0015)
    assert statistics.median(delayed) >= expected - tolerance
    assert added <= expected + tolerance


def test_bandwidth_is_shaped(clean_check) -> None:
    topo = Topology.model_validate(
        {
            "name": "thin",
            "hosts": {"h1": {"role": "variant"}, "h2": {"role": "variant"}},
            "links": [{"a": "h1", "b": "h2", "bw": "20Mbit"}],
        }
    )
    size = 1_000_000
    sink = (
        "import socket,sys,time,json\ns=socket.create_server(('0.0.0.0',9000));c,_=s.accept();n=0;t=None\n"
        "while True:\n d=c.recv(65536)\n if not d: break\n t=t or time.monotonic(); n+=len(d)\n"
        "print(json.dumps({'bytes':n,'seconds':time.monotonic()-t}))"
    )
    source = (
        f"import socket,time\nfor _ in range(200):\n try: c=socket.create_connection(('10.0.0.2',9000)); break\n"
        f" except OSError: time.sleep(0.02)\nc.sendall(b'x'*{size});c.close()"
    )
    with EmulatedNetwork(topo, runs.new_run_id()) as net:
        receiver = net.popen("h2", [sys.executable, "-c", sink], text=True)
        sender = net.popen("h1", [sys.executable, "-c", source], text=True)
        sender.communicate(timeout=30)
        out, _ = receiver.communicate(timeout=30)
    report = json.loads(out)
    rate = report["bytes"] * 8 / report["seconds"]
    assert report["bytes"] == size
    assert 0.7 * 20e6 <= rate <= 1.1 * 20e6, f"{rate / 1e6:.1f} Mbit/s through a 20Mbit link"


def test_netem_probe_leaves_nothing_and_is_cached(clean_check) -> None:
    network.netem_available.cache_clear()
    first = network.netem_available()
    assert network.netem_available() is first
    assert network.netem_available.cache_info().misses == 1
    tc = subprocess.run(
        ["unshare", "--net", "sh", "-c", "tc qdisc add dev lo root netem delay 1ms"], capture_output=True
    )
    assert first == (tc.returncode == 0)


def test_the_host_kind_is_passed_in(clean_check) -> None:
    """``EmulatedNetwork(..., host=Kind)``: every host of the topology is a
    ``Kind``, with the run's mark added."""
    from realmode.net import _mininet

    _mininet.load()
    from mininet.node import Host

    class CountedHost(Host):
        made: ClassVar[list[str]] = []

        def __init__(self, name: str, *args: object, **params: object) -> None:
            CountedHost.made.append(name)
            super().__init__(name, *args, **params)

    topo = load_topology("two-host")
    with EmulatedNetwork(topo, runs.new_run_id(), host=CountedHost) as net:
        assert all(isinstance(net.nodes[name], CountedHost) for name in topo.hosts)
        assert max(_ping(net, "h1", "h2", count=3)) < 1.0
    assert set(topo.hosts) <= set(CountedHost.made)
