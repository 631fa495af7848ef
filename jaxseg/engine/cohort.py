"""The compiled cohort: R replicas with their own hyperparameters in one program.

:func:`build_cohort` is the one recipe that turns a cohort's config, its per-replica
overrides and the loaded data into a :class:`BuiltCohort`: the compiled functions
(:class:`Cohort`), the hyperparameter table and the per-replica training subsets, placed on
the devices. ``train``, ``bench`` and the tests all build cohorts through it.

A replica that stopped or diverged is frozen: its updates are masked out inside the step,
and a call in which no replica is alive and active is not made at all (exact, since such a
step changes nothing).
"""

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg import hparams, losses, metrics, optim
from jaxseg.data import datasets
from jaxseg.engine import devices, replicas
from jaxseg.engine.steps import STAGES, Static, epoch_plan, eval_step, init_replica, train_step
from jaxseg.models import create_model, pretrained


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
        num_volumes=len(data.val.volume_ids or []),
        side_weight=float(config.model.get("side_weight", 1.0)))


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
          mesh: a replica mesh (:func:`jaxseg.engine.devices.replica_mesh`) or None for one device.
            With D devices the device arrays hold ``padded`` replicas (R rounded up to a
            multiple of D; the extra ones are inert) and each device runs its own share.
        """
        self.static, self.R, self.steps, self.mesh = static, num_replicas, steps, mesh
        self.strategy = replicas.resolve_strategy(config.train.strategy)
        # sequential / chunked: the training programs below are one chunk's (one replica's
        # under sequential), called once per local chunk (``rounds``) on that chunk's own
        # buffers (see split_rounds); the other strategies take every replica in one call.
        self.chunk = replicas.chunk_size(self.strategy, config.train.get("chunk", 0))
        self.padded = devices.padded_size(num_replicas, mesh, self.chunk or 1)
        self.loop = replicas.resolve_loop(config.train.loop)
        B = int(config.train.batch_size)
        image_shape = data.train.images.shape[1:]
        local = self.padded // (1 if mesh is None else mesh.devices.size)
        seq, c = self.chunk > 0, max(self.chunk, 1)
        self.rounds = local // c if seq else 1
        # Replica-steps and replica-evaluations skipped as idle (see run_epoch, evaluate).
        self.local, self.skipped, self.skipped_evals = local, 0, 0
        # Seconds spent compiling the training program (run_epoch's first call), or None.
        self.compile_s = None
        over = functools.partial(replicas.over_replicas, strategy=self.strategy,
                                 num_replicas=local)
        pick = (lambda tree, r: replicas.take_chunk(tree, r, c)) if seq else lambda tree, r: tree
        rep, shared = devices.REPLICA, devices.SHARED
        placed = {} if mesh is None else {
            "out_shardings": jax.sharding.NamedSharding(mesh, rep)}
        self._init = jax.jit(jax.vmap(functools.partial(init_replica, static,
                                                        image_shape=image_shape)),
                             compiler_options=replicas.FAST_COMPILE, **placed)
        self.pretrained = config.model.get("pretrained", "")
        self._weights = pretrained.load(self.pretrained) if self.pretrained else None
        self.plan = jax.jit(jax.vmap(functools.partial(epoch_plan, batch_size=B, steps=steps),
                                     in_axes=(0, 0, None)), compiler_options=replicas.FAST_COMPILE,
                            **placed)
        # Why per-chunk rounds get buffers of their own: a step that reads its replica's
        # slice of the stacked state and writes it back (dynamic_update_slice) made XLA CPU
        # copy whole stacked Adam moments and parameters on every call (296 f32[R, ...]
        # copies at R=32, benchmarks/sequential_copies.py), so a call cost O(R) memory
        # traffic. Split once per epoch, each call touches only its chunk's state.
        self._split = self._join = None
        if seq:
            self._split = jax.jit(devices.shard_map(
                lambda tree: [jax.tree.map(lambda x, i=i: x[i:i + c], tree)
                              for i in range(0, local, c)],
                mesh, in_specs=(rep,), out_specs=rep), compiler_options=replicas.FAST_COMPILE)
            self._join = jax.jit(devices.shard_map(
                lambda trees: jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees),
                mesh, in_specs=(rep,), out_specs=rep), compiler_options=replicas.FAST_COMPILE)
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
        # Two evaluation programs (jit compiles each on its first call): ``full`` with the
        # boundary counts, and the per-epoch one without them (``eval.full_metrics``).
        self._eval, self._eval_each = {}, {}
        for full in (False, True):
            eval_r = over(functools.partial(eval_step, static, full))
            self._eval[full] = jax.jit(devices.shard_map(
                lambda state, hp, r, x, y, v, vol, box, f=eval_r: f(
                    pick((state, hp), r), (x, y, v, vol, box)),
                mesh, in_specs=(rep, rep) + (shared,) * 6, out_specs=(rep, rep)),
                compiler_options=fast)
            # k-fold cohorts: every replica is evaluated on its own held-out images.
            self._eval_each[full] = jax.jit(devices.shard_map(
                lambda state, hp, r, x, y, v, vol, box, f=eval_r: f(
                    pick((state, hp, x, y, v, vol, box), r), ()),
                mesh, in_specs=(rep, rep, shared) + (rep,) * 5, out_specs=(rep, rep)),
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
        self._take_real = jax.jit(lambda t: jax.tree.map(lambda x: x[:num_replicas], t))

    def init(self, hp: dict) -> dict:
        """The stacked initial state of the replicas (``model.pretrained``'s backbone loaded)."""
        state = self._init(hp)
        if self._weights is None:
            return state
        return {**state, **pretrained.load_into(
            {"params": state["params"], "batch_stats": state["batch_stats"]}, self._weights,
            self.pretrained)}

    @staticmethod
    def weights_of(state) -> dict:
        """A copy of a stacked state's ``params`` and ``batch_stats`` (the first best weights)."""
        return jax.tree.map(jnp.copy, {"params": state["params"],
                                       "batch_stats": state["batch_stats"]})

    def pad_vector(self, x, fill):
        """A host per-replica vector ``(R,)`` as a device array of ``padded`` entries."""
        x = np.asarray(x)
        full = np.concatenate([x, np.full((self.padded - self.R,), fill, x.dtype)])
        return devices.place(full, self.mesh)

    def real(self, tree):
        """The real replicas of a stacked device tree (checkpoints hold only these)."""
        return tree if self.padded == self.R else self._take_real(tree)

    def per_call(self, busy: np.ndarray) -> np.ndarray:
        """Per-replica flags ``(padded, ...)`` as per-call flags ``(rounds, ...)``: any replica.

        Under ``sequential`` / ``chunked`` call r steps chunk r of every device (device d's
        local replicas r * chunk ... are replicas d * local + r * chunk ...); under the other
        strategies one call steps them all.
        """
        busy = np.asarray(busy).reshape(-1, self.local, *busy.shape[1:]).any(0)
        return busy.reshape(self.rounds, -1, *busy.shape[1:]).any(1)

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

        Under ``sequential`` / ``chunked`` round ``r`` holds chunk ``r`` of every device's
        share (leading axis: devices x chunk); otherwise the one round is ``tree`` itself.
        """
        return [tree] if self._split is None else self._split(tree)

    def join_rounds(self, trees: list):
        """The inverse of :meth:`split_rounds`: one stack in replica order."""
        return trees[0] if self._join is None else self._join(trees)

    def zero_acc(self) -> dict:
        """An epoch's fresh accumulators ``{"loss", "count", "bad"}`` (device, padded)."""
        # Separate buffers: the accumulators are donated, and one buffer cannot be donated twice.
        return devices.place({"loss": np.zeros((self.padded,), np.float32),
                              "count": np.zeros((self.padded,), np.float32),
                              "bad": np.zeros((self.padded,), bool)}, self.mesh)

    def step_args(self, state, acc, hp, lr, alive, plan) -> list[list]:
        """The per-replica arguments of the step program, one list per round.

        Each list is ``[state, acc, hp, lr, alive, index, active, keys]``; the step returns
        the first two, which the caller writes back in place.
        """
        return [list(part) for part in self.split_rounds((state, acc, hp, lr, alive, *plan))]

    def lower_step(self, args: list, images, labels):
        """The step program lowered for one round's ``args`` (for ahead-of-time compiling)."""
        return self.step.lower(*args, 0, images, labels)

    def _compile(self, args: list, images, labels) -> None:
        """Compiles the training program before its first call; sets ``compile_s``.

        Why ahead of the call: a call's compile would otherwise hide inside the first
        epoch's step time (the sweep's per-replica step then read ~20% slower than
        ``jaxseg bench``'s, docs/benchmarks.md). jit keeps the compiled program, so the
        first call runs it without compiling again; with a warm persistent cache this
        loads it.
        """
        t0 = time.perf_counter()
        if self.loop == "step":
            self.lower_step(args, images, labels).compile()
        else:
            self.epoch.lower(*args, images, labels).compile()
        self.compile_s = time.perf_counter() - t0

    def run_epoch(self, state, hp, lr, alive, plan, images, labels):
        """Runs one epoch's steps, skipping idle calls; returns ``(state, acc)`` (acc on device).

        ``skipped`` counts the replica-steps skipped so far (calls times replicas per call).
        Under ``sequential`` the stacked ``state`` is consumed (its buffers are deleted once
        split into rounds), as a donated argument would be. The first call compiles the
        training program first and records how long that took in ``compile_s``.
        """
        idle = self.idle(alive, plan[1])
        self.skipped += int(idle.sum()) * (self.padded // self.rounds)
        acc = self.zero_acc()
        rounds = self.step_args(state, acc, hp, lr, alive, plan)
        if self.compile_s is None:
            self._compile(rounds[0], images, labels)
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
        return replicas.stack_rounds([outs.get(r, filler) for r in range(self.rounds)],
                                     max(self.chunk, 1))

    def eval(self, state, hp, images, labels, valid, volume, region, busy=None, full=True):
        """Metrics and predictions of every replica on one shared evaluation batch.

        ``busy``: ``(rounds,)`` host bools from :meth:`per_call`, or None for all;
        ``full``: with boundary counts (see :func:`jaxseg.engine.steps.eval_step`).
        """
        fn = self._eval[bool(full)]
        return self._rounds(lambda r: fn(state, hp, r, images, labels, valid, volume, region),
                            busy)

    def eval_each(self, state, hp, images, labels, valid, volume, region, busy=None,
                  full=True):
        """Metrics and predictions of every replica on its own batch (leading axis R)."""
        fn = self._eval_each[bool(full)]
        return self._rounds(lambda r: fn(state, hp, r, images, labels, valid, volume, region),
                            busy)


@dataclasses.dataclass
class BuiltCohort:
    """A cohort ready to train: its compiled functions, hyperparameters and data, placed.

    Device arrays hold ``cohort.padded`` replicas (inert copies of replica 0 pad R to a
    multiple of the device count); host arrays hold the R real ones.

    Attributes:
      cohort: the compiled functions.
      configs: each replica's resolved config.
      table: the hyperparameter table ``{field: (R,) array}`` (host).
      hp: the table on the devices (integer fields as int32).
      member: ``(R, N)`` host bools, the training images of each replica.
      member_d: ``member`` on the devices.
      source: the split trained on (``train``, or the pooled images under k-fold).
      val: the split evaluated on.
      val_index: None, or each replica's own indices into ``val`` (k-fold: its held-out fold).
      images: ``source.images`` on the devices (replicated).
      labels: ``source.labels`` on the devices (replicated).
    """

    cohort: Cohort
    configs: list
    table: dict
    hp: dict
    member: np.ndarray
    member_d: jax.Array
    source: datasets.Split
    val: datasets.Split
    val_index: list | None
    images: jax.Array
    labels: jax.Array

    @property
    def folds(self) -> list[int]:
        """The held-out folds of the replicas (empty without k-fold)."""
        if self.val_index is None:
            return []
        return sorted({int(c.data.fold) for c in self.configs})


def build_cohort(config: ml_collections.ConfigDict, overrides: list[dict] | None,
                 data: datasets.SegData) -> BuiltCohort:
    """Builds a cohort of ``len(overrides)`` replicas of ``config`` on ``data``.

    The config is expected to have passed :func:`jaxseg.validation.validate`; nothing is
    compiled yet (``jax.jit`` compiles on the first call).

    Args:
      config: the cohort's static config (``train.devices`` picks the replica mesh).
      overrides: one dict of numeric dotted overrides per replica (None: one replica).
      data: the loaded dataset.

    Returns:
      The built cohort.
    """
    replica_cfgs = hparams.replica_configs(config, overrides or [{}])
    table = hparams.table(replica_cfgs)
    R = len(replica_cfgs)
    if int(config.data.folds):  # k-fold: train on the pool minus each replica's held-out fold
        fold = np.array([int(c.data.fold) for c in replica_cfgs])
        source, val = data.pool, data.pool
        allowed = data.fold_of[None, :] != fold[:, None]
        val_index = [np.flatnonzero(data.fold_of == f) for f in fold]
    else:
        source, val, val_index = data.train, data.val, None
        allowed = np.ones((R, len(source)), bool)
    member = subset_members(allowed, table["data.fraction"], table["data.subset_seed"])
    steps = int(math.ceil(member.sum(1).max() / int(config.train.batch_size)))
    mesh = devices.replica_mesh(int(config.train.devices))
    cohort = Cohort(config, build_static(config, data, table), R, steps, data, mesh)
    Rp = cohort.padded
    hp = devices.place(devices.pad({k: v.astype(np.int32) if v.dtype.kind == "i" else v
                                    for k, v in table.items()}, Rp), mesh)
    images, labels = devices.place((source.images, source.labels), mesh, devices.SHARED)
    return BuiltCohort(cohort=cohort, configs=replica_cfgs, table=table, hp=hp, member=member,
                       member_d=devices.place(devices.pad(member, Rp), mesh), source=source,
                       val=val, val_index=val_index, images=images, labels=labels)
