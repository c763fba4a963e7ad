"""Run one benchmark on two checkouts of dmvx, interleaved, and print them side by side.

A change that should leave performance alone (a refactor) is shown to do so by the same
benchmark on the tree before and the tree after, *in one run*: the machines here are shared
and noisy, so two runs an hour apart say more about the neighbours than about the change.
This runs the benchmark's ``--json`` mode on each tree in turn (A, B, A, B, ...), each tree
with its own ``.venv`` (``./run setup`` in it first), and prints the median of every numeric
figure per tree with the ratio B/A.

    .venv/bin/python tools/compare_trees.py BEFORE_DIR AFTER_DIR benchmarks/bench_real.py \\
        [--rounds 3] [-- BENCH_ARGS...]

For example, a refactor's before and after (a worktree of the old commit beside this one):

    git worktree add --detach ../before <old-commit> && (cd ../before && ./run setup)
    .venv/bin/python tools/compare_trees.py ../before . benchmarks/bench_real.py --rounds 2 -- --repeat 3

A row is one element of the benchmark's JSON (a list, or the list under ``rows``), named by
its string fields; every int or float field of it is a figure. Needs whatever the benchmark
needs (root, gcc, lighttpd ...).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

Figures = dict[tuple[str, str], list[float]]


def _rows(document: Any) -> list[dict[str, Any]]:
    rows = document.get("rows") if isinstance(document, dict) else document
    if not isinstance(rows, list):
        raise SystemExit("compare_trees: the benchmark's JSON is neither a list nor has a 'rows' list")
    return [row for row in rows if isinstance(row, dict)]


def _collect(tree: Path, bench: str, bench_args: list[str], into: Figures) -> None:
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"compare_trees: {python} is missing: run ./run setup in {tree} first")
    done = subprocess.run([str(python), bench, "--json", *bench_args], cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-2000:])
        raise SystemExit(f"compare_trees: {bench} failed in {tree} (status {done.returncode})")
    for row in _rows(json.loads(done.stdout)):
        name = " ".join(str(v) for v in row.values() if isinstance(v, str))
        for key, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                into.setdefault((name, key), []).append(float(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("bench", help="the benchmark script, relative to each tree")
    parser.add_argument("--rounds", type=int, default=3, help="runs per tree, interleaved (median)")
    argv = sys.argv[1:] if argv is None else argv
    bench_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: len(argv) - len(bench_args) - (1 if "--" in argv else 0)])
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    before: Figures = {}
    after: Figures = {}
    for round_ in range(args.rounds):
        for label, tree, into in (("A", args.before, before), ("B", args.after, after)):
            print(f"round {round_ + 1}/{args.rounds}: {label} = {tree}", file=sys.stderr, flush=True)
            _collect(tree.resolve(), args.bench, bench_args, into)
    print(f"{args.bench}: A = {args.before}, B = {args.after}; median of {args.rounds} interleaved runs each")
    print(f"{'row':<28}{'figure':<22}{'A':>12}{'B':>12}{'B/A':>8}")
    for key in sorted(set(before) & set(after)):
        a, b = statistics.median(before[key]), statistics.median(after[key])
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"{key[0][:27]:<28}{key[1][:21]:<22}{a:>12.3f}{b:>12.3f}{ratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
