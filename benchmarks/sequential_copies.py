"""Why large ``sequential`` cohorts lose to one-by-one runs: full-stack copies per call.

Compiles the ``sequential`` one-replica training step of the cmr96-size cohort
(``benchmarks/cmr96_size.py``) for each R and counts, in XLA's optimized HLO, the
``copy`` instructions whose result is a whole stacked buffer (``f32[R, ...]``): each is
O(R) memory traffic on every call. For contrast it times a toy program with the same
take / update / ``where`` / put pattern (donated), which XLA keeps in place: its call
time should not grow with R.

Command (from the repository root):
  python benchmarks/sequential_copies.py --replicas=2,32 --out=docs/bench_sequential_copies_cpu.json
"""

import argparse
import datetime
import json
import re
import time

import jax
import jax.numpy as jnp

from jaxseg import bench, replicas
from jaxseg.data import datasets
from jaxseg.sweep import expand


def full_stack_copies(config, data, num_replicas: int) -> int:
    """Copies of whole ``f32[R, ...]`` buffers in the compiled sequential step."""
    program = bench._Program(config, data, num_replicas, "sequential")
    hlo = program.compiled.as_text()
    return len(re.findall(rf"f32\[{num_replicas},[^\]]*\]\{{[^}}]*\}} copy\(", hlo))


def toy_call_ms(num_replicas: int, size: int = 5_000_000, calls: int = 20) -> float:
    """Milliseconds per call of a donated take / update / where / put on a stacked tree."""
    state = {"a": jnp.zeros((num_replicas, size)), "b": jnp.zeros((num_replicas, size // 2))}

    def step(state, r, ok):
        old = replicas.take_replica(state, r)
        new = jax.tree.map(lambda x: x * 1.0001 + 1.0, old)
        new = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
        return replicas.put_replica(state, new, r)

    f = jax.jit(step, donate_argnums=(0,))
    state = jax.block_until_ready(f(state, 0, True))
    t0 = time.perf_counter()
    for i in range(calls):
        state = f(state, i % num_replicas, True)
    jax.block_until_ready(state)
    return 1e3 * (time.perf_counter() - t0) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="2,32")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    module, _ = expand.load_experiment("benchmarks/cmr96_size.py")
    config = module.get_config()
    data = datasets.load(config.data)
    rows = []
    for r in [int(x) for x in args.replicas.split(",")]:
        rows.append({"replicas": r, "full_stack_copies": full_stack_copies(config, data, r),
                     "toy_call_ms": toy_call_ms(r)})
        print(rows[-1], flush=True)
    out = {"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
           "jax": jax.__version__, "date": datetime.date.today().isoformat(), "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
