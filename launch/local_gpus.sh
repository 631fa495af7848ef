#!/usr/bin/env bash
# Usage: launch/local_gpus.sh EXPERIMENT[:ARG] WORKDIR [--config.a.b=value ...]
#
# One process drives every local accelerator: each cohort's replica axis is sharded over
# them (train.devices=0: all; each device trains its share, nothing crosses devices in a
# step; cohorts that do not divide evenly are padded with inert replicas).
# CUDA_VISIBLE_DEVICES picks a subset of the GPUs. On a machine without accelerators,
# CPU_DEVICES=N splits the CPU into N XLA devices, to try the sharded path:
#   CPU_DEVICES=4 launch/local_gpus.sh experiments/l2_fraction.py:smoke /tmp/sharded
set -euo pipefail
if [ $# -lt 2 ]; then sed -n '2,/^[^#]/{/^#[^S]/p;/^#$/p}' "$0"; exit 2; fi
experiment=$1 workdir=$2
shift 2
if [ -n "${CPU_DEVICES:-}" ]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${CPU_DEVICES}"
fi
exec "${JAXSEG:-jaxseg}" sweep --config="$experiment" --workdir="$workdir" \
  --config.train.devices=0 "$@"
