"""Topology files: the shipped ones, graphs and paths, name resolution, cross-checks."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from dmvx.errors import InputError
from dmvx.syscalls import Arch
from dmvx.topology import Topology, load_topology
from dmvx.units import QueueLimit
from dmvx.yamlfile import SOURCE_ROOT, builtin_dirs

SHIPPED = sorted((SOURCE_ROOT / "topologies").glob("*.yml"))


def test_the_required_topologies_ship() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"two-host", "three-variant", "abi-pair", "isa-pair", "wan"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_topology_loads_by_name(path: Path) -> None:
    topology = load_topology(path.stem)
    assert topology.name == path.stem
    assert topology.description
    assert len(topology.variant_hosts()) >= 2
    assert topology.hosts_with_role("client", "attacker"), "a client/attacker host drives workloads"
    assert nx.is_weakly_connected(topology.graph())


def test_two_host() -> None:
    topology = load_topology("two-host")
    assert topology.variant_hosts() == ["h1", "h2"]
    assert topology.hosts_with_role("client") == ["h3"]
    assert {h.arch for h in topology.hosts.values()} == {Arch.X86_64}
    assert topology.switches == ["s1"]
    for link in topology.links:
        assert (link.delay, link.bw) == (0.001, 1e9)
    assert topology.path("h1", "h2") == ["h1", "s1", "h2"]
    assert topology.path_delay("h1", "h2") == pytest.approx(0.002)
    assert topology.path_bandwidth("h1", "h2") == 1e9


def test_heterogeneous_pairs() -> None:
    assert load_topology("abi-pair").hosts["h2"].arch is Arch.I386
    assert load_topology("isa-pair").hosts["h2"].arch is Arch.AARCH64
    assert len(load_topology("three-variant").variant_hosts()) == 3


def test_wan_crosses_the_slow_link() -> None:
    wan = load_topology("wan")
    assert wan.path("h1", "h2") == ["h1", "s1", "s2", "h2"]
    assert wan.path_delay("h1", "h2") == pytest.approx(0.0102)
    assert wan.path_delay("h1", "h3") == pytest.approx(0.0002)
    assert wan.path_bandwidth("h3", "h2") == 10e6
    edge = wan.graph().edges["s1", "s2"]
    assert edge["queue"] == QueueLimit(100, "packets")


def _topology(links: str, hosts: str = "") -> Topology:
    from dmvx.yamlfile import parse_yaml

    text = (
        "hosts:\n  h1: {arch: x86_64, role: variant}\n  h2: {arch: i386, role: variant}\n"
        "  h3: {role: attacker, cpu: 1}\n" + hosts + "switches: [s1, s2]\nlinks:\n" + links
    )
    return parse_yaml(text, file="t.yml").validate(Topology)


def test_graph_attributes_and_per_direction_delays() -> None:
    topology = _topology(
        "  - {a: h1, b: s1, delay: 1ms, bw: 1Gbit, loss: 0.5%, queue: 64KiB}\n"
        "  - {a: h2, b: s1, delay_ab: 2ms, delay_ba: 7ms}\n"
        "  - {a: s1, b: s2, delay: 0.5ms}\n"
        "  - {a: h3, b: s2}\n"
    )
    graph = topology.graph()
    assert isinstance(graph, nx.DiGraph)
    assert graph.nodes["h2"] == {"kind": "host", "arch": Arch.I386, "role": "variant", "cpu": None}
    assert graph.nodes["h3"]["cpu"] == 1
    assert graph.nodes["s2"] == {"kind": "switch"}
    assert graph.edges["h1", "s1"] == {
        "delay_s": 0.001,
        "bw_bps": 1e9,
        "loss": 0.005,
        "queue": QueueLimit(65536, "bytes"),
        "link": 0,
    }
    assert graph.edges["h2", "s1"]["delay_s"] == pytest.approx(0.002)
    assert graph.edges["s1", "h2"]["delay_s"] == pytest.approx(0.007)
    assert graph.edges["h3", "s2"]["delay_s"] == 0.0 and graph.edges["h3", "s2"]["bw_bps"] is None
    assert topology.path_delay("h2", "h1") == pytest.approx(0.003)
    assert topology.path_delay("h1", "h2") == pytest.approx(0.008)
    assert topology.path_bandwidth("h3", "h2") is None
    with pytest.raises(KeyError, match="no node 'h9'"):
        topology.path("h1", "h9")


def test_the_lowest_delay_path_wins_over_the_shortest_hop_count() -> None:
    topology = _topology(
        "  - {a: h1, b: s1, delay: 1ms}\n  - {a: h2, b: s1, delay: 50ms}\n"
        "  - {a: h1, b: s2, delay: 1ms}\n  - {a: s2, b: h3, delay: 1ms}\n  - {a: h3, b: h2, delay: 1ms}\n"
    )
    assert topology.path("h1", "h2") == ["h1", "s2", "h3", "h2"]
    assert topology.path_delay("h1", "h2") == pytest.approx(0.003)


@pytest.mark.parametrize(
    ("links", "hosts", "field", "message"),
    [
        (
            "  - {a: h1, b: s1}\n  - {a: s1, b: h1}\n  - {a: h2, b: s1}\n  - {a: h3, b: s1}\n",
            "",
            "links[1]",
            "a second link between 's1' and 'h1'",
        ),
        (
            "  - {a: h1, b: s1}\n  - {a: h2, b: s1}\n  - {a: h3, b: s1}\n",
            "  s1: {role: client}\n",
            "switches[0]",
            "switch 's1' has the name of a host",
        ),
        (
            "  - {a: h1, b: s1}\n  - {a: h2, b: s1}\n  - {a: h3, b: s1}\n",
            "  very_long_name: {role: client}\n",
            "hosts.very_long_name",
            "'very_long_name' is not a valid node name",
        ),
        (
            "  - {a: h1, b: s1, delay_ba: 1ms}\n  - {a: h2, b: s1}\n  - {a: h3, b: s1}\n",
            "",
            "links[0].delay_ba",
            "delay_ba given without delay_ab",
        ),
        (
            "  - {a: h1, b: s1}\n  - {a: h2, b: s1}\n  - {a: h3, b: s1, queue: 10}\n",
            "",
            "links[2].queue",
            "'10' is not a queue limit",
        ),
        (
            "  - {a: h1, b: s1}\n  - {a: h2, b: s1}\n  - {a: h3, b: s1}\n",
            "  h4: {role: client, cpu: -1}\n",
            "hosts.h4.cpu",
            "'-1' is out of range",
        ),
    ],
)
def test_cross_checks(links: str, hosts: str, field: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        _topology(links, hosts)
    assert caught.value.field == field
    assert message in caught.value.message


def test_lookup_order_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "topologies").mkdir()
    own = (SOURCE_ROOT / "topologies" / "two-host.yml").read_text().replace("name: two-host\n", "")
    (tmp_path / "topologies" / "two-host.yml").write_text(own.replace("1ms", "3ms"))
    (tmp_path / "mine.yml").write_text(own)
    monkeypatch.chdir(tmp_path)
    # The working directory's topologies/ comes before the built-ins, and the
    # name defaults to the file's.
    local = load_topology("two-host")
    assert local.links[0].delay == pytest.approx(0.003) and local.name == "two-host"
    assert load_topology("mine.yml").name == "mine"
    assert load_topology(tmp_path / "mine.yml").links[0].delay == pytest.approx(0.001)
    assert load_topology("wan").name == "wan"  # still found among the built-ins
    with pytest.raises(InputError) as caught:
        load_topology("tow-host")
    assert "no topology named 'tow-host' (did you mean 'two-host'?)" in str(caught.value)
    assert "wan" in str(caught.value)
    with pytest.raises(InputError, match=r"no topology file 'nope/x\.yml'"):
        load_topology("nope/x.yml")


def test_builtins_are_found_in_the_source_tree() -> None:
    assert SOURCE_ROOT / "topologies" in builtin_dirs("topologies")


def test_validate_summarises_a_topology() -> None:
    from dmvx.validate import validate_file

    assert validate_file(SOURCE_ROOT / "topologies" / "wan.yml") == (
        "topology 'wan': 3 hosts (2 variant), 2 switches, 4 links"
    )
