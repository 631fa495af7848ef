"""bfloat16 compute with float32 master weights (``model.dtype``): step time and Dice change.

1. Step: one training step of the cmr96-size U-Net (``benchmarks/cmr96_size.py``) with
   ``model.dtype=float32`` and ``bfloat16``, compiled first and then timed round-robin
   (``jaxseg.bench.variants_table``; median of ``--repeats``).
2. Dice: ``benchmarks/sweep_grid.py:precision`` on cmr96 (the study base, ``--epochs``
   epochs, float32 and bfloat16 x ``--seeds`` seeds: two cohorts) through one ``jaxseg sweep``;
   the best validation Dice of each run, and the bfloat16 - float32 difference per seed set
   against the spread between float32 seeds.

Command (from the repository root):
  python benchmarks/mixed_precision.py --out=docs/bench_mixed_precision_cpu.json
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
flags.DEFINE_integer("repeats", 5, "Interleaved timed steps (the median is reported).")
flags.DEFINE_integer("epochs", 15, "Epochs of every run of the Dice comparison.")
flags.DEFINE_bool("dice", True, "Also train the Dice comparison (minutes).")
flags.DEFINE_integer("seeds", 2, "Seeds per dtype in the Dice comparison.")

VARIANTS = {"float32": ({}, {}), "bfloat16": ({"model.dtype": "bfloat16"}, {})}


def main(argv):
    del argv
    import cmr96_size
    import jax

    from jaxseg import bench

    res = {"device": jax.devices()[0].device_kind, "cores": os.cpu_count(),
           "jax": jax.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d"), "rows": []}
    for row in bench.variants_table(cmr96_size.get_config(), VARIANTS, 1, "sequential",
                                    flags.FLAGS.repeats):
        print(f"{row['variant']:9s} step {row['step_s']:.3f} s  ratio {row['ratio']:.2f}  "
              f"compile {row['compile_s']:.1f} s  loss {row['loss_sum']:.5f}", flush=True)
        res["rows"].append(row)
    if flags.FLAGS.dice:
        workdir = tempfile.mkdtemp(prefix="jaxseg_bf16_")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jaxseg.main", "sweep",
                        f"--config=benchmarks/sweep_grid.py:precision{flags.FLAGS.seeds}",
                        f"--workdir={workdir}",
                        f"--config.train.epochs={flags.FLAGS.epochs}"], check=True)
        res["sweep_s"] = time.perf_counter() - t0
        with open(os.path.join(workdir, "results.json")) as f:
            runs = json.load(f)["runs"]
        dice = {}
        for r in runs:
            dice.setdefault(r["model.dtype"], []).append(r["dice"])
        f32, bf16 = np.array(dice["float32"]), np.array(dice["bfloat16"])
        res.update(epochs=flags.FLAGS.epochs, dice=dice,
                   dice_mean={k: float(np.mean(v)) for k, v in dice.items()},
                   bf16_minus_f32_per_seed=(bf16 - f32).tolist(),
                   f32_seed_spread=float(f32.max() - f32.min()),
                   per_class={f"{r['model.dtype']}/seed{r.get('seed', 0)}":
                              {k: v for k, v in r.items() if k.startswith("dice_")}
                              for r in runs})
        print(json.dumps({k: res[k] for k in ("dice", "bf16_minus_f32_per_seed",
                                              "f32_seed_spread", "sweep_s")}), flush=True)
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
