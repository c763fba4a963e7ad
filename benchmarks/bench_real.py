"""Real-mode system-call microbenchmark: native vs DMON vs dMVX, in one run.

Runs realmode/targets/bench.c (compiled into a temporary directory) for each
call kind natively and as two variants under each policy, and prints the
nanoseconds per call, each slowdown relative to native, and the dmon/dmvx
ratio. ``local`` is a call the seccomp filter lets through untraced: it
shows the fast path (the issue asks for within 1.5x of native).

    .venv/bin/python benchmarks/bench_real.py [--calls N] [--native-calls N] [--json]

Needs root (or ptrace permission over one's own children) and gcc.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realmode.orchestrator import run  # noqa: E402

KINDS = ("getpid", "read", "getcwd", "sched_yield", "local")


def _per_call(text: str) -> float:
    return float(text.split()[2])


def _traced(binary: str, kind: str, calls: int, policy: str) -> float:
    argv = [binary, kind, str(calls)]
    with tempfile.TemporaryFile() as out:
        saved = os.dup(1)
        try:
            os.dup2(out.fileno(), 1)
            result = run([argv, argv], policy)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    if result.verdict is not None:
        raise SystemExit(f"{kind} under {policy}: {result.verdict.summary()}")
    return _per_call(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per traced run")
    parser.add_argument("--native-calls", type=int, default=200000, help="calls per native run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (median)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("gcc is needed to build the benchmark target")
    with tempfile.TemporaryDirectory() as tmp:
        binary = str(Path(tmp) / "bench")
        subprocess.run([gcc, "-O2", "-o", binary, str(ROOT / "realmode/targets/bench.c")], check=True)
        rows = []
        for kind in KINDS:
            native = statistics.median(
                _per_call(subprocess.run([binary, kind, str(args.native_calls)], capture_output=True,
                                         text=True, check=True).stdout) for _ in range(args.repeat))
            calls = args.native_calls if kind == "local" else args.calls
            cells = {p: statistics.median(_traced(binary, kind, calls, p) for _ in range(args.repeat))
                     for p in ("dmon", "dmvx")}
            rows.append({"call": kind, "native_ns": native, "dmon_ns": cells["dmon"], "dmvx_ns": cells["dmvx"],
                         "dmon_x": cells["dmon"] / native, "dmvx_x": cells["dmvx"] / native,
                         "dmon_over_dmvx": cells["dmon"] / cells["dmvx"]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'call':<12}{'native ns':>11}{'dmon ns':>11}{'dmvx ns':>11}{'dmon x':>9}{'dmvx x':>9}{'dmon/dmvx':>11}")
    for r in rows:
        print(f"{r['call']:<12}{r['native_ns']:>11.0f}{r['dmon_ns']:>11.0f}{r['dmvx_ns']:>11.0f}"
              f"{r['dmon_x']:>9.1f}{r['dmvx_x']:>9.1f}{r['dmon_over_dmvx']:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
