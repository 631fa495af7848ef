"""Measuring replica strategies and epoch loops: the numbers behind ``auto``.

For a config (model, image size, batch), this times one training step of a cohort
of R replicas under each strategy, against R single-replica steps one after another
(what running the replicas one by one costs), with compile time measured apart.
Used by ``jaxseg bench`` and by ``benchmarks/`` to write ``docs/benchmarks.md``.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import hparams, train
from jaxseg.data import datasets


def _cohort(config, data, num_replicas, strategy, loop="step"):
    c = hparams.apply_overrides(config, {"train.strategy": strategy, "train.loop": loop})
    overrides = [{"optim.weight_decay": 1e-4 * (r + 1), "seed": r} for r in range(num_replicas)]
    table = hparams.table(hparams.replica_configs(c, overrides))
    static = train.build_static(c, data, table)
    steps = int(np.ceil(len(data.train) / c.train.batch_size))
    cohort = train.Cohort(c, static, num_replicas, steps, data)
    hp = {k: jnp.asarray(v.astype(np.int32) if v.dtype.kind == "i" else v)
          for k, v in table.items()}
    return cohort, hp


def time_steps(config, data, num_replicas: int, strategy: str, repeats: int = 3) -> dict:
    """Times training steps of one cohort (one dispatch per step).

    Args:
      config: the config (model, batch size, image size, augmentation).
      data: the loaded dataset.
      num_replicas: R.
      strategy: ``vmap`` | ``unroll`` | ``map``.
      repeats: timed steps after the compiling one.

    Returns:
      ``{"compile_s", "step_s" (median), "steps_s" (all), "flops" (XLA's cost analysis of
      one step), "flop_per_s", "peak_fraction" (None where the peak is unknown),
      "memory_mib" (arguments + outputs + temporaries of the step), "memory_per_replica_mib"}``.
    """
    cohort, hp = _cohort(config, data, num_replicas, strategy)
    state = cohort.init(hp)
    member = jnp.ones((num_replicas, len(data.train)), bool)
    index, active, keys = cohort.plan(hp["seed"], member, 0)
    images, labels = jnp.asarray(data.train.images), jnp.asarray(data.train.labels)
    lr = jnp.full((num_replicas,), 1e-3)
    alive = jnp.ones((num_replicas,), bool)
    acc = {"loss": jnp.zeros((num_replicas,)), "count": jnp.zeros((num_replicas,)),
           "bad": jnp.zeros((num_replicas,), bool)}
    args = (state, acc, hp, lr, alive, index, active, keys, 0, images, labels)
    t0 = time.perf_counter()
    # Compiled ahead of time: the compile time is measured apart from the steps, and the
    # compiled program gives XLA's cost (FLOPs) and memory analyses.
    compiled = cohort.step.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
    flops = float(cost.get("flops", float("nan")))
    mem = compiled.memory_analysis()
    memory = (float("nan") if mem is None else
              (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
               - mem.alias_size_in_bytes))
    state, acc = compiled(*args)  # warm-up
    jax.block_until_ready(acc)
    times = []
    for s in range(repeats):
        t0 = time.perf_counter()
        state, acc = compiled(state, acc, hp, lr, alive, index, active, keys,
                              (s + 1) % cohort.steps, images, labels)
        jax.block_until_ready(acc)
        times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    peak = peak_flops()
    return {"compile_s": compile_s, "step_s": step, "steps_s": times, "flops": flops,
            "flop_per_s": flops / step, "peak_fraction": flops / step / peak if peak else None,
            "memory_mib": memory / 2**20, "memory_per_replica_mib": memory / 2**20 / num_replicas}


# Dense TF32 tensor-core peaks (FLOP/s) of the GPUs jaxseg is measured on: XLA runs float32
# matmuls and convolutions in TF32 on them at the default precision. CPUs: not known.
PEAKS = {"H100": 494.7e12, "H200": 494.7e12, "A100": 156e12}


def peak_flops() -> float | None:
    """The device's peak FLOP/s from :data:`PEAKS` (None when unknown, e.g. on CPU)."""
    kind = jax.devices()[0].device_kind
    return next((v for k, v in PEAKS.items() if k in kind), None)


def strategy_table(config, replica_counts, strategies, repeats: int = 3) -> list[dict]:
    """Per-step time of each strategy at each R, and its ratio to R single steps.

    Args:
      config: the config to measure.
      replica_counts: e.g. ``(1, 2, 4)``.
      strategies: e.g. ``("unroll", "vmap", "map")``.
      repeats: timed steps per measurement.

    Returns:
      Rows ``{"R", "strategy", "step_s", "compile_s", "sequential_s", "speedup"}`` where
      ``sequential_s`` is R times the single-replica step and ``speedup`` is
      ``sequential_s / step_s`` (>= 1: the cohort beats running replicas one by one).
    """
    data = datasets.load(config.data)
    single = time_steps(config, data, 1, "unroll", repeats)
    rows = [{"R": 1, "strategy": "single", **single, "sequential_s": single["step_s"],
             "speedup": 1.0}]
    for r in replica_counts:
        for strategy in strategies:
            if r == 1 and strategy != "vmap":
                continue
            m = time_steps(config, data, r, strategy, repeats)
            seq = r * single["step_s"]
            rows.append({"R": r, "strategy": strategy, **m, "sequential_s": seq,
                         "speedup": seq / m["step_s"]})
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table of :func:`strategy_table` rows."""
    out = ["| R | strategy | step (s) | compile (s) | R x single step (s) | speed-up | "
           "GFLOP/s | of peak | MiB per replica |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        frac = "-" if r.get("peak_fraction") is None else f"{100 * r['peak_fraction']:.1f}%"
        out.append(f"| {r['R']} | {r['strategy']} | {r['step_s']:.3f} | {r['compile_s']:.1f} | "
                   f"{r['sequential_s']:.3f} | {r['speedup']:.2f} | "
                   f"{r['flop_per_s'] / 1e9:.1f} | {frac} | {r['memory_per_replica_mib']:.0f} |")
    return "\n".join(out)
