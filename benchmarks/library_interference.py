"""Why benchmarks time XLA's ops and PyTorch's apart: PyTorch's threads slow the next XLA op.

Three 3x3 convolutions of the cmr96-size U-Net (batch 16), forward + both gradients, as
``benchmarks/cpu_ops.py`` times them: compiled under jaxseg's ``tuned`` XLA options and with
YNNPACK off (whose compiled HLO is compared: the same program), then timed round-robin
(median of ``--repeats``) in four orders: the two XLA programs alone; both followed by
PyTorch's same convolution (so ``tuned`` runs right after PyTorch); PyTorch first, then
YNNPACK off, then ``tuned`` (YNNPACK off runs right after PyTorch); and PyTorch followed by
one untimed call of ``tuned`` before the timed XLA calls. Needs the ``bench`` extra (torch).

Command (from the repository root):
  python benchmarks/library_interference.py --out=docs/bench_library_interference_cpu.json
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import record  # noqa: E402

flags.DEFINE_integer("repeats", 15, "Round-robin rounds (the median is reported).")
flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
FLAGS = flags.FLAGS

KEY = "xla_cpu_experimental_ynn_fusion_type"
OPTIONS = {"tuned": {KEY: "LIBRARY_FUSION_TYPE_REDUCE"}, "ynn_off": {KEY: ""}}
LAYERS = [(12, 64, 128), (48, 16, 32), (96, 16, 16)]
# Each order: the ops called in turn per round; names starting with "untimed" are not timed.
ORDERS = {"XLA alone": ["tuned", "ynn_off"],
          "tuned right after PyTorch": ["tuned", "ynn_off", "torch"],
          "ynn_off right after PyTorch": ["torch", "ynn_off", "tuned"],
          "one untimed XLA call after PyTorch": ["torch", "untimed tuned", "tuned", "ynn_off"]}


def _conv_loss(x, w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(y * y)


def _round_robin(fns: dict, order: list[str], repeats: int) -> dict:
    for name in order:
        fns[name.removeprefix("untimed ")]()
    times = {name: [] for name in order if not name.startswith("untimed")}
    for _ in range(repeats):
        for name in order:
            t0 = time.perf_counter()
            fns[name.removeprefix("untimed ")]()
            if name in times:
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(v)) for name, v in times.items()}


def main(_):
    """Times every order for every layer; prints and writes the medians (ms)."""
    torch.set_num_threads(os.cpu_count())
    rows = []
    for hw, c, o in LAYERS:
        x = jax.random.normal(jax.random.key(0), (16, hw, hw, c))
        w = jax.random.normal(jax.random.key(1), (3, 3, c, o)) * 0.1
        grad = jax.jit(jax.grad(_conv_loss, argnums=(0, 1)))
        compiled = {k: grad.lower(x, w).compile(compiler_options=v) for k, v in OPTIONS.items()}
        same_hlo = compiled["tuned"].as_text() == compiled["ynn_off"].as_text()
        fns = {k: (lambda f=f, x=x, w=w: jax.block_until_ready(f(x, w)))
               for k, f in compiled.items()}
        tx = torch.randn(16, c, hw, hw, requires_grad=True)
        tw = torch.randn(o, c, 3, 3, requires_grad=True)
        fns["torch"] = lambda tx=tx, tw=tw: (torch.nn.functional.conv2d(
            tx, tw, padding=1) ** 2).sum().backward()
        for order_name, order in ORDERS.items():
            med = _round_robin(fns, order, FLAGS.repeats)
            rows.append({"layer": f"{hw}x{hw} {c}->{o}", "order": order_name,
                         "same_hlo": same_hlo, **{k: v * 1e3 for k, v in med.items()}})
            print(rows[-1], flush=True)
    record.emit({"rows": rows, "unit": "ms", "repeats": FLAGS.repeats,
                 "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                 **record.provenance()}, FLAGS.out)


if __name__ == "__main__":
    app.run(main)
