"""``dmvx validate FILE``: check a topology or scenario file without running it.

Which kind a file is follows from its content, so neither kind needs a
``kind:`` line: a mapping with any scenario-only field (``workload``,
``variants``, ``policy``, ...) is a scenario; one with ``hosts``,
``switches`` or ``links`` is a topology; a file that has neither is judged
by its directory (``topologies/`` or ``scenarios/``), and otherwise refused
with a line saying what each kind looks like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from dmvx.errors import InputError
from dmvx.scenario import Microbench, Scenario, Server, scenario_from_document
from dmvx.topology import Topology
from dmvx.yamlfile import YamlDocument, read_yaml

TOPOLOGY_KEYS = frozenset({"hosts", "switches", "links"})
SCENARIO_KEYS = frozenset(Scenario.model_fields) - {"name", "description"}


def detect_kind(doc: YamlDocument, path: Path) -> Literal["topology", "scenario"]:
    """Tell a topology document from a scenario document (see the module doc)."""
    keys = set(doc.data)
    if keys & SCENARIO_KEYS:
        return "scenario"
    if keys & TOPOLOGY_KEYS:
        return "topology"
    parent = path.resolve().parent.name
    if parent == "topologies":
        return "topology"
    if parent == "scenarios":
        return "scenario"
    raise InputError(
        "cannot tell whether this is a topology or a scenario", file=doc.file, line=1, column=1,
        expected="a topology (with hosts: and links:) or a scenario (with workload:)",
    )


def validate_file(path: str | Path) -> str:
    """Validate one file and return a one-line summary of what it holds
    (``topology 'wan': 3 hosts (2 variant), 2 switches, 4 links``; the
    caller prints the file name beside it), or raise :class:`InputError`."""
    path = Path(path)
    doc = read_yaml(path, display=str(path))
    kind = detect_kind(doc, path)
    if kind == "topology":
        topology = doc.validate(Topology)
        return describe_topology(topology, path.stem)
    scenario = scenario_from_document(doc, path.parent, default_name=path.stem)
    return describe_scenario(scenario)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def describe_topology(topology: Topology, default_name: str = "") -> str:
    """``topology 'two-host': 3 hosts (2 variant), 1 switch, 3 links``."""
    name = topology.name or default_name
    variants = len(topology.variant_hosts())
    return (
        f"topology {name!r}: {_count(len(topology.hosts), 'host')} ({variants} variant), "
        f"{_count(len(topology.switches), 'switch').replace('switchs', 'switches')}, "
        f"{_count(len(topology.links), 'link')}"
    )


def describe_scenario(scenario: Scenario) -> str:
    """``scenario 'default': topology 'two-host', 2 variants (leader h1), dmvx policy, microbench read x20000``."""
    variants = scenario.variants or []
    leader = f" (leader {variants[0].host})" if variants else ""
    workload = scenario.workload
    if isinstance(workload, Microbench):
        what = f"microbench {workload.call} x{workload.iterations}"
    elif isinstance(workload, Server):
        what = f"server, {workload.requests} requests from {workload.client}"
    else:
        what = f"trace {workload.path}"
    parts = [
        f"topology {scenario.topo.name!r}",
        f"{_count(len(variants), 'variant')}{leader}",
        f"{scenario.policy.preset} policy",
        what,
    ]
    if scenario.attack is not None:
        parts.append(f"attack {scenario.attack.kind} at call #{scenario.attack.at_call}")
    if scenario.expect is not None:
        parts.append(f"expects {scenario.expect.verdict}")
    for sweep in scenario.sweeps:
        parts.append(f"sweeps {sweep.parameter} over {_count(len(sweep.values), 'value')}")
    return f"scenario {scenario.name!r}: " + ", ".join(parts)
