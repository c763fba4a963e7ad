"""A leader's run of equal calls taken as one core event gives the run the
call-by-call loop gives, to the nanosecond.

``sim.workload.Repeat`` tells the engine how many of one step come next, and
the engine then takes them with ``LeaderMonitor.calls_replicated`` and
``Connector.post_run``; a stream that cannot tell (a plain iterator of the
same steps) takes every call on its own. Both must give the same outcome:
times, counts, batches, link and buffer figures, every leader call's time.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from dmvx.calls import Call, Outcome
from dmvx.policy import Policy
from dmvx.scenario import Scenario
from sim.engine import RunOutcome, Simulation, VariantSetup
from sim.network import Network
from sim.profile import load_profile
from sim.workload import Repeat, WorkloadStep, microbench_steps


def _bench(call: str, delay: str, hosts: int) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "runs",
            "topology": {
                "name": "lan",
                "hosts": {f"h{i}": {"role": "variant"} for i in range(1, hosts + 1)},
                "switches": ["s1"],
                "links": [{"a": f"h{i}", "b": "s1", "delay": delay, "bw": "1Gbit"} for i in range(1, hosts + 1)],
            },
            "policy": {"preset": "dmvx"},
            "workload": {"kind": "microbench", "call": call, "iterations": 3000},
        }
    )


def _run(sc: Scenario, policy: Policy, runs: bool, hosts: tuple[str, ...]) -> RunOutcome:
    profile = load_profile("paper")
    setups = []
    for index, host in enumerate(hosts):
        setup, loop, iterations = microbench_steps(sc.workload, profile, pid=4242 + index)  # type: ignore[arg-type]
        steps = Repeat(setup, loop, iterations)
        setups.append(VariantSetup(host, "x86_64", steps if runs else iter(list(steps))))
    return Simulation(Network(sc.topo, profile, 0), profile, policy=policy, variants=setups).run()


def test_repeat_is_setup_then_loop_and_tells_what_comes() -> None:
    a, b, c = (WorkloadStep(Call(name), Outcome(0), 100) for name in ("openat", "read", "getpid"))
    steps = Repeat([a, b], c, 3)
    assert steps.ahead(c) == 0  # the set-up is not looked into
    assert [next(steps), next(steps)] == [a, b]
    assert (steps.ahead(c), steps.ahead(a)) == (3, 0)
    steps.drop(2)
    assert list(steps) == [c]
    with pytest.raises(ValueError):
        steps.drop(1)


@pytest.mark.parametrize(
    ("call", "delay", "cb", "hosts"),
    [
        ("getpid", "5us", 64, ("h1", "h2")),
        ("getpid", "500ns", 64, ("h1", "h2")),
        ("read4k", "5us", 64, ("h1", "h2")),  # big entries: batches end at their byte limit
        ("getpid", "5us", 4, ("h1", "h2")),  # the buffer fills inside runs
        ("getpid", "2us", 64, ("h1", "h2", "h3")),  # two followers: call by call
    ],
)
def test_runs_give_the_call_by_call_outcome(call: str, delay: str, cb: int, hosts: tuple[str, ...]) -> None:
    sc = _bench(call, delay, len(hosts))
    policy = replace(sc.policy.to_policy(), cb_entries=cb)
    by_call, by_run = _run(sc, policy, False, hosts), _run(sc, policy, True, hosts)
    assert by_run.verdict is None and by_run.makespan > 0
    assert by_run.leader_times == by_call.leader_times
    assert by_run.variants == by_call.variants
    assert (by_run.makespan, by_run.connectors, by_run.links, by_run.cb) == (
        by_call.makespan,
        by_call.connectors,
        by_call.links,
        by_call.cb,
    )
