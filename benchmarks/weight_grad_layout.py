"""How much of XLA CPU's convolution weight gradient is its layout copies.

XLA CPU computes a 3x3 convolution's weight gradient as one Eigen convolution with batch
and features swapped: the activations ``(N, H, W, C)`` copied to ``(C, H, W, N)`` and the
output gradient ``(N, H, W, O)`` to ``(H, W, N, O)`` first (the step profile's largest
group of copies, docs/benchmarks.md). This times, per layer of the cmr96-size U-Net (batch
16), the weight gradient as XLA builds it from ``jax.vjp`` against the same convolution
handed operands that are already in that layout (what the best possible fusion of the
copies into their producers would leave), round-robin, jaxseg's XLA options, and checks
that both give the same gradient.

Command (from the repository root):
  python benchmarks/weight_grad_layout.py --out=docs/bench_weight_grad_layout_cpu.json
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import record  # noqa: E402

from jaxseg.engine import replicas  # noqa: E402

flags.DEFINE_integer("repeats", 21, "Round-robin rounds (the median is reported).")
flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
FLAGS = flags.FLAGS

DN = ("NHWC", "HWIO", "NHWC")
# (size, in channels, out channels): one layer per distinct shape of the U-Net's 3x3 convs.
LAYERS = [(96, 16, 16), (96, 32, 16), (48, 32, 32), (24, 64, 64), (12, 128, 128)]


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN)


def _xla_weight_grad(x, w, dy):
    """XLA's own: the weight gradient of ``_conv`` from ``jax.vjp``."""
    return jax.vjp(lambda w: _conv(x, w), w)[1](dy)[0]


def _pre_transposed(xt, dyt):
    """The same convolution on operands already in its layout: ``(C,H,W,N)``, ``(H,W,N,O)``."""
    out = jax.lax.conv_general_dilated(xt, dyt, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN)
    return out.transpose(1, 2, 0, 3)  # (C, 3, 3, O) -> (3, 3, C, O): 9*C*O values


def main(_):
    """Times both forms per layer; prints and writes the medians and their ratio."""
    opts = replicas.compiler_options("tuned")
    rows = []
    for hw, c, o in LAYERS:
        k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(k1, (16, hw, hw, c))
        w = jax.random.normal(k2, (3, 3, c, o))
        dy = jax.random.normal(k3, (16, hw, hw, o))
        xt, dyt = jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(dy, (1, 2, 0, 3))
        xla = jax.jit(_xla_weight_grad, compiler_options=opts).lower(x, w, dy).compile()
        pre = jax.jit(_pre_transposed, compiler_options=opts).lower(xt, dyt).compile()
        a, b = xla(x, w, dy), pre(xt, dyt)
        err = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
        times = {"xla": [], "pre": []}
        for _ in range(FLAGS.repeats):
            for name, f, args in (("xla", xla, (x, w, dy)), ("pre", pre, (xt, dyt))):
                t0 = time.perf_counter()
                jax.block_until_ready(f(*args))
                times[name].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        rows.append({"layer": f"{hw}x{hw} {c}->{o}", "xla_s": med["xla"],
                     "pre_transposed_s": med["pre"], "ratio": med["pre"] / med["xla"],
                     "max_rel_diff": err})
        print(rows[-1], flush=True)
    out = {"rows": rows, "sum_xla_s": sum(r["xla_s"] for r in rows),
           "sum_pre_transposed_s": sum(r["pre_transposed_s"] for r in rows),
           "repeats": FLAGS.repeats, **record.provenance()}
    out["ratio_of_sums"] = out["sum_pre_transposed_s"] / out["sum_xla_s"]
    record.emit(out, FLAGS.out)

if __name__ == "__main__":
    app.run(main)
