"""XLA CPU compiler options for the cmr96-size training step, timed side by side.

XLA CPU hands convolutions, dots and reductions to the YNNPACK library by default
(``xla_cpu_experimental_ynn_fusion_type``). This compares, in one process with the steps
interleaved, one training step (U-Net base 16, depth 3, batch 16, 96x96; one replica and a
cohort of 4 unrolled replicas) compiled with:

* ``ynn_default``: XLA's defaults;
* ``ynn_reduce``: YNNPACK for reductions only (jaxseg's choice on CPU,
  ``jaxseg.engine.replicas.compiler_options``);
* ``ynn_off``: YNNPACK off (XLA's own Eigen convolutions and loop-emitted reductions).

Command (from the repository root):
  python benchmarks/cpu_options.py --out=docs/bench_cpu_options.json
"""

import json
import os
import platform
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("out", None, "Write the rows as JSON to this file.")
flags.DEFINE_integer("repeats", 7, "Interleaved rounds (the median is reported).")
flags.DEFINE_list("replicas", ["1", "4"], "Cohort sizes (unrolled replicas).")

# name: (config overrides, XLA options compiled over the cohort's own)
VARIANTS = {
    "ynn_reduce": ({}, {}),
    "ynn_default": ({"train.xla_options": "default"}, {}),
    "ynn_off": ({"train.xla_options": "default"},
                {"xla_cpu_experimental_ynn_fusion_type": ""}),
}


def main(argv):
    del argv
    import cmr96_size
    import jax

    from jaxseg import bench

    res = {"device": jax.devices()[0].device_kind, "cores": os.cpu_count(),
           "jax": jax.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d"), "rows": []}
    for r in flags.FLAGS.replicas:
        rows = bench.variants_table(cmr96_size.get_config(), VARIANTS, int(r), "unroll",
                                   flags.FLAGS.repeats)
        for row in rows:
            print(f"R={r} {row['variant']:12s} step {row['step_s']:.3f} s  "
                  f"ratio {row['ratio']:.2f}  compile {row['compile_s']:.1f} s  "
                  f"loss {row['loss_sum']:.5f}", flush=True)
            res["rows"].append({"R": int(r), **row})
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
