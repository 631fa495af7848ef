"""The U-Net's transposed-convolution upsampling: pixel shuffle against two row dots (XLA CPU).

jaxseg computes the 2x2 stride-2 transposed convolution as one dot to ``4 * features``
channels and a depth-to-space (``reshape``, ``transpose``, ``reshape``): the transpose is a
copy XLA CPU runs as its own loop (the step profile in docs/benchmarks.md counts it under
"copies and layout changes", about 21 ms of op time per step). The same output comes from
two dots, one per output row parity, each ``(B, H, W, C) @ (C, 2F)`` -> ``(B, H, 2W, F)`` by a
free reshape, stacked on a new axis after H (-> ``(B, 2H, 2W, F)``, free reshape again): no
transpose, one stack. This times jaxseg's whole training step (``jaxseg bench``'s program
for one replica of ``benchmarks/cmr96_size.py``: U-Net base 16, depth 3, batch 16, 96x96,
CE + Dice, Adam, flips) with each form, the same parameter names and initial values, the
pixel-shuffle step compiled twice (its two medians show the noise), round-robin.

Command (from the repository root):
  python benchmarks/upsample_form.py --repeats=40 --out=docs/bench_upsample_form_cpu.json
"""

import os
import sys

import flax.linen as nn
import jax.numpy as jnp
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cmr96_size  # noqa: E402
import record  # noqa: E402

from jaxseg import bench, configs  # noqa: E402
from jaxseg.data import datasets  # noqa: E402
from jaxseg.models import unet  # noqa: E402

flags.DEFINE_integer("repeats", 40, "Interleaved rounds (the median is reported).")
flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
FLAGS = flags.FLAGS


class RowDense(nn.Module):
    """The upsampling's dot as two dots, one per output row parity, stacked between rows.

    Its kernel is the pixel-shuffle form's (``(C, 4F)``, columns ordered (row, column,
    feature)), so the same parameters give the same output.
    """

    features: int
    initializer: str
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        """Returns ``(B, 2H, 2W, features)`` without the bias."""
        b, h, w, c = x.shape
        f = self.features
        k = self.param("kernel", unet.INITS[self.initializer], (c, 4 * f)).astype(self.dtype)
        x = x.astype(self.dtype)
        even = (x @ k[:, :2 * f]).reshape(b, h, 2 * w, f)
        odd = (x @ k[:, 2 * f:]).reshape(b, h, 2 * w, f)
        return jnp.stack([even, odd], 2).reshape(b, 2 * h, 2 * w, f)


class RowsUpsample(unet.Upsample):
    """jaxseg's ``Upsample`` (``transpose`` mode) with :class:`RowDense` as its dot."""

    @nn.compact
    def __call__(self, x):
        """Returns ``(B, 2H, 2W, features)``."""
        y = RowDense(self.features, self.initializer, self.dtype, name="Dense_0")(x)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return y + bias.astype(y.dtype)


# flax names submodules after their class: the same name keeps the parameter paths (and so
# the initial values) of the U-Net unchanged.
RowsUpsample.__name__ = "Upsample"


def main(_):
    """Compiles the step with each form, times them round-robin, prints and writes the medians."""
    config = cmr96_size.get_config()
    configs.resolve_classes(config)
    data = datasets.load(config.data)
    programs = {"pixel shuffle": bench.program(config, data, 1, "sequential")}
    original, unet.Upsample = unet.Upsample, RowsUpsample  # UNet looks it up when traced
    try:
        programs["two row dots"] = bench.program(config, data, 1, "sequential")
    finally:
        unet.Upsample = original
    programs["pixel shuffle (again)"] = bench.program(config, data, 1, "sequential")
    results = bench.interleave(list(programs.values()), FLAGS.repeats)
    ref = results[0]["step_s"]
    rows = [{"form": name, "step_s": r["step_s"], "ratio": r["step_s"] / ref,
             "loss_sum": p.loss_sum, "compile_s": p.compile_s}
            for (name, p), r in zip(programs.items(), results, strict=True)]
    for r in rows:
        print(f"{r['form']:24s} {r['step_s']:.4f} s  {r['ratio']:.3f}x  loss sum {r['loss_sum']}")
    record.emit({"rows": rows, "repeats": FLAGS.repeats, **record.provenance()}, FLAGS.out)

if __name__ == "__main__":
    app.run(main)
