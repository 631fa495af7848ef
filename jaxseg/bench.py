"""Measuring replica strategies and epoch loops: the numbers behind ``auto``.

For a config (model, image size, batch), this times one training step of a cohort
of R replicas under each strategy, against R single-replica steps one after another
(what running the replicas one by one costs), with compile time measured apart;
:func:`variants_table` compares variants (XLA options, model choices) the same way.
Every program of a table is compiled first and then timed round-robin, one step each in
turn, so that the ratios are measured side by side. Used by ``jaxseg bench`` and by
``benchmarks/`` to write ``docs/benchmarks.md``; :func:`calibrate` times the cohorts of a
sweep plan for ``jaxseg sweep --calibrate``.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import configs, hparams
from jaxseg.data import datasets
from jaxseg.engine import replicas
from jaxseg.engine.cohort import build_cohort


def _cohort(config, data, num_replicas, strategy, loop="step"):
    """R replicas (weight decay and seed differ) on one device, built as training builds them.

    ``strategy`` is a label (``sequential``, ``chunked:4``, ...: :func:`replicas.label`).
    """
    name, chunk = replicas.parse_label(strategy)
    c = hparams.apply_overrides(config, {"train.strategy": name, "train.chunk": chunk,
                                         "train.loop": loop, "train.devices": 1})
    overrides = [{"optim.weight_decay": 1e-4 * (r + 1), "seed": r} for r in range(num_replicas)]
    return build_cohort(c, overrides, data)


class _Program:
    """One compiled training step of a cohort, with its arguments, ready to be timed."""

    def __init__(self, config, data, num_replicas: int, strategy: str,
                 compiler_options: dict | None = None):
        built = _cohort(config, data, num_replicas, strategy)
        cohort, hp = built.cohort, built.hp
        state = cohort.init(hp)
        plan = cohort.plan(hp["seed"], built.member_d, 0)
        # One set of per-replica arguments per round (one round unless ``sequential``).
        self.parts = cohort.step_args(state, cohort.zero_acc(), hp,
                                      jnp.full((num_replicas,), 1e-3),
                                      jnp.ones((num_replicas,), bool), plan)
        self.shared = [built.images, built.labels]
        self.cohort, self.R = cohort, num_replicas
        self.steps, self.rounds = cohort.steps, cohort.rounds
        t0 = time.perf_counter()
        # Compiled ahead of time: the compile time is measured apart from the steps, and the
        # compiled program gives XLA's cost (FLOPs) and memory analyses. Options given here
        # are merged over the cohort's own (replicas.compiler_options).
        lowered = cohort.lower_step(self.parts[0], *self.shared)
        self.compiled = (lowered.compile(compiler_options=compiler_options)
                         if compiler_options else lowered.compile())
        self.compile_s = time.perf_counter() - t0
        cost = self.compiled.cost_analysis()
        cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
        self.flops = float(cost.get("flops", float("nan"))) * self.rounds
        mem = self.compiled.memory_analysis()
        # The other rounds' state and accumulators stay resident while one round runs.
        resident = sum(x.nbytes for x in jax.tree.leaves(self.parts[0][:2]))
        self.memory = (float("nan") if mem is None else
                       (mem.argument_size_in_bytes + mem.output_size_in_bytes
                        + mem.temp_size_in_bytes - mem.alias_size_in_bytes
                        + (self.rounds - 1) * resident))
        self.times, self.loss_sum = [], None
        self._s = 0
        self.run()  # warm-up: first dispatch, buffer allocation

    def run(self) -> float:
        """One training step of every replica (the state carries over); returns its wall time.

        ``sequential`` cohorts call their one-replica program once per replica.
        """
        t0 = time.perf_counter()
        for part in self.parts:
            part[:2] = self.compiled(*part, self._s, *self.shared)
        jax.block_until_ready([part[1] for part in self.parts])
        elapsed = time.perf_counter() - t0
        self._s = (self._s + 1) % self.steps
        self.loss_sum = float(np.asarray(self.parts[0][1]["loss"])[0])
        return elapsed

    def result(self) -> dict:
        """The medians and XLA's analyses, as one row of a table."""
        step = float(np.median(self.times))
        peak = peak_flops()
        return {"compile_s": self.compile_s, "step_s": step, "steps_s": list(self.times),
                "flops": self.flops, "flop_per_s": self.flops / step,
                "peak_fraction": self.flops / step / peak if peak else None,
                "memory_mib": self.memory / 2**20,
                "memory_per_replica_mib": self.memory / 2**20 / self.R}


def program(config, data, num_replicas: int, strategy: str) -> _Program:
    """One cohort's training step compiled and warmed up, ready to be timed.

    Args:
      config: the cohort's config.
      data: the loaded dataset.
      num_replicas: R.
      strategy: a strategy label (``sequential``, ``vmap``, ``chunked:4``, ...).

    Returns:
      The program (``run()`` times one step of every replica; ``compile_s``, ``times``).
    """
    return _Program(config, data, num_replicas, strategy)


def interleave(programs: list[_Program], repeats: int) -> list[dict]:
    """Times ``repeats`` rounds, each running every program once, in turn.

    This machine's speed drifts by up to 2x over minutes (other tenants); timing the
    programs round-robin exposes each to the same drift, so their ratios stay meaningful.
    """
    for _ in range(repeats):
        for p in programs:
            p.times.append(p.run())
    return [p.result() for p in programs]


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
      Rows ``{"R", "strategy", "step_s", "compile_s", "one_by_one_s", "speedup"}`` where
      ``one_by_one_s`` is R times the single-replica step and ``speedup`` is
      ``one_by_one_s / step_s`` (>= 1: the cohort beats running replicas one by one).
    """
    configs.resolve_classes(config)
    data = datasets.load(config.data)
    cases = [(1, "unroll")] + [(r, st) for r in replica_counts for st in strategies
                               if r > 1 or st == "vmap"]
    programs = [_Program(config, data, r, st) for r, st in cases]
    results = interleave(programs, repeats)
    single = results[0]["step_s"]
    rows = []
    for (r, st), m in zip(cases, results, strict=True):
        rows.append({"R": r, "strategy": "single" if not rows else st, **m,
                     "one_by_one_s": r * single, "speedup": r * single / m["step_s"]})
    return rows


def variants_table(config, variants: dict, num_replicas: int = 1, strategy: str = "unroll",
                   repeats: int = 5) -> list[dict]:
    """Per-step time of one cohort in several variants, timed side by side.

    Args:
      config: the config to measure.
      variants: ``{name: (overrides, compiler_options)}``: config overrides (e.g.
        ``{"train.xla_options": "default"}``) and XLA options compiled over the cohort's
        own; the first variant is the reference of the ratios.
      num_replicas: R.
      strategy: the replica strategy.
      repeats: rounds of interleaved steps.

    Returns:
      Rows ``{"variant", "overrides", "options", "step_s", "ratio" (to the first variant),
      "loss_sum" (replica 0's summed training loss over the warm-up and timed steps: equal
      up to rounding when a variant changes only speed), ...}``.
    """
    data = datasets.load(config.data)
    programs = [_Program(hparams.apply_overrides(config, ov), data, num_replicas, strategy, o)
                for ov, o in variants.values()]
    results = interleave(programs, repeats)
    ref = results[0]["step_s"]
    return [{"variant": name, "overrides": ov, "options": o, **m, "ratio": m["step_s"] / ref,
             "loss_sum": p.loss_sum}
            for (name, (ov, o)), m, p in zip(variants.items(), results, programs, strict=True)]


def _architecture(config) -> str:
    """What sets a training step's cost: the model, batch, image size and strategy."""
    return json.dumps([config.model.to_dict(), int(config.train.batch_size),
                       config.augment.crop or config.data.image_size or config.data.phantom.size,
                       config.train.strategy, config.data.name], sort_keys=True, default=str)


def calibrate(plans, repeats: int = 5) -> dict:
    """Times one replica's training step of every distinct architecture in a sweep plan.

    The planner's built-in throughput (``plan.THROUGHPUT``) comes from one day on one
    machine, and this machine's speed drifts by up to 2x; timing the step here, now, makes
    the estimate hold for today. Cohorts that differ only in optimizer, schedule or loss
    share the timing of the first of them (those change a step's cost by a few percent).

    Args:
      plans: the cohorts (``plan.plan``).
      repeats: timed steps per architecture (the median is used).

    Returns:
      ``{cohort name: {"rate": FLOP/s (the planner's FLOP count over the measured step),
      "compile_s": seconds, "step_s": seconds}}``.
    """
    timed, data_cache, out = {}, {}, {}
    for p in plans:
        key = _architecture(p.config)
        if key not in timed:
            data_key = json.dumps(p.config.data.to_dict(), sort_keys=True, default=str)
            if data_key not in data_cache:
                data_cache[data_key] = datasets.load(p.config.data)
            program = _Program(p.config, data_cache[data_key], 1, p.config.train.strategy)
            step = interleave([program], repeats)[0]["step_s"]
            timed[key] = {"rate": p.step_flops / step, "compile_s": program.compile_s,
                          "step_s": step}
        out[p.name] = timed[key]
    return out


def format_table(rows: list[dict]) -> str:
    """A Markdown table of :func:`strategy_table` rows."""
    out = ["| R | strategy | step (s) | compile (s) | R x single step (s) | speed-up | "
           "GFLOP/s | of peak | MiB per replica |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        frac = "-" if r.get("peak_fraction") is None else f"{100 * r['peak_fraction']:.1f}%"
        out.append(f"| {r['R']} | {r['strategy']} | {r['step_s']:.3f} | {r['compile_s']:.1f} | "
                   f"{r['one_by_one_s']:.3f} | {r['speedup']:.2f} | "
                   f"{r['flop_per_s'] / 1e9:.1f} | {frac} | {r['memory_per_replica_mib']:.0f} |")
    return "\n".join(out)
