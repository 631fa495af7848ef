#!/usr/bin/env bash
# The GPU suite (benchmarks/gpu_suite.py) in one command, on the GPU machine or (--tiny) here:
#   bash benchmarks/gpu_suite.sh OUT_DIR [--tiny] [gpu_suite.py flags]
# On the GPU machine, run benchmarks/gpu_prepare.sh here first and carry .whl and .gpu_data:
# the wheels in .whl are installed into /tmp/site (the image lacks clu, ml_collections and
# tensorflow-datasets). PYTHON picks the interpreter (default: python3).
set -euo pipefail
out=${1:?usage: gpu_suite.sh OUT_DIR [--tiny] [flags]}
shift
py=${PYTHON:-python3}
if [ -d .whl ] && ! "$py" -c "import clu, ml_collections, tensorflow_datasets" 2>/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$py" -c "import jax; print('[gpu_suite] jax', jax.__version__, jax.devices())"
exec "$py" benchmarks/gpu_suite.py --out="$out" "$@"
