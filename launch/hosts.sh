#!/usr/bin/env bash
# Usage: launch/hosts.sh COORDINATOR_HOST:PORT NUM_PROCESSES PROCESS_ID EXPERIMENT[:ARG] WORKDIR
#          [--config.a.b=value ...]
#
# Several hosts, one process each, started by hand (or by your scheduler): run this on every
# host with the same coordinator (process 0's host and a free port), the same experiment and
# a WORKDIR on a shared file system, and PROCESS_ID 0..NUM_PROCESSES-1. JAX's distributed
# runtime joins them; the replicas of each cohort are sharded over all their devices;
# process 0 writes the tables, histories and summaries, and orbax writes the checkpoints.
# Try it on one machine (two processes on the loopback, 2 CPU devices each):
#   for i in 0 1; do CPU_DEVICES=2 launch/hosts.sh 127.0.0.1:12355 2 $i \
#     experiments/l2_fraction.py:smoke /tmp/two_hosts & done; wait
set -euo pipefail
if [ $# -lt 5 ]; then sed -n '2,/^[^#]/{/^#[^S]/p;/^#$/p}' "$0"; exit 2; fi
coordinator=$1 num_processes=$2 process_id=$3 experiment=$4 workdir=$5
shift 5
if [ -n "${CPU_DEVICES:-}" ]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${CPU_DEVICES}"
fi
exec "${JAXSEG:-jaxseg}" sweep --config="$experiment" --workdir="$workdir" \
  --coordinator_address="$coordinator" --num_processes="$num_processes" \
  --process_id="$process_id" --config.train.devices=0 "$@"
