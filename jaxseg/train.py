"""The cohort trainer: R replicas with their own hyperparameters in one compiled program.

A single run is a cohort of one replica; there is one engine (GUIDE §2). The data
lives on the device; batch order, augmentation and dropout come from keys derived
on the device from each replica's seed, the epoch and the step, so nothing is fed
per batch and a resumed run draws exactly what an uninterrupted run draws.

Per epoch the host: sets every replica's learning rate (base x schedule x plateau
scale), runs the steps (one dispatch per step, or one ``lax.scan`` per epoch:
``train.loop``), evaluates all replicas together, updates best weights,
reduce-on-plateau, early stopping and divergence flags, writes history and
checkpoints. A replica that stops early or diverges is frozen: its updates are
masked out, so its weights and metrics no longer change, while the others go on.

The step functions below are pure and written for one replica; they are lifted to
the cohort by :func:`jaxseg.replicas.over_replicas` with the chosen strategy.
"""

import dataclasses
import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from jaxseg import checkpoint, configs, devices, hparams, losses, metrics, optim, outputs, replicas
from jaxseg import workdir as workdir_lib
from jaxseg.data import augment, datasets
from jaxseg.errors import JaxsegError
from jaxseg.models import create_model

STAGES = ("encoder", "bottleneck", "decoder")
# Random-number ops compile slowly at XLA CPU's default optimisation level; the
# set-up functions run once, so they are compiled at level 0 (docs/benchmarks.md).
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


@dataclasses.dataclass(frozen=True, eq=False)
class Static:
    """Everything fixed for a cohort (part of the compiled program).

    Attributes:
      model: the Flax module.
      tx: the optax chain (hyperparameters injected per replica).
      plateau: the reduce-on-plateau transformation.
      terms: the loss terms present.
      head: ``softmax`` | ``sigmoid``.
      num_classes: K.
      class_counts: wce's effective-number sample counts per class (the training pixel
        counts in the unit ``loss.ecn_counts`` names).
      augment: the augmentation config.
      dropout: per stage, whether any replica uses dropout there.
      tolerance: boundary F1 tolerance (pixels).
      num_volumes: validation volumes (0 for 2-D data).
    """

    model: object
    tx: optax.GradientTransformation
    plateau: optax.GradientTransformation
    terms: tuple
    head: str
    num_classes: int
    class_counts: np.ndarray
    augment: ml_collections.ConfigDict
    dropout: tuple
    tolerance: float
    num_volumes: int


def _loss_args(static: Static, hp: dict):
    weights = {t: hp[f"loss.weights.{t}"] for t in static.terms}
    params = {p: hp[f"loss.params.{p}"] for p in losses.PARAMS if f"loss.params.{p}" in hp}
    return weights, params


def _variables(state):
    v = {"params": state["params"]}
    if state["batch_stats"]:
        v["batch_stats"] = state["batch_stats"]
    return v


def init_replica(static: Static, hp: dict, image_shape: tuple) -> dict:
    """Initial state of one replica from its seed and hyperparameters.

    Args:
      static: the cohort's static parts.
      hp: this replica's hyperparameters (scalars).
      image_shape: ``(H, W, C)`` of the training images.

    Returns:
      ``{"params", "batch_stats", "opt_state", "plateau"}``.
    """
    key = jax.random.fold_in(jax.random.key(hp["seed"]), 0)
    variables = static.model.init({"params": key}, jnp.zeros((1, *image_shape)))
    params = variables["params"]
    opt_state = optim.init_optimizer(static.tx, params, hp["optim.learning_rate"],
                                     hp["optim.weight_decay"], hp["optim.momentum"],
                                     hp["optim.l1"])
    return {"params": params, "batch_stats": variables.get("batch_stats", {}),
            "opt_state": opt_state, "plateau": static.plateau.init(jnp.zeros(()))}


def epoch_plan(seed, member, epoch, *, batch_size: int, steps: int):
    """One replica's batches for one epoch: its own subset, in its own random order.

    Args:
      seed: the replica's seed.
      member: ``(N,)`` bool, the training images this replica may use (data fraction).
      epoch: the epoch (0-based).
      batch_size: B.
      steps: steps per epoch of the cohort (for the replica with the most images).

    Returns:
      ``(index (steps, B), active (steps,), keys (steps,))``: a replica with fewer
      images has inactive trailing steps; its last batch is filled by wrapping around.
    """
    base = jax.random.key(seed)
    order_key = jax.random.fold_in(jax.random.fold_in(base, 1), epoch)
    step_key = jax.random.fold_in(jax.random.fold_in(base, 2), epoch)
    scores = jnp.where(member, jax.random.uniform(order_key, member.shape), 2.0)
    perm = jnp.argsort(scores)  # members first, in random order
    n = jnp.maximum(jnp.sum(member), 1)
    index = perm[jnp.arange(steps * batch_size) % n].reshape(steps, batch_size)
    active = jnp.arange(steps) < (n + batch_size - 1) // batch_size
    return index, active, jax.random.split(step_key, steps)


def train_step(static: Static, state: dict, acc: dict, hp: dict, lr, alive, index, active,
               key, images, labels):
    """One optimisation step of one replica; frozen, inactive or non-finite steps change nothing.

    Args:
      static: the cohort's static parts.
      state: the replica's state.
      acc: the epoch's accumulators ``{"loss", "count", "bad"}``.
      hp: the replica's hyperparameters.
      lr: the learning rate for this epoch.
      alive: False once the replica stopped early or diverged.
      index: ``(B,)`` the images of this batch.
      active: False for the padding steps of a replica with fewer images.
      key: this step's key.
      images: ``(N, H, W, C)`` all training images (shared).
      labels: ``(N, H, W)`` all training labels (shared).

    Returns:
      ``(state, acc)``.
    """
    k_aug, k_drop = jax.random.split(key)
    x, y = augment.augment_batch(k_aug, images[index], labels[index], static.augment)
    rates = tuple(hp[f"model.dropout.{s}"] if on else None
                  for s, on in zip(STAGES, static.dropout, strict=True))
    weights, params_ = _loss_args(static, hp)

    def loss_fn(params):
        variables = _variables({**state, "params": params})
        logits, mutated = static.model.apply(variables, x, train=True, dropout_rates=rates,
                                             rngs={"dropout": k_drop},
                                             mutable=["batch_stats"])
        loss, _ = losses.total_loss(logits, y, weights, params_, head=static.head,
                                    num_classes=static.num_classes,
                                    class_counts=static.class_counts)
        return loss, mutated.get("batch_stats", {})

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    opt_state = optim.set_learning_rate(state["opt_state"], lr)
    updates, opt_state = static.tx.update(grads, opt_state, state["params"])
    finite = jnp.isfinite(loss) & jnp.all(jnp.array(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    ok = alive & active & finite
    new = {"params": optax.apply_updates(state["params"], updates),
           "batch_stats": batch_stats, "opt_state": opt_state, "plateau": state["plateau"]}
    state = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
    acc = {"loss": acc["loss"] + jnp.where(ok, loss, 0.0),
           "count": acc["count"] + ok.astype(jnp.float32),
           "bad": acc["bad"] | (alive & active & ~finite)}
    return state, acc


def eval_step(static: Static, state: dict, hp: dict, images, labels, valid, volume):
    """Loss, predictions and metric counts of one replica on one evaluation batch.

    Args:
      static: the cohort's static parts.
      state: the replica's state.
      hp: the replica's hyperparameters (loss weights and parameters).
      images: ``(B, H, W, C)``.
      labels: ``(B, H, W)``.
      valid: ``(B,)`` 1 for real samples, 0 for padding.
      volume: ``(B,)`` volume index per slice (zeros for 2-D data).

    Returns:
      ``(EvalMetrics, predictions uint8 (B, H, W))``.
    """
    logits = static.model.apply(_variables(state), images, train=False)
    weights, params_ = _loss_args(static, hp)

    def per_sample(lg, lb):  # per image, so the mean does not depend on the batch size
        return losses.total_loss(lg[None], lb[None], weights, params_, head=static.head,
                                 num_classes=static.num_classes,
                                 class_counts=static.class_counts)[0]

    loss = jax.vmap(per_sample)(logits, labels)
    pred = jnp.argmax(losses.class_log_probs(logits, static.head), -1)
    m = metrics.EvalMetrics.single_from_model_output(
        loss=loss, mask=valid, pred=pred, labels=labels, valid=valid,
        num_classes=static.num_classes, tolerance=static.tolerance,
        volume=volume, num_volumes=static.num_volumes)
    return m, pred.astype(jnp.uint8)


def subset_members(allowed: np.ndarray, fractions: np.ndarray, subset_seeds: np.ndarray):
    """Which training images each replica uses: ``round(fraction * n)`` of its ``n`` allowed ones.

    Args:
      allowed: ``(R, N)`` bool, the images each replica may train on (all of them, or those
        outside its held-out fold).
      fractions: ``(R,)`` data fractions.
      subset_seeds: ``(R,)`` seeds of the subset draw (same seed and fraction: same images;
        a smaller fraction with the same seed takes a subset of a larger one's images).

    Returns:
      ``(R, N)`` bool (at least one image per replica).
    """
    out = np.zeros(allowed.shape, bool)
    for r, (f, s) in enumerate(zip(fractions, subset_seeds, strict=True)):
        candidates = np.flatnonzero(allowed[r])
        n = max(1, int(round(float(f) * len(candidates))))
        out[r, candidates[np.random.default_rng(int(s)).permutation(len(candidates))[:n]]] = True
    return out


def build_static(config: ml_collections.ConfigDict, data: datasets.SegData,
                 table: dict) -> Static:
    """The static parts of a cohort from its config, data and hyperparameter table."""
    model = create_model(config.model, data.num_classes)
    return Static(
        model=model, tx=optim.make_optimizer(config.optim),
        plateau=optim.make_plateau(config.optim),
        terms=tuple(config.loss.weights), head=config.model.head,
        num_classes=data.num_classes,
        class_counts=losses.ecn_sample_counts(data.class_counts, config.loss.ecn_counts),
        augment=ml_collections.FrozenConfigDict(config.augment),
        dropout=tuple(bool(np.any(table[f"model.dropout.{s}"] > 0)) for s in STAGES),
        tolerance=metrics.bf_tolerance(config.eval.bf_convention, config.eval.bf_tolerance,
                                       data.train.images.shape[1:3]),
        num_volumes=len(data.val.volume_ids or []))


class Cohort:
    """The compiled functions of one cohort (built once, reused every epoch)."""

    def __init__(self, config, static: Static, num_replicas: int, steps: int, data,
                 mesh=None):
        """Builds the jitted functions.

        Args:
          config: the cohort's config.
          static: its static parts.
          num_replicas: R, the real replicas.
          steps: training steps per epoch.
          data: the loaded dataset (for shapes).
          mesh: a replica mesh (:func:`jaxseg.devices.replica_mesh`) or None for one device.
            With D devices the device arrays hold ``padded`` replicas (R rounded up to a
            multiple of D; the extra ones are inert) and each device runs its own share.
        """
        self.static, self.R, self.steps, self.mesh = static, num_replicas, steps, mesh
        self.padded = devices.padded_size(num_replicas, mesh)
        self.strategy = replicas.resolve_strategy(config.train.strategy)
        self.loop = replicas.resolve_loop(config.train.loop)
        B = int(config.train.batch_size)
        image_shape = data.train.images.shape[1:]
        local = self.padded // (1 if mesh is None else mesh.devices.size)
        # sequential: the training programs below are one replica's, called once per local
        # replica (``rounds``) on that replica's own buffers (see split_rounds); the other
        # strategies take every replica in one call.
        seq = self.strategy == "sequential"
        self.rounds = local if seq else 1
        # Replica-steps and replica-evaluations skipped as idle (see run_epoch, evaluate).
        self.local, self.skipped, self.skipped_evals = local, 0, 0
        over = functools.partial(replicas.over_replicas, strategy=self.strategy,
                                 num_replicas=local)
        pick = replicas.take_replica if seq else lambda tree, r: tree
        rep, shared = devices.REPLICA, devices.SHARED
        placed = {} if mesh is None else {
            "out_shardings": jax.sharding.NamedSharding(mesh, rep)}
        self.init = jax.jit(jax.vmap(functools.partial(init_replica, static,
                                                       image_shape=image_shape)),
                            compiler_options=_FAST_COMPILE, **placed)
        self.plan = jax.jit(jax.vmap(functools.partial(epoch_plan, batch_size=B, steps=steps),
                                     in_axes=(0, 0, None)), compiler_options=_FAST_COMPILE,
                            **placed)
        # Why sequential rounds get buffers of their own: a step that reads its replica's
        # slice of the stacked state and writes it back (dynamic_update_slice) made XLA CPU
        # copy whole stacked Adam moments and parameters on every call (296 f32[R, ...]
        # copies at R=32, benchmarks/sequential_copies.py), so a call cost O(R) memory
        # traffic. Split once per epoch, each call touches only its replica's state.
        self._split = self._join = None
        if seq:
            self._split = jax.jit(devices.shard_map(
                lambda tree: [jax.tree.map(lambda x, r=r: x[r:r + 1], tree) for r in range(local)],
                mesh, in_specs=(rep,), out_specs=rep), compiler_options=_FAST_COMPILE)
            self._join = jax.jit(devices.shard_map(
                lambda trees: jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees),
                mesh, in_specs=(rep,), out_specs=rep), compiler_options=_FAST_COMPILE)
        step_r = over(functools.partial(train_step, static))

        def one_step_local(state, acc, hp, lr, alive, index, active, keys, s, images, labels):
            take = lambda a: jax.lax.dynamic_index_in_dim(a, s, 1, keepdims=False)  # noqa: E731
            return step_r((state, acc, hp, lr, alive, take(index), take(active), take(keys)),
                          (images, labels))

        # Each device steps its own replicas: nothing crosses devices inside a step.
        one_step = devices.shard_map(one_step_local, mesh, in_specs=(rep,) * 8 + (shared,) * 3,
                                     out_specs=(rep, rep))

        fast = replicas.compiler_options(config.train.xla_options)
        if self.loop == "step":
            self.step = jax.jit(one_step, donate_argnums=(0, 1), compiler_options=fast)
        else:
            unroll = int(config.train.scan_unroll)

            def epoch(state, acc, hp, lr, alive, index, active, keys, images, labels):
                def body(carry, s):
                    st, ac = carry
                    return one_step(st, ac, hp, lr, alive, index, active, keys, s, images,
                                    labels), None
                (state, acc), _ = jax.lax.scan(body, (state, acc), jnp.arange(steps),
                                               unroll=unroll)
                return state, acc

            self.epoch = jax.jit(epoch, donate_argnums=(0, 1), compiler_options=fast)
        eval_r = over(functools.partial(eval_step, static))
        self._eval = jax.jit(devices.shard_map(
            lambda state, hp, r, x, y, v, vol: eval_r(pick((state, hp), r), (x, y, v, vol)),
            mesh, in_specs=(rep, rep) + (shared,) * 5, out_specs=(rep, rep)),
            compiler_options=fast)
        # k-fold cohorts: every replica is evaluated on its own held-out images.
        self._eval_each = jax.jit(devices.shard_map(
            lambda state, hp, r, x, y, v, vol: eval_r(pick((state, hp, x, y, v, vol), r), ()),
            mesh, in_specs=(rep, rep, shared) + (rep,) * 4, out_specs=(rep, rep)),
            compiler_options=fast)

        def plateau_update(state, losses_, do):
            def one(pl, v, d):
                new = optim.plateau_step(static.plateau, pl, v)
                return jax.tree.map(lambda n, o: jnp.where(d, n, o), new, pl)
            return {**state, "plateau": jax.vmap(one)(state["plateau"], losses_, do)}

        self.plateau = jax.jit(plateau_update, donate_argnums=(0,))

        def keep_best(best, state, improved):
            cur = {"params": state["params"], "batch_stats": state["batch_stats"]}
            sel = lambda n, o: jnp.where(  # noqa: E731
                improved.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)
            return jax.tree.map(sel, cur, best)

        self.keep_best = jax.jit(keep_best, donate_argnums=(0,))

    def per_call(self, busy: np.ndarray) -> np.ndarray:
        """Per-replica flags ``(padded, ...)`` as per-call flags ``(rounds, ...)``: any replica.

        Under ``sequential`` a call steps one replica per device (device d's r-th is
        replica d * local + r); under the other strategies one call steps them all.
        """
        busy = np.asarray(busy).reshape(-1, self.local, *busy.shape[1:]).any(0)
        return busy.any(0, keepdims=True) if self.rounds == 1 else busy

    def idle(self, alive, active) -> np.ndarray:
        """Which calls of an epoch would change nothing, as ``(rounds, steps)`` host bools.

        A call is idle when none of the replicas it steps is alive and active: replicas
        that stopped early or diverged, and the trailing steps of a replica that trains
        on fewer images (``data.fraction``). ``train_step`` leaves state and accumulators
        untouched on such steps, so skipping the call is exact.
        """
        return ~self.per_call(devices.to_host(alive)[:, None] & devices.to_host(active))

    def split_rounds(self, tree) -> list:
        """A stacked per-replica tree as one tree per round, each in buffers of its own.

        Under ``sequential`` round ``r`` holds replica ``r`` of every device's share
        (leading axis: devices); otherwise the one round is ``tree`` itself.
        """
        return [tree] if self._split is None else self._split(tree)

    def join_rounds(self, trees: list):
        """The inverse of :meth:`split_rounds`: one stack in replica order."""
        return trees[0] if self._join is None else self._join(trees)

    def run_epoch(self, state, hp, lr, alive, plan, images, labels):
        """Runs one epoch's steps, skipping idle calls; returns ``(state, acc)`` (acc on device).

        ``skipped`` counts the replica-steps skipped so far (calls times replicas per call).
        Under ``sequential`` the stacked ``state`` is consumed (its buffers are deleted once
        split into rounds), as a donated argument would be.
        """
        index, active, keys = plan
        idle = self.idle(alive, active)
        self.skipped += int(idle.sum()) * (self.padded // self.rounds)
        # Separate buffers: the accumulators are donated, and one buffer cannot be donated twice.
        acc = devices.place({"loss": np.zeros((self.padded,), np.float32),
                             "count": np.zeros((self.padded,), np.float32),
                             "bad": np.zeros((self.padded,), bool)}, self.mesh)
        rounds = [list(part) for part in self.split_rounds(
            (state, acc, hp, lr, alive, index, active, keys))]
        if self._split is not None:  # the rounds hold copies: free the stack now, not later
            jax.tree.map(lambda x: x.delete(), (state, acc))
        for s in range(self.steps if self.loop == "step" else 1):
            for r, part in enumerate(rounds):
                if self.loop == "step" and not idle[r, s]:
                    part[:2] = self.step(*part, s, images, labels)
                elif self.loop == "scan" and not idle[r].all():
                    part[:2] = self.epoch(*part, images, labels)
        return (self.join_rounds([part[0] for part in rounds]),
                self.join_rounds([part[1] for part in rounds]))

    def _rounds(self, call, busy):
        """Stacks ``call(r)`` over the rounds; a round without a busy replica is not run.

        Its place is filled with another round's output, which is never read.
        """
        busy = np.ones(self.rounds, bool) if busy is None else busy
        outs = {r: call(r) for r in range(self.rounds) if busy[r]} or {0: call(0)}
        filler = next(iter(outs.values()))
        return replicas.stack_rounds([outs.get(r, filler) for r in range(self.rounds)])

    def eval(self, state, hp, images, labels, valid, volume, busy=None):
        """Metrics and predictions of every replica on one shared evaluation batch.

        ``busy``: ``(rounds,)`` host bools from :meth:`per_call`, or None for all.
        """
        return self._rounds(lambda r: self._eval(state, hp, r, images, labels, valid, volume),
                            busy)

    def eval_each(self, state, hp, images, labels, valid, volume, busy=None):
        """Metrics and predictions of every replica on its own batch (leading axis R)."""
        return self._rounds(lambda r: self._eval_each(state, hp, r, images, labels, valid,
                                                      volume), busy)


def evaluate(cohort: Cohort, state, hp, split: datasets.Split, batch_size: int, config,
             index: list[np.ndarray] | None = None, alive: np.ndarray | None = None):
    """Evaluates every replica on a split (or each on its own part of it).

    Args:
      cohort: the compiled cohort.
      state: the stacked state.
      hp: the stacked hyperparameters (device).
      split: a labelled split.
      batch_size: the evaluation batch size (results do not depend on it).
      config: the run config (``eval.hd95``).
      index: None to evaluate every replica on the whole split; else one index array per
        replica into ``split`` (k-fold: each replica's held-out fold).
      alive: ``(R,)`` host bools, or None for all: replicas that are not alive (frozen)
        are not evaluated (under ``sequential`` not even on the device) and get None.

    Returns:
      A list (one per replica) of metric dicts: ``loss``, ``dice``, ``dice_per_class``,
      ``iou``..., ``bf``..., ``accuracy``, ``hd95``... and ``volume_dice`` for volume splits.
    """
    R = cohort.R
    alive = np.ones(R, bool) if alive is None else np.asarray(alive, bool)
    busy = cohort.per_call(np.concatenate([alive, np.zeros(cohort.padded - R, bool)]))
    cohort.skipped_evals += int((~busy).sum()) * (cohort.padded // cohort.rounds)
    shared = index is None
    if shared:
        index = [np.arange(len(split))]
    else:  # inert padding replicas are evaluated on replica 0's images
        index = list(index) + [index[0]] * (cohort.padded - len(index))
    n = max(len(i) for i in index)
    width = n + (-n) % batch_size
    idx = np.full((len(index), width), -1, np.int64)  # -1: padding
    for r, ix in enumerate(index):
        idx[r, :len(ix)] = ix
    volume = split.volume if split.volume is not None else np.zeros(len(split), np.int32)
    total, preds = None, []
    for i in range(0, width, batch_size):
        ib = idx[:, i:i + batch_size]
        take = np.maximum(ib, 0)
        args = (split.images[take], split.labels[take], (ib >= 0).astype(np.float32),
                np.where(ib >= 0, volume[take], 0).astype(np.int32))
        if shared:
            m, p = cohort.eval(state, hp, *devices.place([a[0] for a in args], cohort.mesh,
                                                         devices.SHARED), busy=busy)
        else:
            m, p = cohort.eval_each(state, hp, *devices.place(list(args), cohort.mesh),
                                    busy=busy)
        total = m if total is None else total.merge(m)
        preds.append(devices.to_host(p, R))
    preds = np.concatenate(preds, axis=1)
    total = devices.to_host(total, R)
    spacing, unit = metrics.hd95_spacing(config.data.spacing, split.volume is not None)
    out = []
    for r in range(R):
        if not alive[r]:
            out.append(None)
            continue
        res = jax.tree.map(lambda x, r=r: x[r], total).compute()
        row = {"loss": float(res["loss"]), **res["seg"]}
        if config.eval.hd95:
            ix = index[0 if shared else r]
            per_case = metrics.hd95_per_case(
                preds[r][:len(ix)], split.labels[ix], cohort.static.num_classes,
                None if split.volume is None else split.volume[ix], spacing)
            row.update(metrics.summarize_hd95(per_case, unit))
        out.append(row)
    return out


def _check_workdir(workdir: str, run_meta: dict, record: bool = True) -> None:
    """Refuses to resume a workdir that holds a different run; records a new one.

    With ``record=False`` it only checks: the run is recorded once its data are loaded
    and checked, so a launch that fails before that leaves nothing a corrected command
    would be refused by.
    """
    path = os.path.join(workdir, "run.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        run_meta = {**run_meta, "config": configs.without_added_defaults(
            old.get("config", {}), outputs.jsonable(run_meta["config"]))}
        if old != outputs.jsonable(run_meta):
            diff = sorted(k for k in set(old) | set(run_meta)
                          if old.get(k) != outputs.jsonable(run_meta).get(k))
            raise JaxsegError(
                f"workdir {workdir} holds a different run (differs in {diff}); use a new "
                "--workdir or delete the old one")
    elif record:
        outputs.write_json(path, run_meta)


def _select_score(row: dict, select: str) -> float:
    return -row["loss"] if select == "loss" else row[select]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       overrides: list[dict] | None = None, label: str = "") -> dict:
    """Trains a cohort of replicas and evaluates it every ``eval.every`` epochs.

    While it trains, ``workdir/lock.json`` names this process, so ``jaxseg inspect`` can
    tell a running cohort from an interrupted one.

    Args:
      config: the cohort's (static) config.
      workdir: where checkpoints, history, summary and TensorBoard files go; a
        workdir with a checkpoint is resumed.
      overrides: one dict of numeric dotted overrides per replica (default: one replica).
      label: a prefix for progress lines.

    Returns:
      The summary (also written to ``workdir/summary.json``).
    """
    try:
        return _train_and_evaluate(config, workdir, overrides, label)
    finally:
        workdir_lib.remove_lock(workdir)


def _train_and_evaluate(config, workdir, overrides, label):
    t_start = time.time()
    replica_cfgs = hparams.replica_configs(config, overrides or [{}])
    table = hparams.table(replica_cfgs)
    R = len(replica_cfgs)
    for field, value, choices in (
            ("eval.select", config.eval.select, ("dice", "dice_image", "loss")),
            ("train.early_stopping_monitor", config.train.early_stopping_monitor,
             ("dice", "loss"))):
        if value not in choices:
            raise JaxsegError(f"{field}={value!r}: choose from {list(choices)}")
    os.makedirs(workdir, exist_ok=True)
    run_meta = {"config": configs.identity(config),
                "overrides": [dict(o) for o in (overrides or [{}])]}
    _check_workdir(workdir, run_meta, record=False)
    workdir_lib.write_lock(workdir)

    data = datasets.load(config.data)
    static = build_static(config, data, table)
    B = int(config.train.batch_size)
    E = int(config.train.epochs)
    if B < 1 or E < 1:
        raise JaxsegError(f"train.batch_size ({B}) and train.epochs ({E}) must be >= 1")
    folds = int(config.data.folds)
    if folds:  # k-fold: train on the pool minus each replica's own held-out fold
        fold = np.array([int(c.data.fold) for c in replica_cfgs])
        if np.any((fold < 0) | (fold >= folds)):
            raise JaxsegError(f"data.fold={fold.tolist()} must be in 0..data.folds-1 "
                              f"(data.folds={folds})")
        source, val_split = data.pool, data.pool
        allowed = data.fold_of[None, :] != fold[:, None]
        val_index = [np.flatnonzero(data.fold_of == f) for f in fold]
    else:
        source, val_split, val_index = data.train, data.val, None
        allowed = np.ones((R, len(source)), bool)
    if config.eval.hd95:  # a spacing that does not fit the data is refused before training
        metrics.hd95_spacing(config.data.spacing, val_split.volume is not None)
    _check_workdir(workdir, run_meta)
    member = subset_members(allowed, table["data.fraction"], table["data.subset_seed"])
    steps = int(math.ceil(member.sum(1).max() / B))
    mesh = devices.replica_mesh(int(config.train.devices))
    cohort = Cohort(config, static, R, steps, data, mesh)
    Rp = cohort.padded
    logging.info("cohort: %d replica(s), strategy %s, loop %s, %d steps/epoch, %d train / "
                 "%d val images%s%s", R, cohort.strategy, cohort.loop, steps,
                 int(member.sum(1).max()), max(len(i) for i in val_index or [data.val.ids]),
                 f" ({folds}-fold cross-validation, folds {sorted(set(fold.tolist()))})"
                 if folds else "", "" if mesh is None else
                 f"; replicas sharded over {mesh.devices.size} devices"
                 + (f" (+{Rp - R} inert padding replicas)" if Rp > R else ""))
    # Device arrays hold Rp replicas (inert copies of replica 0 pad R to the device count);
    # host bookkeeping holds the R real ones.
    hp = devices.place(devices.pad({k: v.astype(np.int32) if v.dtype.kind == "i" else v
                                    for k, v in table.items()}, Rp), mesh)
    images, labels = devices.place((source.images, source.labels), mesh, devices.SHARED)
    member_d = devices.place(devices.pad(member, Rp), mesh)

    def padded(x, fill):  # a host per-replica vector as a device array of Rp entries
        x = np.asarray(x)
        full = np.concatenate([x, np.full((Rp - R,), fill, x.dtype)])
        return devices.place(full, mesh)

    take_real = jax.jit(lambda t: jax.tree.map(lambda x: x[:R], t))

    def real(tree):  # the real replicas of a device tree (checkpoints hold only these)
        return tree if Rp == R else take_real(tree)

    outputs.write_json(os.path.join(workdir, "replicas.json"), {
        "hyperparameters": table, "overrides": run_meta["overrides"],
        "train_images": member.sum(1), "strategy": cohort.strategy, "loop": cohort.loop})

    state = cohort.init(hp)
    best = {"params": state["params"], "batch_stats": state["batch_stats"]}
    best = jax.tree.map(jnp.copy, best)
    host = {"epoch": 0, "status": ["running"] * R, "best_epoch": [0] * R,
            "best_score": [-math.inf] * R, "best_val_loss": [math.inf] * R,
            "bad_evals": [0] * R, "best_metrics": [None] * R, "last_metrics": [None] * R,
            "stopped_epoch": [None] * R, "train_loss": [[] for _ in range(R)],
            "wall_time_s": 0.0}
    ckpt = checkpoint.CohortCheckpoints(os.path.join(workdir, "checkpoints"))
    if ckpt.latest_step() is not None:
        # Checkpoints hold the R real replicas, whatever the device count that wrote them.
        state, best, host = ckpt.restore(ckpt.latest_step(), real(state), real(best))
        state, best = (devices.place(devices.pad(devices.to_host(t), Rp), mesh)
                       for t in (state, best))
        logging.info("resumed from the checkpoint of epoch %d", host["epoch"])
    history = outputs.History(os.path.join(workdir, "history.jsonl"), host["epoch"])
    tb = outputs.TensorBoard(os.path.join(workdir, "tensorboard"), R)
    progress = outputs.Progress(E, R, label)
    every = max(int(config.eval.every), 1)
    patience = int(config.train.early_stopping)
    patience_start = int(config.train.early_stopping_start)
    monitor = config.train.early_stopping_monitor
    base_lr = table["optim.learning_rate"]
    # Reduce-on-plateau is fed only in the replicas whose schedule is "plateau".
    plateau_replicas = np.array([c.optim.schedule == "plateau" for c in replica_cfgs])

    for epoch in range(host["epoch"], E):
        if "running" not in host["status"]:
            break
        t0 = time.time()
        alive = np.array([s == "running" for s in host["status"]])
        scale = devices.to_host(state["plateau"].scale, R)
        factor = np.array([optim.schedule_factor(c.optim, epoch, E) for c in replica_cfgs])
        lr = base_lr * factor * scale
        plan = cohort.plan(hp["seed"], member_d, epoch)
        state, acc = cohort.run_epoch(state, hp, padded(lr.astype(np.float32), 0.0),
                                      padded(alive, False), plan, images, labels)
        acc = devices.to_host(acc, R)
        train_loss = np.where(acc["count"] > 0, acc["loss"] / np.maximum(acc["count"], 1),
                              np.nan)
        for r in np.flatnonzero(acc["bad"]):
            host["status"][r] = "diverged"
            host["stopped_epoch"][r] = epoch + 1
            logging.warning("replica %d diverged (non-finite loss or gradients) in epoch %d; "
                            "frozen at its last finite state", r, epoch + 1)
        for r in range(R):
            if alive[r]:
                host["train_loss"][r].append(float(train_loss[r]))
        records = []
        if (epoch + 1) % every == 0 or epoch + 1 == E:
            rows = evaluate(cohort, state, hp, val_split, int(config.eval.batch_size), config,
                            val_index, alive)
            improved = np.zeros(R, bool)
            for r, row in enumerate(rows):
                if not alive[r]:
                    continue  # frozen before this epoch: its metrics no longer change
                host["last_metrics"][r] = row
                score = _select_score(row, config.eval.select)
                if score > host["best_score"][r]:
                    host["best_score"][r], host["best_epoch"][r] = score, epoch + 1
                    host["best_metrics"][r] = row
                    improved[r] = host["status"][r] == "running"
                # The monitored value, lower is better ("best_val_loss": the name old
                # checkpoints hold it under).
                watched = -_select_score(row, monitor)
                if watched < host["best_val_loss"][r]:
                    host["best_val_loss"][r], host["bad_evals"][r] = watched, 0
                elif epoch + 1 > patience_start:
                    host["bad_evals"][r] += 1
                    if patience and host["bad_evals"][r] >= patience and \
                            host["status"][r] == "running":
                        host["status"][r], host["stopped_epoch"][r] = "stopped", epoch + 1
                records.append({"replica": r, "epoch": epoch + 1,
                                "train_loss": float(train_loss[r]), "lr": float(lr[r]),
                                "status": host["status"][r], **row})
                tb.write(r, epoch + 1, {"train/loss": float(train_loss[r]),
                                        "val/loss": row["loss"], "val/dice": row["dice"],
                                        "val/iou": row["iou"], "val/bf": row["bf"],
                                        "lr": float(lr[r])})
            if improved.any():
                best = cohort.keep_best(best, state, padded(improved, False))
            if plateau_replicas.any():
                feed = plateau_replicas & np.array([s == "running" for s in host["status"]])
                # Frozen replicas have no row (not evaluated) and are not fed.
                state = cohort.plateau(state, padded(np.array(
                    [r["loss"] if r else 0.0 for r in rows], np.float32), 0.0),
                                       padded(feed, False))
        history.append(records)
        host["epoch"] = epoch + 1
        host["wall_time_s"] += time.time() - t0  # training time, summed over resumptions
        if host["epoch"] == E:
            host["status"] = ["finished" if s == "running" else s for s in host["status"]]
        if host["epoch"] % max(int(config.train.checkpoint_every), 1) == 0 or host["epoch"] == E:
            ckpt.save(host["epoch"], real(state), real(best), outputs.jsonable(host))
        scores = [s if math.isfinite(s) else -math.inf for s in host["best_score"]]
        best_r = int(np.argmax(scores))
        best_dice = (host["best_metrics"][best_r] or {}).get("dice", math.nan)
        alive_now = sum(s in ("running", "finished") for s in host["status"])
        mean_loss = float(np.nanmean(train_loss)) if np.isfinite(train_loss).any() else math.nan
        progress.epoch_done(epoch + 1, time.time() - t0, alive_now, best_dice, best_r, mean_loss)

    if ckpt.latest_step() != host["epoch"]:  # every replica stopped before the last epoch
        ckpt.save(host["epoch"], real(state), real(best), outputs.jsonable(host))
    ckpt.close()
    tb.close()
    summary = {"replicas": [{
        "replica": r, "overrides": run_meta["overrides"][r] if r < len(run_meta["overrides"])
        else {}, "hyperparameters": {k: v[r] for k, v in table.items()},
        "status": host["status"][r], "best_epoch": host["best_epoch"][r],
        "stopped_epoch": host["stopped_epoch"][r], "best": host["best_metrics"][r],
        "last": host["last_metrics"][r]} for r in range(R)],
        "epochs": host["epoch"], "wall_time_s": host["wall_time_s"],
        "process_time_s": time.time() - t_start,
        "complete": host["epoch"] == E or "running" not in host["status"],
        "strategy": cohort.strategy, "loop": cohort.loop,
        # Replica-steps and evaluations this launch did not compute (stopped, diverged or
        # short replicas).
        "skipped_replica_steps": cohort.skipped, "skipped_replica_evals": cohort.skipped_evals}
    if cohort.skipped:
        logging.info("%sskipped %d idle replica-steps and %d evaluations of frozen replicas",
                     label, cohort.skipped, cohort.skipped_evals)
    outputs.write_json(os.path.join(workdir, "summary.json"), summary)
    return outputs.jsonable(summary)
