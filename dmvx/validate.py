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
from typing import Literal, get_args

from dmvx.errors import InputError
from dmvx.scenario import MODES, DiversitySetting, Expect, Microbench, Scenario, Server, scenario_from_document
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
        "cannot tell whether this is a topology or a scenario",
        file=doc.file,
        line=1,
        column=1,
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
    """``scenario 'default': topology 'two-host', 2 variants (leader h1), dmvx policy, microbench read x20000``.

    A scenario with diversity settings and none selected has no variants of
    its own: each setting brings them, with an expectation per mode, and the
    run sweeps over the settings. Its line counts the settings, their
    variants and what each mode expects, in place of variants, expect and
    that implied sweep."""
    settings = scenario.diversity if scenario.setting is None else None
    if settings:
        variants_part = _describe_settings(settings)
    else:
        variants = scenario.variants or []
        leader = f" (leader {variants[0].host})" if variants else ""
        variants_part = f"{_count(len(variants), 'variant')}{leader}"
    workload = scenario.workload
    if isinstance(workload, Microbench):
        what = f"microbench {workload.call} x{workload.iterations}"
    elif isinstance(workload, Server):
        what = f"server, {workload.requests} requests from {workload.client}"
    else:
        what = f"trace {workload.path}"
    parts = [f"topology {scenario.topo.name!r}", variants_part]
    if scenario.diversity is not None and scenario.setting is not None:
        parts.append(f"setting {scenario.setting!r} of {len(scenario.diversity)}")
    parts += [f"{scenario.policy.preset} policy", what]
    if scenario.attack is not None:
        parts.append(f"attack {scenario.attack.kind} at call #{scenario.attack.at_call}")
    if settings:
        parts.append(_describe_expectations(settings))
    elif scenario.expect is not None:
        parts.append(f"expects {scenario.expect.verdict}")
    for sweep in scenario.sweeps:
        if settings and sweep.parameter == "setting" and sweep.values == list(settings):
            continue  # the sweep over every setting that settings imply
        parts.append(f"sweeps {sweep.parameter} over {_count(len(sweep.values), 'value')}")
    return f"scenario {scenario.name!r}: " + ", ".join(parts)


def _describe_settings(settings: dict[str, DiversitySetting]) -> str:
    """``5 diversity settings (identical, aslr, ...) of 2 variants each (leader h1)``."""
    sizes = sorted({len(setting.variants) for setting in settings.values()})
    each = f"{sizes[0]} variants each" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]} variants"
    leaders = list(dict.fromkeys(setting.variants[0].host for setting in settings.values()))
    names = ", ".join(settings)
    return f"{_count(len(settings), 'diversity setting')} ({names}) of {each} (leader {' or '.join(leaders)})"


def _describe_expectations(settings: dict[str, DiversitySetting]) -> str:
    """``expects 4 divergence + 1 missed in sim, 3 divergence + 1 missed + 1 skipped in real``."""
    modes = []
    for mode in MODES:
        counts: dict[str, int] = {}
        for setting in settings.values():
            expect = getattr(setting.expect, mode)
            key = expect.verdict if isinstance(expect, Expect) else "skipped"
            counts[key] = counts.get(key, 0) + 1
        order = [*get_args(Expect.model_fields["verdict"].annotation), "skipped"]
        modes.append(" + ".join(f"{counts[key]} {key}" for key in order if key in counts) + f" in {mode}")
    return "expects " + ", ".join(modes)
