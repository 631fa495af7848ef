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
      ``{"compile_s", "step_s" (median), "steps_s" (all)}``.
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
    t0 = time.perf_counter()
    state, acc = cohort.step(state, acc, hp, lr, alive, index, active, keys, 0, images, labels)
    jax.block_until_ready(acc)
    first = time.perf_counter() - t0
    times = []
    for s in range(repeats):
        t0 = time.perf_counter()
        state, acc = cohort.step(state, acc, hp, lr, alive, index, active, keys,
                                 (s + 1) % cohort.steps, images, labels)
        jax.block_until_ready(acc)
        times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    return {"compile_s": max(first - step, 0.0), "step_s": step, "steps_s": times}


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
    out = ["| R | strategy | step (s) | compile (s) | R x single step (s) | speed-up |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['R']} | {r['strategy']} | {r['step_s']:.3f} | {r['compile_s']:.1f} | "
                   f"{r['sequential_s']:.3f} | {r['speedup']:.2f} |")
    return "\n".join(out)
