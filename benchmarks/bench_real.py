"""Real-mode system-call microbenchmark: native vs DMON vs dMVX, in one run.

Runs realmode/targets/bench.c (compiled into a temporary directory) for each
call kind natively and as two variants under each policy, and prints the
microseconds per call as the program measures them (the leader's clock,
which every variant reads), each slowdown relative to native, and the
dmon/dmvx ratio. dmvx runs twice per repetition, interleaved: on the ptrace
path (``dmvx``) and on the in-process path (``inproc``, ``dmvx run
--in-process on``); ``*run`` columns divide the whole run's time by the calls,
which counts the followers catching up after the leader's loop (and the
run's start-up, a few hundred milliseconds); ``*pace`` columns take a
one-call run's time off first: the calls' own cost with every variant
caught up, which is what a program past the leader's lead (the connector
buffer and its ring) runs at. ``pace x`` is the in-process pace over native,
``dmon/pace`` dmon's time per call over it. ``*cpu`` columns are the CPU
microseconds per call of every monitor and CONNECTOR process together (a
one-call run's taken off): the pipeline's work, which load from other work
moves far less than the wall clock; on this project's 2-vCPU VMs, where
the in-process path's ``spread`` placement puts each variant's side on one
CPU, the pace cannot be faster than the dearer side's.

``local`` is a call the seccomp filter lets through untraced (rt_sigprocmask):
the fast path, which the issue wants within 1.5x of native. It gets more
columns, because on a small VM two variants compete for the CPU while they
run the loop, which a native single run does not:

``filter``
    one process under the very filter a variant gets, traced but never
    stopped in the loop: the cost of the filter itself;
``native x2``
    two native copies at once, pinned one per CPU: what two variants doing
    the same work cost on this machine without any monitor.

    .venv/bin/python benchmarks/bench_real.py [--calls N] [--sync-calls N]
        [--local-calls N] [--repeat N] [--place auto|same|split|spread|none] [--stall-timeout S] [--json]
    .venv/bin/python benchmarks/bench_real.py --summary-overhead [--calls N] [--sync-calls N] [--repeat N]

``--summary-overhead`` measures what ``dmvx run --summary`` costs instead:
each traced cell without and with the per-call counting, runs interleaved
(so drift on a shared host spreads over both), and their ratio.

Needs root (or ptrace permission over one's own children) and gcc.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dmvx.exitstatus import EnvironmentProblem  # noqa: E402
from realmode import microbench  # noqa: E402

KINDS = microbench.KINDS
POLICIES = ("dmon", "dmvx")


def _native(binary: str, kind: str, calls: int) -> float:
    return microbench.native_ns(binary, kind, calls) / 1000


def _native_pair(binary: str, calls: int) -> float:
    return microbench.native_pair_ns(binary, calls) / 1000


def _filtered(binary: str, calls: int, policy: str) -> float:
    return microbench.filtered_ns(binary, calls, policy) / 1000


#: ``--stall-timeout``: how long a variant may make no call while the other
#: waits (a machine under heavy load starves a variant past the default).
STALL_TIMEOUT = microbench.DEFAULT_STALL_TIMEOUT


def _traced(binary: str, kind: str, calls: int, policy: str, place: str) -> float:
    return microbench.traced_ns(binary, kind, calls, policy, place, stall_timeout=STALL_TIMEOUT) / 1000


def _both_paths(binary: str, kind: str, calls: int, place: str) -> dict[str, tuple[float, float, float, float]]:
    """dmvx on the ptrace path and on the in-process path, one after the
    other: (us per call by the program's clock, us per call of the whole run,
    us per call of the whole run less a one-call run's -- the pace of the
    calls with the followers caught up, the run's start-up and end taken
    out -- and the CPU us per call of every monitor and CONNECTOR, less a
    one-call run's: the pipeline's work per call, which load from other work
    moves far less than the wall clock)."""
    times: dict[str, tuple[float, float, float, float]] = {}
    for path in ("ptrace", "in-process"):
        fast = path == "in-process"
        many = microbench.traced(binary, kind, calls, "dmvx", place, fast, stall_timeout=STALL_TIMEOUT)
        one = microbench.traced(binary, kind, 1, "dmvx", place, fast, stall_timeout=STALL_TIMEOUT)
        times[path] = (
            many.ns_per_call / 1000,
            many.run_ns_per_call / 1000,
            (many.run_ns_per_call * calls - one.run_ns_per_call) / (calls - 1) / 1000,
            (many.pipeline_cpu_ns - one.pipeline_cpu_ns) / (calls - 1) / 1000,
        )
    return times


def _summary_overhead(binary: str, args: argparse.Namespace) -> int:
    """Each traced kind and policy without and with ``--summary``,
    interleaved: the program's microseconds per call, and the CPU
    microseconds per call of the monitor processes (leader + follower),
    which a loaded machine disturbs less."""
    median = statistics.median
    rows = []
    for kind in (k for k in KINDS if k != "local"):
        for policy in POLICIES:
            calls = args.calls if policy == "dmvx" else args.sync_calls
            wall: dict[bool, list[float]] = {False: [], True: []}
            cpu: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.repeat):
                for summary in (False, True):
                    one = microbench.traced(binary, kind, calls, policy, args.place, summary=summary, stall_timeout=60)
                    wall[summary].append(one.ns_per_call / 1000)
                    cpu[summary].append(sum(one.monitor_cpu_ns_per_call) / 1000)
            off, on = median(wall[False]), median(wall[True])
            cpu_off, cpu_on = median(cpu[False]), median(cpu[True])
            rows.append(
                {
                    "call": kind,
                    "policy": policy,
                    "off_us": off,
                    "on_us": on,
                    "ratio": on / off,
                    "monitor_cpu_off_us": cpu_off,
                    "monitor_cpu_on_us": cpu_on,
                    "monitor_cpu_ratio": cpu_on / cpu_off,
                }
            )
    if args.json:
        print(json.dumps({"place": args.place, "summary_overhead": rows}, indent=2))
        return 0
    print(f"placement: {args.place}; microseconds per call, median of {args.repeat} interleaved runs")
    print(
        f"{'call':<12}{'policy':<8}{'wall: off':>11}{'on':>10}{'ratio':>7}{'monitor CPU: off':>18}{'on':>9}{'ratio':>7}"
    )
    for r in rows:
        print(
            f"{r['call']:<12}{r['policy']:<8}{r['off_us']:>11.1f}{r['on_us']:>10.1f}{r['ratio']:>7.3f}"
            f"{r['monitor_cpu_off_us']:>18.1f}{r['monitor_cpu_on_us']:>9.1f}{r['monitor_cpu_ratio']:>7.3f}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls",
        type=int,
        default=10000,
        help="calls per dmvx run (beyond the CB's 4096 "
        "entries, so on the ptrace path the leader cannot finish before the followers are fed; on the "
        "in-process path it runs ahead by the CB plus its ring, 1 MiB: 10,000 getpid records of 80 bytes "
        "fit, getcwd's of 120 do not -- 'inproc' is then the leader's own pace, 'inproc run' the pipeline's)",
    )
    parser.add_argument("--sync-calls", type=int, default=2000, help="calls per dmon run")
    parser.add_argument("--native-calls", type=int, default=200000, help="calls per native run")
    parser.add_argument("--local-calls", type=int, default=2000000, help="calls of the local loop")
    parser.add_argument("--repeat", type=int, default=5, help="runs per cell (median)")
    parser.add_argument(
        "--local-repeat",
        type=int,
        default=11,
        help="runs per cell of the local loop, whose spread on a shared VM is wide (median)",
    )
    parser.add_argument("--place", default="auto", help="CPU placement (see realmode.orchestrator.placement)")
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=microbench.DEFAULT_STALL_TIMEOUT,
        help="seconds a variant may make no call while another waits (as dmvx run's; raise it on a loaded machine)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--summary-overhead", action="store_true", help="what dmvx run --summary costs: each cell without and with it"
    )
    args = parser.parse_args()
    global STALL_TIMEOUT
    STALL_TIMEOUT = args.stall_timeout
    median = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        binary = microbench.build(tmp)
        if args.summary_overhead:
            return _summary_overhead(binary, args)
        rows = []
        for kind in KINDS:
            native = median(_native(binary, kind, args.native_calls) for _ in range(args.repeat))
            dmon = median(_traced(binary, kind, args.sync_calls, "dmon", args.place) for _ in range(args.repeat))
            # Old path beside new, interleaved run by run.
            pairs = [_both_paths(binary, kind, args.calls, args.place) for _ in range(args.repeat)]
            dmvx = median(p["ptrace"][0] for p in pairs)
            inproc = median(p["in-process"][0] for p in pairs)
            rows.append(
                {
                    "call": kind,
                    "native_us": native,
                    "dmon_us": dmon,
                    "dmvx_us": dmvx,
                    "inproc_us": inproc,
                    "dmvx_run_us": median(p["ptrace"][1] for p in pairs),
                    "inproc_run_us": median(p["in-process"][1] for p in pairs),
                    "dmvx_pace_us": median(p["ptrace"][2] for p in pairs),
                    "inproc_pace_us": median(p["in-process"][2] for p in pairs),
                    "inproc_pace_x": median(p["in-process"][2] for p in pairs) / native,
                    "dmon_over_inproc_pace": dmon / median(p["in-process"][2] for p in pairs),
                    "dmvx_cpu_us": median(p["ptrace"][3] for p in pairs),
                    "inproc_cpu_us": median(p["in-process"][3] for p in pairs),
                    "dmon_x": dmon / native,
                    "dmvx_x": dmvx / native,
                    "inproc_x": inproc / native,
                    "dmon_over_dmvx": dmon / dmvx,
                    "dmon_over_inproc": dmon / inproc,
                }
            )
        n, reps = args.local_calls, args.local_repeat
        samples: dict[str, list[float]] = {key: [] for key in ("native", "filter", "native_x2", *POLICIES)}
        for _ in range(reps):  # interleaved, so that drift on the host spreads over every column
            samples["native"].append(_native(binary, "local", n))
            samples["filter"].append(_filtered(binary, n, "dmvx"))
            samples["native_x2"].append(_native_pair(binary, n))
            for policy in POLICIES:
                samples[policy].append(_traced(binary, "local", n, policy, args.place))
        native = median(samples["native"])
        local: dict[str, Any] = {"call": "local", **{f"{key}_us": median(values) for key, values in samples.items()}}
        for key in ("filter", "native_x2", "dmon", "dmvx"):
            local[f"{key}_x"] = local[f"{key}_us"] / native
        local["dmon_over_dmvx"] = local["dmon_us"] / local["dmvx_us"]
        rows.append(local)
    if args.json:
        print(json.dumps({"place": args.place, "rows": rows}, indent=2))
        return 0
    print(f"placement: {args.place}; microseconds per call, median of {args.repeat} runs")
    print("dmvx: the ptrace path (--in-process off); inproc: dmvx --in-process on; by the program's clock")
    print("*run: the whole run / calls; *pace: (the whole run - a one-call run) / calls, the followers caught up;")
    print("*cpu: CPU us per call of every monitor and CONNECTOR (a one-call run's taken off)")
    print(
        f"{'call':<12}{'native':>9}{'dmon':>10}{'dmvx':>10}{'inproc':>10}{'dmon x':>9}{'dmvx x':>9}"
        f"{'inproc x':>10}{'dmon/dmvx':>11}{'dmon/inproc':>12}{'dmvx run':>10}{'inproc run':>11}"
        f"{'dmvx pace':>10}{'inproc pace':>12}{'pace x':>8}{'dmon/pace':>10}{'dmvx cpu':>9}{'inproc cpu':>11}"
    )
    for r in rows[:-1]:
        print(
            f"{r['call']:<12}{r['native_us']:>9.3f}{r['dmon_us']:>10.3f}{r['dmvx_us']:>10.3f}{r['inproc_us']:>10.3f}"
            f"{r['dmon_x']:>9.1f}{r['dmvx_x']:>9.1f}{r['inproc_x']:>10.1f}{r['dmon_over_dmvx']:>11.2f}"
            f"{r['dmon_over_inproc']:>12.2f}{r['dmvx_run_us']:>10.2f}{r['inproc_run_us']:>11.2f}"
            f"{r['dmvx_pace_us']:>10.2f}{r['inproc_pace_us']:>12.2f}{r['inproc_pace_x']:>8.1f}"
            f"{r['dmon_over_inproc_pace']:>10.1f}{r['dmvx_cpu_us']:>9.2f}{r['inproc_cpu_us']:>11.2f}"
        )
    r = rows[-1]
    print(
        f"{r['call']:<12}{r['native_us']:>9.3f}{r['dmon_us']:>10.3f}{r['dmvx_us']:>10.3f}"
        f"{'':>10}{r['dmon_x']:>9.1f}{r['dmvx_x']:>9.1f}{'':>10}{r['dmon_over_dmvx']:>11.2f}"
    )
    print(
        f"local call (median of {args.local_repeat} interleaved runs): filter alone {local['filter_x']:.2f}x "
        f"native, two native copies at once {local['native_x2_x']:.2f}x, dmon {local['dmon_x']:.2f}x, "
        f"dmvx {local['dmvx_x']:.2f}x "
        f"(two variants at once: dmon {local['dmon_us'] / local['native_x2_us']:.2f}x, "
        f"dmvx {local['dmvx_us'] / local['native_x2_us']:.2f}x of two native copies)"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EnvironmentProblem as problem:  # no gcc, or a divergence on this machine
        raise SystemExit(str(problem)) from None
