"""Single ops of the cmr96-size U-Net on XLA CPU under each XLA option, and in PyTorch.

What ``benchmarks/cpu_options.py`` shows for a whole step, op by op: forward + both
gradients of every 3x3 convolution of the U-Net (base 16, depth 3, batch 16, 96x96), the
per-channel sum of a batch-norm-sized tensor, and 2x2 max pooling (forward + gradient)
written as ``nn.max_pool`` and as jaxseg's reshape + max. Each JAX op is compiled under
every option set first, then all are timed round-robin (median of ``--repeats``); the
PyTorch convolutions (NCHW, 2 threads) are timed in the same process when torch is
installed (the ``bench`` extra), in NCHW as the PyTorch reference runs them and in the
``channels_last`` memory format (``torch channels_last``: what a PyTorch user can switch on
for oneDNN's NHWC kernels), and then split into forward, input gradient and weight
gradient (jaxseg's options against ``torch.nn.grad``).

Commands (from the repository root):
  python benchmarks/cpu_ops.py --out=docs/bench_cpu_ops.json
  python benchmarks/cpu_ops.py --out=docs/bench_cpu_ops_2026-12-06.json  # + channels_last
  python benchmarks/cpu_ops.py --out=docs/bench_cpu_ops_2026-12-06b.json  # libraries timed apart
"""

import json
import os
import platform
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
flags.DEFINE_integer("repeats", 7, "Interleaved rounds (the median is reported).")

KEY = "xla_cpu_experimental_ynn_fusion_type"
OPTIONS = {"tuned": {KEY: "LIBRARY_FUSION_TYPE_REDUCE"}, "xla_default": {}, "ynn_off": {KEY: ""}}
# (size, in channels, out channels) of the 14 3x3 convolutions, encoder to decoder.
CONVS = [(96, 1, 16), (96, 16, 16), (48, 16, 32), (48, 32, 32), (24, 32, 64), (24, 64, 64),
         (12, 64, 128), (12, 128, 128), (24, 128, 64), (24, 64, 64), (48, 64, 32),
         (48, 32, 32), (96, 32, 16), (96, 16, 16)]


def _conv(x, w):
    import jax
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _input_grad(x, w, dy):
    import jax
    return jax.vjp(lambda x: _conv(x, w), x)[1](dy)[0]


def _weight_grad(x, w, dy):
    import jax
    return jax.vjp(lambda w: _conv(x, w), w)[1](dy)[0]


CONV_PARTS = {"fwd": lambda x, w, dy: _conv(x, w), "input grad": _input_grad,
              "weight grad": _weight_grad}


def _median_round_robin(fns: dict, repeats: int) -> dict:
    """Median wall time of each op: XLA's ops round-robin, then PyTorch's, each after a warm-up.

    The two libraries are not interleaved: PyTorch's OpenMP threads keep spinning after an
    op returns and slow the XLA op that runs next (``benchmarks/library_interference.py``:
    2-4 ms on these convolutions, whichever option set runs right after PyTorch; one
    untimed call in between still left 10% on the shortest).
    """
    out = {}
    for torch_ops in (False, True):
        group = {k: f for k, f in fns.items() if k.startswith("torch") == torch_ops}
        for f in group.values():
            f()
        times = {k: [] for k in group}
        for _ in range(repeats):
            for k, f in group.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        out.update({k: float(np.median(v)) for k, v in times.items()})
    return out


def main(argv):
    del argv
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from jaxseg.models.unet import max_pool2

    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:
        torch = None

    def jax_op(fn, *args):
        fns = {}
        for name, opts in OPTIONS.items():
            f = jax.jit(fn, compiler_options=opts)
            fns[name] = lambda f=f: jax.block_until_ready(f(*args))
        return fns

    key = jax.random.PRNGKey(0)
    rows = []

    def conv_loss(x, w):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(y * y)

    for hw, c, o in CONVS:
        x = jax.random.normal(key, (16, hw, hw, c))
        w = jax.random.normal(key, (3, 3, c, o)) * 0.1
        fns = jax_op(jax.grad(conv_loss, argnums=(0, 1)), x, w)
        if torch is not None:
            tx = torch.randn(16, c, hw, hw, requires_grad=True)
            tw = torch.randn(o, c, 3, 3, requires_grad=True)
            fns["torch"] = lambda tx=tx, tw=tw: (torch.nn.functional.conv2d(
                tx, tw, padding=1) ** 2).sum().backward()
            cx = tx.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
            cw = tw.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
            fns["torch channels_last"] = lambda cx=cx, cw=cw: (torch.nn.functional.conv2d(
                cx, cw, padding=1) ** 2).sum().backward()
        rows.append({"op": f"conv3x3 fwd+bwd {hw}x{hw} {c}->{o}",
                     **_median_round_robin(fns, flags.FLAGS.repeats)})
        print(rows[-1], flush=True)
    # The same convolutions split into forward, input gradient and weight gradient, jaxseg's
    # options against PyTorch (torch.nn.grad), summed over the 14 layers: where the gap is.
    parts = {}
    if torch is not None:
        tuned = OPTIONS["tuned"]
        for hw, c, o in CONVS:
            x = jax.random.normal(key, (16, hw, hw, c))
            w = jax.random.normal(key, (3, 3, c, o)) * 0.1
            dy = jax.random.normal(key, (16, hw, hw, o))
            fns = {}
            for k, f in CONV_PARTS.items():
                jf = jax.jit(f, compiler_options=tuned)
                fns[f"jax {k}"] = lambda jf=jf, a=(x, w, dy): jax.block_until_ready(jf(*a))
            tx, tw = torch.randn(16, c, hw, hw), torch.randn(o, c, 3, 3)
            tdy = torch.randn(16, o, hw, hw)
            fns["torch fwd"] = lambda tx=tx, tw=tw: torch.nn.functional.conv2d(tx, tw, padding=1)
            fns["torch input grad"] = lambda tx=tx, tw=tw, tdy=tdy: torch.nn.grad.conv2d_input(
                tx.shape, tw, tdy, padding=1)
            fns["torch weight grad"] = lambda tx=tx, tw=tw, tdy=tdy: torch.nn.grad.conv2d_weight(
                tx, tw.shape, tdy, padding=1)
            for k, v in _median_round_robin(fns, flags.FLAGS.repeats).items():
                parts[k] = parts.get(k, 0.0) + v
        print("conv parts, summed over the 14 layers (s):", parts, flush=True)
    x = jax.random.normal(key, (16, 96, 96, 16))
    rows.append({"op": "sum over (B,H,W) 16x96x96x16",
                 **_median_round_robin(jax_op(lambda x: jnp.sum(x, (0, 1, 2)), x),
                                       flags.FLAGS.repeats)})
    for name, pool in (("nn.max_pool", lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))),
                       ("reshape+max", max_pool2)):
        rows.append({"op": f"max pool 2x2 fwd+bwd 16x96x96x16 ({name})",
                     **_median_round_robin(jax_op(jax.grad(lambda x, p=pool: jnp.sum(p(x) ** 2)),
                                                  x), flags.FLAGS.repeats)})
    totals = {k: sum(r[k] for r in rows if r["op"].startswith("conv"))
              for k in rows[0] if k != "op"}
    for r in rows[len(CONVS):]:
        print(r)
    print("conv totals (s):", totals)
    res = {"device": jax.devices()[0].device_kind, "cores": os.cpu_count(),
           "jax": jax.__version__, "torch": torch.__version__ if torch else None,
           "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "options": OPTIONS, "rows": rows, "conv_totals_s": totals,
           "conv_parts_s": parts}
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
