"""What overlapping the evaluation with the next epoch's first steps would save (XLA CPU).

The per-epoch evaluation is the floor of an epoch's non-step share on cmr96_baseline
(docs/benchmarks.md, "Checkpoints off the training path"): a forward pass over the
validation split after the epoch's last step, which the host waits for before deciding
keep-best, early stopping and halving. XLA CPU runs independent programs side by side,
and a training step leaves cores idle part of the time (its ops' times sum to more than
its wall time, but not to twice it), so an evaluation dispatched before the next steps
could fill those gaps. This measures that without changing training: the one-replica
training step of ``benchmarks/cmr96_size.py`` (``jaxseg bench``'s program) and the
U-Net's inference forward + argmax on 20 images (cmr96's validation split), both with
jaxseg's XLA options, timed round-robin: ``--steps`` steps alone, the forward alone, and
the forward dispatched first with the steps right after it (both waited for).

Command (from the repository root):
  python benchmarks/eval_overlap.py --out=docs/bench_eval_overlap_cpu.json
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cmr96_size  # noqa: E402
import record  # noqa: E402

from jaxseg import bench, configs  # noqa: E402
from jaxseg.data import datasets  # noqa: E402
from jaxseg.engine import replicas  # noqa: E402
from jaxseg.models import unet  # noqa: E402

flags.DEFINE_integer("repeats", 25, "Round-robin rounds (the median is reported).")
flags.DEFINE_integer("val", 20, "Images of the evaluation forward.")
flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
FLAGS = flags.FLAGS


def main(_):
    """Times steps, the evaluation forward, and both overlapped; prints and writes medians."""
    config = cmr96_size.get_config()
    configs.resolve_classes(config)
    program = bench.program(config, datasets.load(config.data), 1, "sequential")
    model = unet.UNet(num_classes=4, depth=3, base_width=16)
    x = jax.random.uniform(jax.random.key(0), (FLAGS.val, 96, 96, 1))
    variables = model.init(jax.random.key(1), x[:1], train=False)
    forward = jax.jit(lambda v, x: jnp.argmax(model.apply(v, x, train=False), -1),
                      compiler_options=replicas.compiler_options("tuned"))
    jax.block_until_ready(forward(variables, x))

    def steps(n):
        for _ in range(n):
            program.run()  # each step waits for its result, as training's epochs do not

    cases = {}
    for n in (1, 4):
        cases[f"{n} steps"] = lambda n=n: steps(n)
        cases[f"evaluation, then {n} steps, overlapped"] = (
            lambda n=n: (r := forward(variables, x), steps(n), jax.block_until_ready(r)))
    cases["evaluation"] = lambda: jax.block_until_ready(forward(variables, x))
    times = {k: [] for k in cases}
    for _ in range(FLAGS.repeats):
        for k, f in cases.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    out = {"median_s": med, "saved_fraction_of_evaluation": {
        n: (med[f"{n} steps"] + med["evaluation"] - med[f"evaluation, then {n} steps, overlapped"])
        / med["evaluation"] for n in (1, 4)},
        "repeats": FLAGS.repeats, "val_images": FLAGS.val, **record.provenance()}
    record.emit(out, FLAGS.out)

if __name__ == "__main__":
    app.run(main)
