"""jaxseg against the PyTorch reference on this machine: one training step, and a whole grid.

1. Step: ``jaxseg bench`` for one replica of the cmr96-size U-Net (``benchmarks/cmr96_size.py``)
   and ``torch_reference.py --mode=step`` with the same model, batch and image size, each the
   median of ``--repeats`` timed steps, in ``--rounds`` alternating processes; the reported
   ratio is the median of the per-round ratios.
2. Grid: the 8 configurations of ``benchmarks/sweep_grid.py:grid8`` (learning rate x weight
   decay on cmr96, ``--epochs`` epochs): one ``jaxseg sweep`` launch against
   ``torch_reference.py --mode=train`` run once per configuration, one process after another
   (the way the source studies ran their grids), and ``--parallel`` processes at a time with
   the cores shared between them; with ``--channels_last`` (the default) both again in
   PyTorch's NHWC memory format (its oneDNN convolutions' fastest layout on a CPU): the
   best a PyTorch user can do on a few cores. Wall times
   include process start-up, data loading and (for jaxseg) compilation with an empty cache.

Both parts run one after another in one invocation, so their ratios are side by side.

Commands (from the repository root, with the ``bench`` extra installed):
  python benchmarks/compare_torch.py --grid=false --repeats=5 --rounds=3 \
      --out=docs/bench_torch_step_cpu.json
  python benchmarks/compare_torch.py --rounds=1 --out=docs/bench_torch_cpu.json  # + the grid
"""

import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
flags.DEFINE_integer("epochs", 10, "Epochs of every run of the grid.")
flags.DEFINE_integer("repeats", 5, "Timed steps of the step comparison.")
flags.DEFINE_integer("rounds", 3, "Alternating jaxseg/torch rounds of the step comparison.")
flags.DEFINE_bool("grid", True, "Also run the grid comparison (minutes).")
flags.DEFINE_integer("parallel", 2, "Also run the PyTorch grid this many processes at a time "
                     "(each with an equal share of the cores; 0: not).")
flags.DEFINE_bool("channels_last", True, "Also time PyTorch with --channels_last (its NHWC "
                  "memory format): the step in every round, the grid one by one and in parallel.")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_grid  # noqa: E402 - beside this file
from torch_grid import JAXSEG, TORCH, last_json, run  # noqa: E402


def main(argv):
    del argv
    import jax

    scratch = tempfile.mkdtemp(prefix="jaxseg_torch_")
    res = {"device": jax.devices()[0].device_kind, "cores": os.cpu_count(),
           "jax": jax.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d")}

    # Alternating rounds (one jaxseg process, then one torch process): this machine's speed
    # drifts over minutes, so each round's ratio is taken from neighbouring measurements
    # and the median ratio over the rounds is reported.
    bench_json = os.path.join(scratch, "bench.json")
    jax_steps, torch_steps, cl_steps = [], [], []
    for _ in range(flags.FLAGS.rounds):
        run(JAXSEG + ["bench", "--config=benchmarks/cmr96_size.py", "--replicas=1",
                       "--strategies=unroll", f"--repeats={flags.FLAGS.repeats}",
                       f"--bench_out={bench_json}", "--compilation_cache="])
        with open(bench_json) as f:
            jax_steps.append([r for r in json.load(f)["rows"]
                              if r["strategy"] == "single"][0]["step_s"])
        torch_step = last_json(run(TORCH + ["--mode=step",
                                              f"--steps={flags.FLAGS.repeats}"])[1])
        torch_steps.append(torch_step["step_s"])
        print(f"step: jax {jax_steps[-1]:.3f} s, torch {torch_steps[-1]:.3f} s "
              f"(jax/torch {jax_steps[-1] / torch_steps[-1]:.2f})", flush=True)
        if flags.FLAGS.channels_last:
            cl_steps.append(last_json(run(TORCH + ["--mode=step", "--channels_last",
                                                   f"--steps={flags.FLAGS.repeats}"])[1])["step_s"])
            print(f"step: torch channels_last {cl_steps[-1]:.3f} s "
                  f"(jax/torch_cl {jax_steps[-1] / cl_steps[-1]:.2f})", flush=True)
    ratios = [j / t for j, t in zip(jax_steps, torch_steps, strict=True)]
    res.update(torch=torch_step["torch"], jax_steps_s=jax_steps, torch_steps_s=torch_steps,
               jax_step_s=float(np.median(jax_steps)), torch_step_s=float(np.median(torch_steps)),
               step_ratios=ratios, step_ratio_jax_over_torch=float(np.median(ratios)),
               params_torch=torch_step["params"])
    if cl_steps:
        cl_ratios = [j / t for j, t in zip(jax_steps, cl_steps, strict=True)]
        res.update(torch_cl_steps_s=cl_steps, torch_cl_step_s=float(np.median(cl_steps)),
                   step_ratio_jax_over_torch_cl=float(np.median(cl_ratios)))

    if flags.FLAGS.grid:
        res.update(torch_grid.grid_comparison("benchmarks/sweep_grid.py:grid8",
                                              flags.FLAGS.epochs, scratch,
                                              parallel=flags.FLAGS.parallel,
                                              channels_last=flags.FLAGS.channels_last))
    print(json.dumps(res, indent=1))
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
