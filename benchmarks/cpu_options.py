"""XLA CPU compiler options for the cmr96-size training step, timed side by side.

XLA CPU hands convolutions, dots and reductions to the YNNPACK library by default
(``xla_cpu_experimental_ynn_fusion_type``). This compares, in one process with the steps
interleaved, one training step (U-Net base 16, depth 3, batch 16, 96x96; one replica and a
cohort of 4 unrolled replicas) compiled with:

* ``ynn_default``: XLA's defaults;
* ``ynn_reduce``: YNNPACK for reductions only (jaxseg's choice on CPU,
  ``jaxseg.engine.replicas.compiler_options``);
* ``ynn_off``: YNNPACK off (XLA's own Eigen convolutions and loop-emitted reductions).

``--set=more`` times jaxseg's options against each of the other XLA CPU options this
jaxlib accepts as compile options and that could change a step's speed without changing
its arithmetic (the optimisation preset, the scheduler, copy insertion's region analysis,
tiling propagation, XNNPACK graph fusion, single-threaded Eigen, 512-bit vectors, and
convolutions offered to oneDNN or XNNPACK as library fusions), each added to jaxseg's own.
For each variant it also compiles one 3x3 convolution's forward and both gradients and
counts, in the optimized HLO, the convolutions XLA kept and the library custom calls it
made (``hlo``: whether an option routes convolutions anywhere else at all).

Commands (from the repository root):
  python benchmarks/cpu_options.py --out=docs/bench_cpu_options.json
  python benchmarks/cpu_options.py --set=more --replicas=1 --out=docs/bench_cpu_options_more.json
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
flags.DEFINE_enum("set", "ynn", ["ynn", "more"], "Which variants: YNNPACK's three, or "
                  "jaxseg's options against the other XLA CPU options one at a time.")

# name: (config overrides, XLA options compiled over the cohort's own)
VARIANTS = {
    "ynn_reduce": ({}, {}),
    "ynn_default": ({"train.xla_options": "default"}, {}),
    "ynn_off": ({"train.xla_options": "default"},
                {"xla_cpu_experimental_ynn_fusion_type": ""}),
}
MORE = {
    "tuned": ({}, {}),
    "preset_fast_runtime": ({}, {"xla_cpu_opt_preset": "CPU_OPT_PRESET_FAST_RUNTIME"}),
    "scheduler_memory": ({}, {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}),
    "scheduler_concurrency": ({}, {"xla_cpu_scheduler_type":
                                   "CPU_SCHEDULER_TYPE_CONCURRENCY_OPTIMIZED"}),
    "copy_region_analysis": ({}, {"xla_cpu_copy_insertion_use_region_analysis": True}),
    "tiling_propagation": ({}, {"xla_cpu_experimental_enable_tiling_propagation": True}),
    "xnn_graph_greedy": ({}, {"xla_cpu_experimental_xnn_graph_fusion_mode":
                              "XNN_GRAPH_FUSION_MODE_GREEDY"}),
    "eigen_single_thread": ({}, {"xla_cpu_multi_thread_eigen": False}),
    "vector_width_512": ({}, {"xla_cpu_prefer_vector_width": 512}),
    "onednn_convolutions": ({}, {"xla_cpu_use_onednn": True,
                                 "xla_cpu_experimental_onednn_custom_call": True,
                                 "xla_cpu_experimental_onednn_fusion_type":
                                     "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"}),
    "xnn_convolutions": ({}, {"xla_cpu_experimental_xnn_fusion_type":
                              "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"}),
}


def conv_hlo(options: dict) -> dict:
    """What XLA makes of one 3x3 convolution (16 -> 16 channels, 16x96x96) and its gradients.

    Returns the counts of ``convolution`` ops and ``custom-call`` ops in the optimized HLO of
    the forward pass and both gradients compiled with jaxseg's options plus ``options``.
    """
    import jax
    from jax import lax

    from jaxseg.engine import replicas

    x, w = jax.numpy.ones((16, 96, 96, 16)), jax.numpy.ones((3, 3, 16, 16))

    def loss(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()

    text = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile(
        compiler_options={**replicas.compiler_options("tuned", "cpu"), **options}).as_text()
    lines = [ln for ln in text.splitlines() if " = " in ln]
    return {"convolutions": sum(" convolution(" in ln for ln in lines),
            "custom_calls": sum(" custom-call(" in ln for ln in lines)}


def main(argv):
    del argv
    import cmr96_size
    import jax

    from jaxseg import bench

    res = {"device": jax.devices()[0].device_kind, "cores": os.cpu_count(),
           "jax": jax.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d"), "set": flags.FLAGS.set, "rows": []}
    for r in flags.FLAGS.replicas:
        variants = VARIANTS if flags.FLAGS.set == "ynn" else MORE
        rows = bench.variants_table(cmr96_size.get_config(), variants, int(r), "unroll",
                                   flags.FLAGS.repeats)
        for row in rows:
            if flags.FLAGS.set == "more":
                row["hlo"] = conv_hlo(row["options"])
            print(f"R={r} {row['variant']:12s} step {row['step_s']:.3f} s  "
                  f"ratio {row['ratio']:.2f}  compile {row['compile_s']:.1f} s  "
                  f"loss {row['loss_sum']:.5f}  {row.get('hlo', '')}", flush=True)
            res["rows"].append({"R": int(r), **row})
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
