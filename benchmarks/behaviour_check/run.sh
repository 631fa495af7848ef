#!/usr/bin/env bash
# Behaviour check for refactors: train the same small grids at two commits and compare.
#
#   benchmarks/behaviour_check/run.sh OUT           # runs the grids with this checkout
#   python benchmarks/behaviour_check/compare.py OUT_BEFORE OUT_AFTER
#
# The grids (phantom data, ~1 min on 2 CPU cores): a 7-run sweep exercising every replica
# rule (reduce-on-plateau, early stopping on loss and on Dice, a diverging replica, data
# fractions, eval.select=loss, HD95), a 3-fold cohort, and the quickstart as `jaxseg train`.
# compare.py wants results.csv (wall-time columns aside), every history.jsonl and every
# summary's replicas to be identical.
set -euo pipefail
out=$(realpath -m "$1"); rm -rf "$out"; mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
export JAXSEG_TFDS_DIR="$out/tfds"
jaxseg=${JAXSEG:-.venv/bin/jaxseg}
$jaxseg sweep --config="$here/sweep_rules.py" --workdir="$out/sweep" > "$out/sweep.log" 2>&1
$jaxseg sweep --config="$here/folds.py" --workdir="$out/folds" > "$out/folds.log" 2>&1
$jaxseg train --config=experiments/quickstart.py --workdir="$out/train" \
    --config.train.epochs=2 > "$out/train.log" 2>&1
echo "outputs in $out"
