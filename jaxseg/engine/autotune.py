"""``train.strategy=auto``: the replica strategy timed where the cohort runs.

Which execution of R replicas is fastest depends on the device, the model and R: on XLA
CPU one replica's program called R times (``sequential``) beats a vmapped program with
grouped convolutions by about 2x, while on a GPU a vmapped cohort can win or lose
(public reports of grouped convolutions as slow as ungrouped ones). So before a cohort
trains, :func:`choose` compiles the candidates, times a few steps of each, side by side,
and keeps the fastest:

* the per-backend default first (``sequential`` on CPU, ``vmap`` elsewhere), then the
  others: ``vmap``; ``chunked`` with chunks of 2, 4, 8, ... below R; ``unroll`` only for
  R <= :data:`UNROLL_MAX` (its compile time grows with R);
* a candidate is measured only while the time spent deciding stays within
  ``train.autotune_share`` (5%) of the cohort's estimated training time (epochs x steps x
  the default's measured step), its cost predicted from the longest compile so far (times
  :data:`COMPILE_GROWTH`), its steps, and the set-up cost the earlier candidates showed;
  a cohort whose planner estimate (``jaxseg.sweep.plan``) says that share would not pay
  for two compiles is not measured at all, and keeps the default, as does one whose
  budget runs out after the default's timing (and one of one replica has nothing to
  choose);
* each candidate is timed in turn with the default (one step each, :data:`REPEATS` times),
  so that the ratios share the machine's drift;
* the decision is cached per device kind, model, batch, image size, R and jax version in
  ``strategies.json`` in the cache folder (beside the compilation cache), so a grid
  decides once, and the programs measured are in the compilation cache when the cohort
  compiles its own.

The decision rule (:func:`pick`) is a pure function of the timings: the fastest median,
with a candidate earlier in the order kept unless another is more than
:data:`MARGIN` faster (the default compiles once whatever R and holds one replica's
activations).
"""

import dataclasses
import json
import os
import time

import jax
import numpy as np
from absl import logging

from jaxseg.engine import replicas

UNROLL_MAX = 2  # unroll's compile time grows with R (95 s at R=4 on 2 CPU cores)
MARGIN = 0.03  # a later candidate must be this much faster to be chosen
REPEATS = 3  # timed steps per candidate (after one warm-up step)
# The next candidate's compile is predicted as at most this times the longest so far: on 2
# CPU cores vmap compiled 1.29x and chunked:2 1.40x sequential (docs/bench_autotune_cpu.json),
# and the first rule (the last compile, unscaled) overshot the budget at R = 4 (5.3%).
COMPILE_GROWTH = 1.5
CACHE_FILE = "strategies.json"


@dataclasses.dataclass
class Choice:
    """A cohort's strategy and how it was chosen.

    Attributes:
      strategy: the strategy (``sequential``, ``vmap``, ``chunked``, ...).
      chunk: replicas per call under ``chunked`` (0 otherwise).
      source: ``measured``, ``cached`` (a decision of an earlier cohort), ``default``
        (nothing to choose or no time to measure), ``given`` (not ``auto``) or ``resumed``
        (the strategy the workdir's first launch chose).
      timings: per candidate label, ``{"step_s", "compile_s"}`` (measured ones only).
      cost_s: the time spent deciding.
      budget_s: the time it was allowed.
    """

    strategy: str
    chunk: int = 0
    source: str = "given"
    timings: dict = dataclasses.field(default_factory=dict)
    cost_s: float = 0.0
    budget_s: float = 0.0

    @property
    def label(self) -> str:
        """``sequential``, ``vmap``, ``chunked:4``, ..."""
        return replicas.label(self.strategy, self.chunk)

    def to_json(self) -> dict:
        """The record written to ``replicas.json`` and ``summary.json``."""
        return {"strategy": self.strategy, "chunk": self.chunk, "source": self.source,
                "timings": self.timings, "cost_s": self.cost_s, "budget_s": self.budget_s}


def candidates(num_replicas: int, backend: str) -> list[str]:
    """The strategies worth timing for R replicas on ``backend``, the default first."""
    default = replicas.resolve_strategy("auto", backend)
    out = [default] + [s for s in ("sequential", "vmap") if s != default]
    c = 2
    while c < num_replicas:
        out.append(replicas.label("chunked", c))
        c *= 2
    if num_replicas <= UNROLL_MAX:
        out.append("unroll")
    return out


def pick(timings: dict[str, float], order: list[str]) -> str:
    """The candidate to use, from the median step time of each measured one.

    Args:
      timings: ``{label: seconds per step of the whole cohort}``.
      order: the candidates in order of preference (:func:`candidates`).

    Returns:
      The fastest, unless a candidate earlier in ``order`` is within :data:`MARGIN` of it.
    """
    measured = [c for c in order if c in timings]
    best = min(measured, key=lambda c: timings[c])
    for c in measured:  # the first one close enough to the fastest
        if timings[c] <= timings[best] * (1 + MARGIN):
            return c
    return best


def cache_key(config, num_replicas: int) -> str:
    """What a decision depends on: device, model, batch, image size, loop, R, jax."""
    d = jax.devices()[0]
    size = config.augment.crop or config.data.image_size or config.data.phantom.size
    return json.dumps([d.platform, d.device_kind, len(jax.devices()), config.model.to_dict(),
                       int(config.train.batch_size), size, config.train.loop,
                       int(num_replicas), jax.__version__], sort_keys=True, default=str)


def cache_path() -> str:
    """``strategies.json`` beside the compilation cache (or in ``~/.cache/jaxseg``)."""
    xla = jax.config.jax_compilation_cache_dir
    base = os.path.dirname(os.path.abspath(xla)) if xla else os.path.expanduser(
        "~/.cache/jaxseg")
    return os.path.join(base, CACHE_FILE)


def _read_cache(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: decide again


def _write_cache(path: str, key: str, choice: Choice) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = _read_cache(path)
        data[key] = {**choice.to_json(), "date": time.strftime("%Y-%m-%d")}
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file
    except OSError as e:  # a read-only cache folder costs a decision per cohort, no more
        logging.warning("strategy decision not cached in %s (%s)", path, e)


def choose(config, data, num_replicas: int, steps_per_epoch: int, measure=None,
           use_cache: bool = True, cache_file: str | None = None) -> Choice:
    """The strategy a cohort of ``num_replicas`` trains with.

    Args:
      config: the cohort's config (``train.strategy``, ``train.autotune_share``).
      data: the loaded dataset (the candidates are timed on it).
      num_replicas: R (per device: the replicas one device runs).
      steps_per_epoch: training steps per epoch (for the cohort's estimated time).
      measure: ``measure(label) -> (compile_s, [step seconds])``, the timing of one
        candidate; default: compile it and time it (``_Timer``, side by side). Tests
        inject timings here.
      use_cache: read and write the decision cache.
      cache_file: the cache (default: :func:`cache_path`).

    Returns:
      The choice.
    """
    t = config.train
    if t.strategy != "auto":
        return Choice(t.strategy, int(t.chunk) if t.strategy == "chunked" else 0)
    backend = jax.default_backend()
    default = replicas.resolve_strategy("auto", backend)
    order = candidates(num_replicas, backend)
    if num_replicas == 1:
        return Choice(default, source="default")
    key, path = cache_key(config, num_replicas), cache_file or cache_path()
    cached = _read_cache(path).get(key) if use_cache else None
    if cached:
        return Choice(cached["strategy"], int(cached["chunk"]), "cached", cached["timings"])
    guess = estimated_seconds(config, num_replicas, steps_per_epoch, backend)
    if measure is None and guess is not None and (
            float(t.autotune_share) * guess < 2 * guess_compile_s(backend)):
        # Tiny cohort: its share of the time would not pay for a second compile.
        return Choice(default, source="default", budget_s=float(t.autotune_share) * guess)
    t0 = time.perf_counter()
    timer = None
    if measure is None:
        timer = _Timer(config, data, num_replicas)
        measure = timer.measure
    timings, medians = {}, {}

    modelled = [0.0]  # the timings' own account of the time spent: compiles and steps

    def run(label):
        compile_s, steps = measure(label)
        medians[label] = float(np.median(steps))
        timings[label] = {"step_s": medians[label], "compile_s": compile_s}
        # Its compile, warm-up and timed steps, and (after the first) the default's steps
        # timed in turn with them.
        modelled[0] += compile_s + (len(steps) + 1) * medians[label] + (
            REPEATS * medians[order[0]] if label != order[0] else 0.0)

    run(order[0])
    budget = float(t.autotune_share) * int(t.epochs) * steps_per_epoch * medians[order[0]]
    for label in order[1:]:
        spent = max(time.perf_counter() - t0, modelled[0])
        # Expected cost of one more: a compile up to COMPILE_GROWTH times the longest so
        # far (a vmapped program compiles slower than one replica's), its steps (at up to
        # twice the default's time) timed in turn with the default's, and what building
        # and initialising each candidate's cohort has cost beyond that account so far.
        setup = spent / modelled[0] if modelled[0] > 0 else 1.0  # >= 1: spent >= modelled
        more = setup * (COMPILE_GROWTH * max(v["compile_s"] for v in timings.values())
                        + (3 * REPEATS + 2) * medians[order[0]])
        if spent + more > budget:
            break
        run(label)
    if timer is not None:  # every sample, each candidate timed in turn with the others
        for label, m in timer.medians().items():
            medians[label] = timings[label]["step_s"] = m
    cost = time.perf_counter() - t0
    if len(timings) == 1:
        logging.info("strategy: %s (the cohort's ~%.0f s of training leave no time to time "
                     "other strategies)", default, budget / max(float(t.autotune_share), 1e-9))
        return Choice(default, source="default", timings=timings, cost_s=cost, budget_s=budget)
    best = pick(medians, order)
    strategy, chunk = replicas.parse_label(best)
    choice = Choice(strategy, chunk, "measured", timings, cost, budget)
    logging.info("strategy: %s, timed where it runs in %.0f s (budget %.0f s): %s", best, cost,
                 budget, ", ".join(f"{k} {v['step_s']:.3f} s/step (compile {v['compile_s']:.0f}"
                                   " s)" for k, v in timings.items()))
    if use_cache:
        _write_cache(path, key, choice)
    return choice


def estimated_seconds(config, num_replicas: int, steps_per_epoch: int,
                      backend: str) -> float | None:
    """The planner's estimate of a cohort's training time (None: backend unmeasured)."""
    from jaxseg.sweep import plan  # the planner's FLOP count and built-in throughput

    rate = plan.THROUGHPUT.get(backend)
    if rate is None:
        return None
    flops = plan.estimate(config)[2]
    return int(config.train.epochs) * steps_per_epoch * num_replicas * flops / rate


def guess_compile_s(backend: str) -> float:
    """The planner's built-in compile time of a cohort's programs on ``backend``."""
    from jaxseg.sweep import plan

    return plan.COMPILE_SECONDS.get(backend, 0.0)


class _Timer:
    """Compiles and times candidates with :mod:`jaxseg.bench`'s programs, side by side.

    Each candidate is compiled, warmed up and timed in turn with the first one (the
    default), so that every ratio to the default shares the machine's drift; a
    candidate's program is freed once timed, the default's kept.
    """

    def __init__(self, config, data, num_replicas: int):
        self.config, self.data, self.R = config, data, num_replicas
        self.default, self.times = None, {}

    def measure(self, label: str) -> tuple[float, list[float]]:
        from jaxseg import bench  # bench builds cohorts: imported late (no import cycle)

        p = bench.program(self.config, self.data, self.R, label)
        if self.default is None:
            self.default = p
        for _ in range(REPEATS):
            for q in {id(p): p, id(self.default): self.default}.values():
                q.times.append(q.run())
        self.times[label] = p.times
        return p.compile_s, list(p.times)

    def medians(self) -> dict[str, float]:
        """Each candidate's median step over all its samples."""
        return {k: float(np.median(t)) for k, t in self.times.items()}
