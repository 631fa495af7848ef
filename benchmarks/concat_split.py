"""The U-Net decoder's skip concatenation against the sum of two convolutions (XLA CPU).

A 3x3 convolution of ``concat([up, skip])`` equals the sum of two convolutions, one per
part, over the two halves of the same kernel: one more convolution call against one copy of
the concatenated tensor (the skip concatenation was 32.6 ms of op time in the step profile,
docs/benchmarks.md). This times forward + backward of a cmr96-size U-Net (base 16, depth 3,
batch 16, 96x96, batch norm) whose decoder blocks start either way, with the same
parameters, round-robin after compiling both, and checks that loss and gradients agree.

Command (from the repository root):
  python benchmarks/concat_split.py --repeats=15 --out=docs/bench_concat_split_cpu.json
"""

import argparse
import json
import os
import platform
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseg.models import unet


class SplitConv(nn.Module):
    """A 3x3 convolution of ``concat([a, b])`` computed as one convolution per part."""

    features: int

    @nn.compact
    def __call__(self, a, b):
        ca = a.shape[-1]
        k = self.param("kernel", nn.initializers.he_normal(),
                       (3, 3, ca + b.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        dn = ("NHWC", "HWIO", "NHWC")
        y = lax.conv_general_dilated(a, k[:, :, :ca], (1, 1), "SAME", dimension_numbers=dn)
        y = y + lax.conv_general_dilated(b, k[:, :, ca:], (1, 1), "SAME", dimension_numbers=dn)
        return y + bias


class Net(nn.Module):
    """The U-Net's layers; ``split`` picks how each decoder block's first convolution runs."""

    split: bool

    @nn.compact
    def __call__(self, x):
        skips = []
        for level in range(3):
            x = unet.ConvBlock(16 * 2**level)(x, True)
            skips.append(x)
            x = unet.max_pool2(x)
        x = unet.ConvBlock(128)(x, True)
        for level in reversed(range(3)):
            w = 16 * 2**level
            x = unet.Upsample(w)(x)
            name = f"dec{level}"
            x = (SplitConv(w, name=name)(x, skips[level]) if self.split else
                 nn.Conv(w, (3, 3), padding="SAME", name=name)(
                     jnp.concatenate([x, skips[level]], -1)))
            x = nn.BatchNorm(use_running_average=False, momentum=0.9)(nn.relu(x))
            x = unet.ConvBlock(w, convs=1)(x, True)
        return nn.Conv(4, (1, 1))(x)


def main():
    """Times both forms and prints (and optionally writes) the medians and their ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    x = jax.random.normal(jax.random.key(0), (16, 96, 96, 1))
    variables = Net(False).init(jax.random.key(1), x[:1])
    fns = {}
    for split in (False, True):
        model = Net(split)

        def loss(params, stats, model=model):
            out, _ = model.apply({"params": params, "batch_stats": stats}, x,
                                 mutable=["batch_stats"])
            return jnp.mean(out**2)

        fns[split] = jax.jit(jax.value_and_grad(loss))
    args_ = (variables["params"], variables["batch_stats"])
    (la, ga), (lb, gb) = (jax.block_until_ready(fns[s](*args_)) for s in (False, True))
    grad_diff = max(float(jnp.abs(p - q).max()) for p, q in
                    zip(jax.tree.leaves(ga), jax.tree.leaves(gb), strict=True))
    times = {False: [], True: []}
    for _ in range(args.repeats):
        for split in (False, True):
            t = time.perf_counter()
            jax.block_until_ready(fns[split](*args_))
            times[split].append(time.perf_counter() - t)
    res = {"concat_s": float(np.median(times[False])), "split_s": float(np.median(times[True])),
           "loss_concat": float(la), "loss_split": float(lb), "grad_max_abs_diff": grad_diff,
           "repeats": args.repeats, "jax": jax.__version__, "backend": jax.default_backend(),
           "machine": platform.machine(), "cpu_cores": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d")}
    res["ratio_split_to_concat"] = res["split_s"] / res["concat_s"]
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
