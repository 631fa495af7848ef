#!/usr/bin/env bash
# Usage: sbatch --nodes=N --ntasks-per-node=1 [--gpus-per-node=G] \
#          launch/slurm.sh EXPERIMENT[:ARG] WORKDIR [--config.a.b=value ...]
#
# A SLURM allocation: srun starts one jaxseg process per node; --distributed lets
# jax.distributed.initialize read the coordinator, process count and index from SLURM's
# environment. WORKDIR must be on a file system every node sees. Re-submitting the same
# command resumes the sweep (finished cohorts are skipped).
#SBATCH --job-name=jaxseg
#SBATCH --ntasks-per-node=1
set -euo pipefail
if [ $# -lt 2 ]; then sed -n '2,/^[^#]/{/^#[^S]/p;/^#$/p}' "$0"; exit 2; fi
experiment=$1 workdir=$2
shift 2
exec srun --kill-on-bad-exit=1 "${JAXSEG:-jaxseg}" sweep --config="$experiment" \
  --workdir="$workdir" --distributed --config.train.devices=0 "$@"
