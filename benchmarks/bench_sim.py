"""How fast sim mode simulates, in system calls per wall-clock second.

    .venv/bin/python benchmarks/bench_sim.py [--calls 1000000] [--call getpid] [--preset dmvx]
                                             [--delay 5us] [--repeat 1] [--json]

The workload is the one the issue names: a 2-variant dMVX microbenchmark
(leader and follower on two hosts of a 10Gbit LAN, 10 us host to host,
``paper`` profile). Only
the monitored run is timed -- the native baseline every ``dmvx sim`` also
runs is not. "Calls" are the program's calls: a million calls means a million
in the leader *and* a million in the follower, each through the core's
monitors, plus the messages between them.

The target is 200,000 calls per second on the project's 2-core VMs, with the
hot modules compiled (``./run setup`` does it; each run line says which build
ran, and ``DMVX_PURE=1`` runs the sources). The machine is shared in CI, so
the script also prints the CPU time and the load average: a busy neighbour
on the other vCPU slows a run down by half.
Exit status 1 when the best repeat is below ``--require`` (default 200,000).
``--json`` prints one row per repeat instead (calls per wall and per CPU
second) and exits 0, for ``tools/compare_trees.py``: two trees, interleaved,
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dmvx import compiled
from dmvx.scenario import Scenario
from sim.engine import Simulation, VariantSetup
from sim.network import Network
from sim.profile import load_profile
from sim.workload import microbench_steps, repeat


def scenario(call: str, calls: int, preset: str, delay: str = "5us") -> Scenario:
    return Scenario.model_validate(
        {
            "name": "bench-sim",
            "topology": {
                "name": "bench-lan",
                "hosts": {"h1": {"role": "variant"}, "h2": {"role": "variant"}},
                "switches": ["s1"],
                "links": [
                    {"a": "h1", "b": "s1", "delay": delay, "bw": "10Gbit"},
                    {"a": "h2", "b": "s1", "delay": delay, "bw": "10Gbit"},
                ],
            },
            "policy": {"preset": preset},
            "workload": {"kind": "microbench", "call": call, "iterations": calls},
        }
    )


def run_once(sc: Scenario) -> tuple[float, float, int, int]:
    """(wall s, cpu s, calls entered by all variants, virtual ns)."""
    profile = load_profile("paper")
    policy = sc.policy.to_policy()
    setups = []
    for index, host in enumerate(("h1", "h2")):
        setup, loop, iterations = microbench_steps(sc.workload, profile, pid=4242 + index)  # type: ignore[arg-type]
        setups.append(VariantSetup(host, "x86_64", repeat(setup, loop, iterations)))
    sim = Simulation(Network(sc.topo, profile, 0), profile, policy=policy, variants=setups)
    wall, cpu = time.perf_counter(), time.process_time()
    out = sim.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if out.verdict is not None or any(v.ended_by != "done" for v in out.variants):
        raise SystemExit(f"bench_sim: the run did not end cleanly: {out.verdict}")
    return wall, cpu, sum(v.entered for v in out.variants), out.makespan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls of the program (default 1,000,000)")
    parser.add_argument(
        "--call", default="getpid", choices=["getpid", "read", "read4k", "getcwd", "sched_yield", "write"]
    )
    parser.add_argument("--preset", default="dmvx", choices=["dmvx", "dmon"])
    parser.add_argument(
        "--delay",
        default="5us",
        help="one-way delay of each of the two links (default 5us: 10us host to host, a kernel-TCP "
        "LAN); shorter delays mean a shorter lookahead and more SimPy round trips",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs; the best is reported")
    parser.add_argument("--require", type=float, default=200_000, help="calls per second to pass (default 200,000)")
    parser.add_argument("--json", action="store_true", help="rows of figures, one per repeat, on stdout")
    args = parser.parse_args()
    sc = scenario(args.call, args.calls, args.preset, args.delay)
    best = None
    rows = []
    # Which build ran (dmvx/compiled.py): ./run setup compiles the hot modules, DMVX_PURE=1 declines them.
    build = "compiled with mypyc" if compiled.ACTIVE else "pure Python"
    for attempt in range(1, args.repeat + 1):
        wall, cpu, entered, virtual = run_once(sc)
        rate = args.calls / wall
        rows.append(
            {
                "run": f"{args.call} {args.preset} {args.delay}",
                "calls_per_s": rate,
                "calls_per_cpu_s": args.calls / cpu,
                "wall_s": wall,
                "cpu_s": cpu,
                "simulated_ns": virtual,
            }
        )
        print(
            f"run {attempt}: {args.calls:,} calls ({entered:,} variant calls) of {args.call} under {args.preset} "
            f"in {wall:.2f} s wall, {cpu:.2f} s CPU: {rate:,.0f} calls/s "
            f"({args.calls / cpu:,.0f} per CPU second); {virtual / 1e6:.1f} ms simulated; {build}",
            file=sys.stderr if args.json else sys.stdout,
        )
        best = rate if best is None else max(best, rate)
    assert best is not None
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0  # the figures are the answer; --require judges only the text mode
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    verdict = "PASS" if best >= args.require else "FAIL"
    print(
        f"{verdict}: best {best:,.0f} simulated calls per wall-second (required {args.require:,.0f}; "
        f"load average {load:.2f} on {os.cpu_count()} CPUs)"
    )
    return 0 if best >= args.require else 1


if __name__ == "__main__":
    sys.exit(main())
