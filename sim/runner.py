"""One simulated experiment: a scenario run natively and under MVX.

:func:`simulate` builds everything a :class:`~sim.engine.Simulation` needs
from a loaded :class:`~dmvx.scenario.Scenario` -- the network from its
topology, the policy, each variant's call stream (with the attack spliced in
where the diversity model says), the client of a server workload -- runs the
native baseline and the monitored run on the same topology, and returns the
raw observations of both. :mod:`sim.results` turns them into a report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dmvx.scenario import Microbench, Scenario, Server, Trace
from sim.attacks import CONNECTOR_ATTACKS, connector_attack
from sim.diversity import VariantLayout, VariantReaction, reactions
from sim.engine import ClientSetup, RunOutcome, Simulation, VariantSetup
from sim.network import Network
from sim.profile import CostProfile
from sim.workload import (
    CONN_FD,
    REPLACING,
    WorkloadStep,
    attack_steps,
    microbench_steps,
    repeat,
    server_stream,
    trace_streams,
    with_attack,
)

#: At most this many follower progress samples per run (for lead and plots).
MAX_SAMPLES = 50_000


@dataclass
class Experiment:
    """The raw result of one scenario point: native and MVX runs."""

    native: RunOutcome
    mvx: RunOutcome
    calls: int  # calls of the program (leader's stream)
    reactions: list[VariantReaction] | None
    layouts: list[VariantLayout]


def layouts_of(scenario: Scenario) -> list[VariantLayout]:
    return [
        VariantLayout(v.arch, v.layout.aslr, v.layout.base, v.layout.disjoint)  # type: ignore[arg-type]
        for v in scenario.variants or []
    ]


def _streams(
    scenario: Scenario, profile: CostProfile, n: int
) -> tuple[list[Iterator[WorkloadStep]], int, Iterator[WorkloadStep]]:
    """Per-variant streams, the program's call count, and the native stream."""
    workload = scenario.workload
    if isinstance(workload, Microbench):
        streams: list[Iterator[WorkloadStep]] = []
        for index in range(n + 1):
            setup, loop, iterations = microbench_steps(workload, profile, pid=4242 + index)
            streams.append(repeat(setup, loop, iterations))
        return streams[:n], len(setup) + iterations, streams[n]
    if isinstance(workload, Server):
        calls = 6 + 10 * workload.requests
        return [server_stream(workload, profile) for _ in range(n)], calls, server_stream(workload, profile)
    assert isinstance(workload, Trace)
    lists, calls = trace_streams(workload, profile, n)
    return [iter(steps) for steps in lists], calls, iter(lists[0])


#: Told of each run before it starts: what it is, the outcome its leader's
#: calls are recorded into as it goes (``leader_times``), and the calls it makes.
Watch = Callable[[str, RunOutcome, int], None]


def simulate(scenario: Scenario, profile: CostProfile, watch: Watch | None = None) -> Experiment:
    """Run ``scenario`` natively and under its policy; see the module docstring.

    ``watch`` lets a caller follow a long run (a progress bar) without the
    engine knowing of it."""
    topology = scenario.topo
    variants = scenario.variants or []
    n = len(variants)
    policy = scenario.policy.to_policy()
    streams, calls, native_stream = _streams(scenario, profile, n)
    client = None
    if isinstance(scenario.workload, Server):
        w = scenario.workload
        assert w.client is not None
        client = ClientSetup(w.client, w.requests, w.concurrency, w.request_size)

    native_sim = Simulation(
        Network(topology, profile, scenario.seed),
        profile,
        policy=None,
        variants=[VariantSetup(variants[0].host, variants[0].arch.value if variants[0].arch else "", native_stream)],
        client=client,
    )
    if watch is not None:
        watch("native run", native_sim.outcome, calls)
    native = native_sim.run()

    layouts = layouts_of(scenario)
    attack = scenario.attack
    found: list[VariantReaction] | None = None
    attack_at = -1
    hook = None
    if attack is not None:
        attack_at = attack.at_call
        found = reactions(attack.kind, attack.target, layouts, scenario.seed, profile.aslr_bits)
        if attack.kind in CONNECTOR_ATTACKS:
            assert attack.source is not None
            hook = connector_attack(attack.kind, attack.source, attack.target, scenario.seed)
        else:
            out_fd = CONN_FD if isinstance(scenario.workload, Server) else 1
            spliced = []
            for stream, reaction in zip(streams, found):
                injected, resume = attack_steps(attack.kind, reaction, profile, out_fd)
                spliced.append(with_attack(stream, attack.at_call, injected, resume, attack.kind in REPLACING))
            streams = spliced

    sample_every = max(1, calls // MAX_SAMPLES)
    sim = Simulation(
        Network(topology, profile, scenario.seed),
        profile,
        policy=policy,
        variants=[VariantSetup(v.host, str(v.arch.value if v.arch else ""), s) for v, s in zip(variants, streams)],
        client=client,
        stall_timeout=int(round(scenario.policy.stall_timeout * 1e9)),
        attack_at=attack_at,
        sample_every=sample_every,
    )
    sim.attack_hook = hook
    if watch is not None:
        watch("MVX run", sim.outcome, calls)
    mvx = sim.run()
    return Experiment(native, mvx, calls, found, layouts)
