#!/bin/bash
# sim_outputs.sh CODETREE WORKDIR OUTDIR: capture what sim mode prints, to show that a change
# to the engine (a speed-up, a refactor) leaves every result as it was.
#
# With the dmvx installed in CODETREE/.venv, run from WORKDIR (a checkout holding scenarios/):
# `dmvx sim --json` of every scenario file under scenarios/ (recursively), the default demo
# (`dmvx sim` as a table and as --format csv), a few --set sweeps, and `dmvx suite --mode sim
# --json` of the scenario directories: stdout, stderr and exit status per run, into OUTDIR.
# Resumable (a run whose .rc exists is skipped). Compare two captures with
#     tools/sim_outputs_compare.sh BASE NEW
set -u
code=$(cd "$1" && pwd); wt=$2; out=$(mkdir -p "$3" && cd "$3" && pwd); cd "$wt"
dmvx=$code/.venv/bin/dmvx
export COLUMNS=200 NO_COLOR=1
run() {  # name args...
  local name=$1; shift
  [ -e "$out/$name.rc" ] && return
  "$dmvx" "$@" > "$out/$name.json" 2> "$out/$name.err"; echo $? > "$out/$name.rc"
}
run demo_table sim
run demo_csv sim --format csv
for f in $(find scenarios -type f \( -name '*.yml' -o -name '*.yaml' -o -name '*.jsonl' \) | sort); do
  run "sim__$(echo "$f" | tr '/' '_')" sim --json "$f"
done
run set_delay sim --json --set 'links.h1-s1.delay=[1ms, 5ms]' scenarios/default.yml
run set_preset sim --json --set 'policy.preset=[dmon, dmvx]' scenarios/default.yml
run set_seed sim --json --seed 7 --set 'policy.cb.entries=[8, 64]' scenarios/default.yml
run set_sweepvals sim --json --set 'sweep.values=[1, 2]' scenarios/sweep-cb.yml
run set_attack sim --json --set 'policy.preset=[dmon, dmvx]' scenarios/attacks/stack-overflow.yml
run seeds_attack sim --format csv --seeds 3 --at-calls 5000,20000 scenarios/attacks/stack-overflow.yml
run suite_attacks suite --mode sim --json scenarios/attacks
run suite_labs suite --mode sim --json scenarios/labs
run suite_top suite --mode sim --json scenarios
