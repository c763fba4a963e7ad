"""``dmvx real``'s reading of a scenario file (no root, nothing started)."""

from __future__ import annotations

from pathlib import Path

from realmode.net.entry import scenario_config


def test_the_topology_option_replaces_the_scenarios(tmp_path: Path) -> None:
    scenario = tmp_path / "served.yml"
    scenario.write_text("topology: two-host\nworkload: {kind: server, requests: 3}\n")
    assert scenario_config(scenario, None, None).topology.name == "two-host"
    config = scenario_config(scenario, "three-variant", None)
    assert config.topology.name == "three-variant"
    assert config.variant_hosts == ["h1", "h2", "h3"]
