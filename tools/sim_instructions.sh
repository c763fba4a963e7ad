#!/bin/bash
# sim_instructions.sh TREE [CALLS] [BENCH_ARGS...]: instructions per simulated call of
# benchmarks/bench_sim.py in TREE (its .venv), counted by valgrind (cachegrind, no cache
# simulation): a figure the neighbours on a shared machine cannot disturb, unlike CPU seconds.
# Two runs, CALLS and 2*CALLS, so start-up (imports, building the scenario) cancels out.
set -eu
tree=$(cd "$1" && pwd); calls=${2:-20000}; shift; shift || true
count() {
  local n=$1; shift
  (cd "$tree" && valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    .venv/bin/python benchmarks/bench_sim.py --calls "$n" --require 0 "$@" 2>&1 >/dev/null |
    sed -n 's/.*I *refs: *//p' | tr -d ,)
}
a=$(count "$calls" "$@"); b=$(count $((2 * calls)) "$@")
echo "$tree: $(( (b - a) / calls )) instructions per simulated call ($calls calls: $a, $((2 * calls)): $b)"
