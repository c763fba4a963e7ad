#!/bin/bash
# sim_outputs_compare.sh BASE NEW: byte-compare two captures of tools/sim_outputs.sh (stdout and
# exit status of every run); print each difference and the count.
base=$1; new=$2; n=0; d=0
for f in "$base"/*.json "$base"/*.rc; do
  n=$((n+1)); g=$new/$(basename "$f")
  if ! cmp -s "$f" "$g"; then d=$((d+1)); echo "DIFFERS: $(basename "$f")"; fi
done
echo "compared $n files, $d differences"
[ "$d" -eq 0 ]
