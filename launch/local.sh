#!/usr/bin/env bash
# Usage: launch/local.sh EXPERIMENT[:ARG] WORKDIR [--config.a.b=value ...]
#
# Runs a whole grid on this machine in one process: every cohort of the experiment's sweep,
# resumable (run the same command again after an interruption). Uses the `jaxseg` on PATH
# (or $JAXSEG). Example:
#   launch/local.sh experiments/loss_functions.py runs/losses
#   launch/local.sh experiments/l2_fraction.py:smoke /tmp/smoke --config.train.epochs=1
set -euo pipefail
if [ $# -lt 2 ]; then sed -n '2,/^[^#]/{/^#[^S]/p;/^#$/p}' "$0"; exit 2; fi
experiment=$1 workdir=$2
shift 2
exec "${JAXSEG:-jaxseg}" sweep --config="$experiment" --workdir="$workdir" "$@"
