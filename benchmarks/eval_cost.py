"""What one evaluation batch costs: the forward pass, the per-epoch counts, the full set.

For cmr96_baseline's model (``experiments/cmr96_baseline.py``: base 16, depth 3, 96x96) on
``--batch`` cmr96 validation images, three programs compiled with jaxseg's options and
timed round-robin (median of ``--repeats``): the forward pass alone; the per-epoch
evaluation step (``eval_step`` without boundary counts: loss and TP/FP/FN); the full one
(with boundary F1's dilations). Prints one JSON line.

Command (docs/benchmarks.md, "Host work off the training path"):
  python benchmarks/eval_cost.py --out=docs/bench_eval_cost_cpu.json
"""

import json
import os
import platform
import time

from absl import app, flags

flags.DEFINE_integer("batch", 20, "Validation images per batch (cmr96 has 20).")
flags.DEFINE_integer("repeats", 9, "Timed calls per program.")
flags.DEFINE_string("out", None, "Write the result as JSON to this file.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    del argv
    import importlib.util

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxseg import configs
    from jaxseg.data import datasets
    from jaxseg.engine import replicas, steps
    from jaxseg.engine.cohort import build_cohort

    spec = importlib.util.spec_from_file_location(
        "baseline", os.path.join(ROOT, "experiments", "cmr96_baseline.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    configs.resolve_classes(config)
    data = datasets.load(config.data)
    built = build_cohort(config, None, data)
    static = built.cohort.static
    state = jax.tree.map(lambda x: x[0], built.cohort.init(built.hp))
    hp = jax.tree.map(lambda x: x[0], built.hp)
    b = min(flags.FLAGS.batch, len(data.val))
    x, y = jnp.asarray(data.val.images[:b]), jnp.asarray(data.val.labels[:b])
    valid, volume = jnp.ones(b), jnp.zeros(b, jnp.int32)
    region = jnp.asarray(data.val.regions()[:b])
    opts = replicas.compiler_options("tuned")
    programs = {
        "forward": (lambda s: static.model.apply(
            {"params": s["params"], "batch_stats": s["batch_stats"]}, x, train=False)),
        "per-epoch eval step": (lambda s: steps.eval_step(static, False, s, hp, x, y, valid,
                                                          volume, region)),
        "full eval step": (lambda s: steps.eval_step(static, True, s, hp, x, y, valid, volume,
                                                     region)),
    }
    compiled = {k: jax.jit(f, compiler_options=opts) for k, f in programs.items()}
    for f in compiled.values():
        jax.block_until_ready(f(state))
    times = {k: [] for k in compiled}
    for _ in range(flags.FLAGS.repeats):
        for k, f in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(state))
            times[k].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    res = {"device": jax.devices()[0].device_kind, "cores": os.cpu_count(),
           "jax": jax.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d"), "batch": b, "median_s": med,
           "ratio_to_forward": {k: v / med["forward"] for k, v in med.items()}}
    print(json.dumps(res))
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
