"""The cohort planner: as few compiled programs as possible for a list of runs.

Runs that differ only in numeric replica fields (:mod:`jaxseg.hparams`) share one
cohort. Loss *choices* are numeric too: a cohort computes the union of the loss terms
its runs use, and a run that does not use a term gives it weight 0, so five
different losses train in one program. Every other difference (optimizer family,
schedule kind, architecture, batch or image size, epochs, dataset, augmentation)
starts a new cohort. A cohort larger than the device can hold is split by a memory
estimate, and ``sweep.max_replicas`` caps its size.
"""

import dataclasses
import json
import os

import jax
import ml_collections
import numpy as np

from jaxseg import configs, hparams, losses, models, validation
from jaxseg.data import readers
from jaxseg.engine import devices, halving, replicas
from jaxseg.errors import JaxsegError


@dataclasses.dataclass
class CohortPlan:
    """One cohort of a sweep.

    Attributes:
      index: the cohort's position in the plan.
      config: its static config (the union of its runs' loss terms).
      runs: the indices of its runs in the sweep.
      overrides: one dict of numeric overrides per replica (same order as ``runs``).
      bytes_state: the memory estimate of one replica's state (parameters, gradients,
        optimizer moments, the best copy).
      bytes_activations: the memory estimate of one replica's training activations.
      step_flops: the estimated FLOPs of one replica's training step.
      live: how many replicas' activations are held at once (per cohort, all devices):
        all of them, or one per device under the ``sequential`` strategy.
    """

    index: int
    config: ml_collections.ConfigDict
    runs: list
    overrides: list
    bytes_state: float = 0.0
    bytes_activations: float = 0.0
    step_flops: float = 0.0
    live: int = 0

    @property
    def name(self) -> str:
        """``c000``, ``c001``, ..."""
        return f"c{self.index:03d}"

    @property
    def memory(self) -> float:
        """The cohort's estimated memory (bytes): every replica's state, live activations."""
        return (self.bytes_state * len(self.runs)
                + self.bytes_activations * min(self.live or len(self.runs), len(self.runs)))


def _signature(config: ml_collections.ConfigDict) -> str:
    flat = configs.flatten(json.loads(config.to_json_best_effort()))
    static = {k: v for k, v in flat.items()
              if not k.startswith("loss.weights.") and not hparams.is_replica_field(k, config)}
    return json.dumps(static, sort_keys=True, default=str)


# Under ``sequential`` a replica's state counts 7 parameter copies instead of 5: the 5 of
# :func:`estimate` plus a second copy of the parameters and both Adam moments while the epoch
# splits the stacked state into rounds and joins it back.
SEQUENTIAL_STATE = 7 / 5


def estimate(config: ml_collections.ConfigDict) -> tuple[float, float, float]:
    """Memory (bytes) and FLOPs of one replica's training step, from the architecture.

    The parameter count comes from ``jax.eval_shape`` (nothing is compiled); the
    activation memory and FLOPs are counted per convolution, forward and backward.

    Returns:
      ``(state_bytes, activation_bytes, step_flops)`` of one replica.
    """
    from jaxseg.models import create_model

    size = int(config.augment.crop or config.data.image_size or config.data.phantom.size)
    b, m = int(config.train.batch_size), config.model
    model = create_model(m, int(config.data.num_classes))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               jax.numpy.zeros((1, size, size, 1))))
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))
    if m.get("name", "unet") != "unet":
        flops, act = _traced_cost(model, shapes, b, size)
    else:
        flops, act = _unet_cost(m, b, size)
    # params, grads, two optimizer moments, the best copy (float32); activations in the
    # computation dtype.
    act_bytes = 2.0 if m.get("dtype", "float32") == "bfloat16" else 4.0
    return 4.0 * 5 * params, act_bytes * act, 3 * flops  # backward ~ 2x forward


def _traced_cost(model, shapes, b: int, size: int) -> tuple[float, float]:
    """Forward FLOPs and activation elements of one batch, for any architecture.

    The FLOPs are XLA's cost analysis of the lowered program (nothing is compiled); the
    activations every convolution's output, with its norm, activation and gradient as in
    :func:`_unet_cost`.
    """
    import flax.linen as nn

    x = jax.ShapeDtypeStruct((b, size, size, 1), jax.numpy.float32)
    flops = float(jax.jit(model.apply).lower(shapes, x).cost_analysis()["flops"])
    outputs = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, (nn.Conv, nn.Dense)):
            outputs.append(int(np.prod(out.shape)))
        return out

    with nn.intercept_methods(record):
        jax.eval_shape(model.apply, shapes, x)
    return flops, 4.0 * sum(outputs)


def _unet_cost(m, b: int, size: int) -> tuple[float, float]:
    """Forward FLOPs and activation elements of one U-Net batch, counted per convolution."""
    flops, act = 0.0, 0.0
    cin = 1
    for level in range(m.depth + 1):
        hw = (size // 2**level) ** 2
        width = m.base_width * 2**level
        convs = [(cin, width), (width, width)]
        if level < m.depth:  # decoder block at this level: concat(2w) -> w -> w
            convs += [(2 * width, width), (width, width)]
        for a, c in convs:
            flops += 2 * hw * 9 * a * c * b
            act += hw * c * b * 4  # conv out, norm out, activation out, gradient
        cin = width
    return flops, act


def device_memory() -> float:
    """Bytes one (local) device can give one cohort (60% of free memory)."""
    dev = jax.local_devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return 0.6 * (stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return 0.6 * float(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 8e9


def plan(config: ml_collections.ConfigDict, runs: list[dict],
         max_replicas: int | None = None) -> list[CohortPlan]:
    """Groups runs into cohorts.

    Args:
      config: the experiment's base config.
      runs: one dict of dotted overrides per run.
      max_replicas: cap on replicas per cohort (default ``config.sweep.max_replicas``;
        0 means only the memory estimate limits it).

    Returns:
      The cohorts, in order of their first run. ``config``'s classes are resolved in place
      first (:func:`jaxseg.configs.resolve_classes`), so every cohort and the sweep's record
      name the classes the masks have.
    """
    configs.resolve_classes(config)
    groups: dict[str, list[int]] = {}
    resolved = []
    for i, o in enumerate(runs):
        c = hparams.apply_overrides(config, o)
        for term in c.loss.weights:
            if term not in losses.TERMS:
                raise JaxsegError(f"run {i}: unknown loss term {term!r}; choose from "
                                  f"{list(losses.TERMS)}")
        resolved.append(c)
        groups.setdefault(_signature(c), []).append(i)
    cap = int(config.sweep.max_replicas if max_replicas is None else max_replicas)
    # The replicas of a cohort are sharded over the devices (train.devices; 0: all).
    n_devices = devices.device_count(config.train.devices)
    budget = device_memory() * n_devices
    # ``sequential`` holds every replica's state but one replica's activations per device.
    sequential = replicas.resolve_strategy(config.train.strategy) == "sequential"
    out = []
    for members in groups.values():
        first = resolved[members[0]]
        terms = [t for t in losses.TERMS
                 if any(t in resolved[i].loss.weights for i in members)]
        base = hparams.apply_overrides(first, {"loss.weights": {t: 0.0 for t in terms}})
        per_run = []
        for i in members:
            c = resolved[i]
            o = {k: v for k, v in runs[i].items() if hparams.is_replica_field(k, base)}
            for t in terms:
                o[f"loss.weights.{t}"] = float(c.loss.weights[t]) if t in c.loss.weights else 0.0
            per_run.append(o)
        validation.validate(base, per_run)  # every check, before anything trains
        state, act, flops = estimate(base)
        if sequential:  # the epoch's split into rounds briefly holds a second copy of the
            state *= SEQUENTIAL_STATE  # parameters and both moments (Cohort.split_rounds)
        live = n_devices if sequential else 0  # 0: every replica's activations
        limit = max(1, int((budget - act * live) // (state + (0 if sequential else act))))
        if cap:
            limit = min(limit, cap)
        for start in range(0, len(members), limit):
            out.append(CohortPlan(len(out), base, members[start:start + limit],
                                  per_run[start:start + limit], state, act, flops, live))
    return out


# Sustained training throughput used for time estimates (FLOP/s): the cmr96-size step's
# 30.5 GFLOP (XLA cost analysis) over its 0.687 s on 2 CPU cores
# (docs/benchmarks.md, 2026-11-22). Backends not listed are unmeasured: no estimate.
THROUGHPUT = {"cpu": 4.4e10}
# Compilation of a cohort's programs (seconds): the first epoch's excess over the second in
# the 6 cohorts of the augmentation study on 2 CPU cores (2026-11-22): 7-29 s, median 19 s.
COMPILE_SECONDS = {"cpu": 20.0}


def split_sizes(config: ml_collections.ConfigDict) -> tuple[int, int]:
    """Training and validation images of a config's dataset, for time estimates.

    Known without reading the images for ``phantom`` (its config), ``cmr96`` (100/20), a
    ``folder`` with ``train/`` and ``val/`` sub-folders (its PNGs counted), NIfTI sets and
    ACDC (slices counted from the files' headers and lists); other datasets are counted as
    cmr96, which ``describe`` says.
    """
    d = config.data
    if d.name == "phantom":
        return int(d.phantom.num_train), int(d.phantom.num_val)
    counts = _folder_counts(config) or _volume_counts(config)
    return counts if counts else (100, 20)


def _volume_counts(config: ml_collections.ConfigDict) -> tuple[int, int] | None:
    """Training and validation slices of a NIfTI or ACDC set, from headers and lists, or None.

    A volume set without a ``val`` split holds out a fifth (datasets.HOLDOUT_FOLDS); a 4-D
    labelled cine file is counted as 2 frames (end-diastole and end-systole).
    """
    d = config.data
    source = os.path.expanduser(d.source_dir or "")
    if d.name not in ("nifti", "acdc") or not os.path.isdir(source):
        return None
    try:
        if d.name == "acdc" and os.path.isdir(os.path.join(source, "data")):
            return _acdc_h5_counts(source)
        from jaxseg.data import nifti

        counts = {split: sum(_slices(path, label) for _, path, label in found)
                  for split, found in nifti.cases(source).items()}
    except (JaxsegError, OSError, ValueError):
        return None  # the data will say what is wrong when they are loaded
    train, val = counts.get(str(d.train_split), 0), counts.get(str(d.val_split), 0)
    if not val:
        from jaxseg.data import datasets

        val = train // datasets.HOLDOUT_FOLDS
        train -= val
    return (train, val) if train and val else None


def _slices(path: str, label: str | None) -> int:
    """A NIfTI file's slices from its header (a labelled 4-D cine: 2 frames' worth)."""
    import nibabel as nib

    shape = nib.load(path).shape
    frames = 1 if len(shape) < 4 else 2 if label is not None else shape[3]
    return (shape + (1,))[2] * frames


def _acdc_h5_counts(source: str) -> tuple[int, int] | None:
    """ACDC's HDF5 layout: the training slices listed, the validation volumes' slices."""
    import h5py

    with open(os.path.join(source, "train_slices.list")) as f:
        train = sum(1 for line in f if line.strip())
    with open(os.path.join(source, "val.list")) as f:
        names = [line.strip() for line in f if line.strip()]
    val = 0
    for name in names:
        with h5py.File(os.path.join(source, "data", f"{name}.h5"), "r") as h:
            val += h["image"].shape[0]
    return train, val


def _folder_counts(config: ml_collections.ConfigDict) -> tuple[int, int] | None:
    """Training and validation PNGs of a ``folder`` dataset split into sub-folders, or None."""
    d = config.data
    if d.name != "folder" or not d.source_dir:
        return None
    n = [len(readers.png_files(os.path.join(d.source_dir, split, "images")))
         for split in ("train", str(d.val_split))]
    return (n[0], n[1]) if n[0] and n[1] else None


def halving_share(p: CohortPlan, plans: list[CohortPlan] | None = None) -> float:
    """The fraction of a cohort's replica-epochs successive halving leaves to train (1: none).

    Every rung pruning as planned (:func:`jaxseg.engine.halving.replica_epochs`); 1 when
    halving is off, or under a strategy that steps every replica in one call (a pruned
    replica there costs its step: such cohorts are not re-packed). Under
    ``train.halving.group=grid`` it is the share of the whole grid (``plans``; which
    cohorts hold the survivors is not known before training).
    """
    t = p.config.train
    rungs = halving.rungs(int(t.epochs), int(t.halving.min_epochs), int(t.halving.eta))
    if not rungs or replicas.resolve_strategy(t.strategy) != "sequential":
        return 1.0
    ranked = plans if t.halving.group == "grid" and plans else [p]
    groups, offset = [], 0  # configurations never span cohorts' numbering: offset them
    for q in ranked:
        g = halving.configuration_groups(q.overrides)
        groups += [offset + i for i in g]
        offset += max(g) + 1
    epochs = halving.replica_epochs(tuple(groups), int(t.epochs), rungs, int(t.halving.eta))
    return epochs / (sum(len(q.runs) for q in ranked) * int(t.epochs))


def cohort_seconds(p: CohortPlan, rate: float, compile_s: float,
                   pruned: bool = True, plans: list[CohortPlan] | None = None) -> float:
    """Estimated wall time of one cohort: training, evaluation and compilation.

    Evaluation is a forward pass (a third of a training step's FLOPs) over the
    validation images every epoch. Under ``sequential`` with one dispatch per step a
    replica that keeps fewer images (``data.fraction``) runs only its own steps (idle
    calls are skipped); otherwise every replica steps as often as the one with the most
    images. With successive halving (``pruned``) the steps and evaluations scale by
    :func:`halving_share` (of ``plans``, the grid, under ``group=grid``); ``pruned=False``
    gives the time if no rung pruned anything.
    """
    c = p.config
    train_images, val_images = split_sizes(c)
    batch, epochs = int(c.train.batch_size), int(c.train.epochs)
    fractions = np.array([float(o.get("data.fraction", c.data.fraction)) for o in p.overrides])
    steps = np.ceil(np.maximum(1, np.round(fractions * train_images)) / batch)
    if (replicas.resolve_strategy(c.train.strategy) != "sequential"
            or replicas.resolve_loop(c.train.loop) != "step"):
        steps = np.full_like(steps, steps.max())
    eval_batches = val_images / batch / 3 * len(p.runs)
    share = halving_share(p, plans) if pruned else 1.0
    return (steps.sum() + eval_batches) * epochs * share * p.step_flops / rate + compile_s


def describe(plans: list[CohortPlan], num_runs: int, timings: dict | None = None) -> str:
    """The ``--dry_run`` text: runs, cohorts, replicas per cohort, memory and time estimates.

    Args:
      plans: the cohorts.
      num_runs: the sweep's runs.
      timings: ``bench.calibrate``'s step timings per cohort (``--calibrate``); without
        them times come from the built-in :data:`THROUGHPUT` and :data:`COMPILE_SECONDS`.

    Returns:
      The plan as text, one line per cohort.
    """
    backend = jax.default_backend()
    lines = [f"{num_runs} runs in {len(plans)} cohort(s) on {backend} "
             f"({os.cpu_count()} CPU cores)"]
    total, unpruned, estimated = 0.0, 0.0, True
    for p in plans:
        c = p.config
        if timings:
            rate, compile_s = timings[p.name]["rate"], timings[p.name]["compile_s"]
        else:
            rate, compile_s = THROUGHPUT.get(backend), COMPILE_SECONDS.get(backend, 0.0)
        seconds = cohort_seconds(p, rate, compile_s, plans=plans) if rate else 0.0
        estimated = estimated and bool(rate)
        total += seconds
        unpruned += cohort_seconds(p, rate, compile_s, pruned=False) if rate else 0.0
        share = halving_share(p, plans)
        halved = (f" | halving: {share:.0%} of the replica-epochs"
                  + (" (of the grid's: ranked together)"
                     if c.train.halving.group == "grid" else "") if share < 1 else
                  " | halving: no saving (pruned replicas step under this strategy)"
                  if int(c.train.halving.min_epochs) else "")
        schedules = "/".join(sorted({o.get("optim.schedule", c.optim.schedule)
                                     for o in p.overrides}))
        step = (f" | {timings[p.name]['step_s']:.3f} s/step timed" if timings else "")
        lines.append(
            f"  {p.name}: {len(p.runs):3d} replicas | {c.optim.name} {schedules} | "
            f"{models.describe(c.model)} | "
            f"loss {'+'.join(c.loss.weights)} | {c.data.name} {c.train.epochs} ep | "
            f"{replicas.resolve_strategy(c.train.strategy)} | ~{p.memory / 2**20:.0f} MiB | "
            + (f"~{seconds / 60:.1f} min" if rate else "time: unmeasured on this backend "
               "(--calibrate times it)") + step + halved)
    if estimated:
        unknown = sorted({p.config.data.name for p in plans
                          if p.config.data.name not in ("phantom", "cmr96")
                          and not (_folder_counts(p.config) or _volume_counts(p.config))})
        source = ("one training step per architecture timed on this machine now" if timings
                  else "the built-in throughput of 2026-11-22; --calibrate times this machine")
        span = (f"~{total / 60:.1f} min if every halving rung prunes as planned (best case), "
                f"~{unpruned / 60:.1f} min if none does (worst case)" if unpruned > total
                else f"~{total / 60:.1f} min")
        lines.append(f"estimated total: {span} (training, evaluation and compilation"
                     + (f"; {', '.join(unknown)} counted as 100 training images" if unknown
                        else "") + f"; from {source})")
    return "\n".join(lines)
