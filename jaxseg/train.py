"""``train_and_evaluate``: one cohort of replicas from config to summary, resumable.

The wiring of the engine (:mod:`jaxseg.engine`: the compiled cohort, evaluation and the
replica tracker), the workdir (:mod:`jaxseg.workdir`: its files, guard and lock) and the
outputs (:mod:`jaxseg.outputs`: history, TensorBoard, progress). A single run is a cohort
of one replica; there is one engine (``docs/design.md``).

Per epoch the host sets every replica's learning rate (base x schedule x plateau scale),
runs the steps, evaluates every ``eval.every`` epochs, lets the tracker decide who
diverged, improved, stopped or finished, keeps the best weights, feeds reduce-on-plateau,
writes history and checkpoints. Frozen replicas no longer change. Under
``eval.full_metrics=best`` the epochs' evaluations leave out boundary F1, HD95 and each
case's Dice, and the best weights are evaluated with them once training ends.

The summary's ``time_s`` splits this launch's wall time into the training program's
compile, the steps, the evaluations (their programs' first calls compile them), the
checkpoints and the rest (history, TensorBoard, progress, host bookkeeping).

:func:`cohort_training` is the same training as a generator that pauses at each rung of a
grid-wide successive halving (``train.halving.group=grid``): it yields a :class:`Rung`
(the replicas' scores) and goes on with the replicas the sweep sends back pruned.
"""

import dataclasses
import json
import os
import time
from collections.abc import Generator

import ml_collections
import numpy as np
from absl import logging

from jaxseg import checkpoint, configs, hparams, optim, outputs, validation
from jaxseg import workdir as workdir_lib
from jaxseg.data import datasets
from jaxseg.engine import autotune, devices, halving
from jaxseg.engine.cohort import build_cohort
from jaxseg.engine.evaluate import CASE_DICE, evaluate
from jaxseg.engine.tracker import Policy, Tracker


@dataclasses.dataclass
class Rung:
    """A cohort paused at a rung of a grid-wide successive halving.

    Attributes:
      epoch: the rung's epoch (evaluated; best weights and plateau not yet updated).
      rank_best: each replica's best value so far of the halving metric.
      running: each replica's ``running`` flag (those that compete).
    """

    epoch: int
    rank_best: list
    running: list


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       overrides: list[dict] | None = None, label: str = "") -> dict:
    """Trains a cohort of replicas and evaluates it every ``eval.every`` epochs.

    While it trains, ``workdir/lock.json`` names this process, so ``jaxseg inspect`` can
    tell a running cohort from an interrupted one. A cohort trained alone is its own grid:
    under ``train.halving.group=grid`` its rungs rank its own configurations.

    Args:
      config: the cohort's (static) config.
      workdir: where checkpoints, history, summary and TensorBoard files go; a
        workdir with a checkpoint is resumed.
      overrides: one dict of numeric dotted overrides per replica (default: one replica).
      label: a prefix for progress lines.

    Returns:
      The summary (also written to ``workdir/summary.json``).
    """
    overrides = overrides or [{}]
    groups = halving.configuration_groups(overrides)
    training = cohort_training(config, workdir, overrides, label)
    try:
        rung = next(training)
        while True:
            pruned, _, _ = halving.rung_decision(groups, rung.rank_best, rung.running,
                                                 int(config.train.halving.eta))
            rung = training.send(pruned)
    except StopIteration as done:
        return done.value


def cohort_training(config: ml_collections.ConfigDict, workdir: str,
                    overrides: list[dict] | None = None,
                    label: str = "") -> Generator[Rung, list, dict]:
    """:func:`train_and_evaluate` as a generator that pauses at grid-wide halving rungs.

    Under ``train.halving.group=grid`` it yields a :class:`Rung` after each rung's
    evaluation and expects the replicas to prune (indices) sent back; otherwise it never
    yields. The time it waits paused is not counted as this cohort's.

    Returns:
      The summary, as the generator's return value.
    """
    try:
        return (yield from _train_and_evaluate(config, workdir, overrides or [{}], label))
    finally:
        workdir_lib.remove_lock(workdir)


def _train_and_evaluate(config, workdir, overrides, label):
    t_start = time.time()
    configs.resolve_classes(config)
    validation.validate(config, overrides)
    os.makedirs(workdir, exist_ok=True)
    identity = {"config": configs.identity(config), "overrides": [dict(o) for o in overrides]}
    workdir_lib.guard(workdir, workdir_lib.RUN, identity, "run", write=False)
    workdir_lib.acquire_lock(workdir)

    data = datasets.load(config.data)
    validation.check_data(config, data)
    workdir_lib.guard(workdir, workdir_lib.RUN, identity, "run")
    choice = _strategy(config, workdir, data, len(overrides))
    config = hparams.apply_overrides(config, {"train.strategy": choice.strategy,
                                              "train.chunk": choice.chunk})
    built = build_cohort(config, overrides, data)
    cohort, table, R = built.cohort, built.table, built.cohort.R
    mesh, E = cohort.mesh, int(config.train.epochs)
    logging.info("cohort: %d replica(s), strategy %s, loop %s, %d steps/epoch, %d train / "
                 "%d val images%s%s", R, cohort.strategy, cohort.loop, cohort.steps,
                 int(built.member.sum(1).max()),
                 max(len(i) for i in built.val_index or [built.val.ids]),
                 f" ({int(config.data.folds)}-fold cross-validation, folds {built.folds})"
                 if built.folds else "", "" if mesh is None else
                 f"; replicas sharded over {mesh.devices.size} devices"
                 + (f" (+{cohort.padded - R} inert padding replicas)"
                    if cohort.padded > R else ""))
    outputs.write_json(os.path.join(workdir, workdir_lib.REPLICAS), {
        "hyperparameters": table, "overrides": identity["overrides"],
        "train_images": built.member.sum(1), "strategy": cohort.strategy,
        "loop": cohort.loop, "strategy_choice": choice.to_json()})

    hp = built.hp
    state = cohort.init(hp)
    best = cohort.weights_of(state)
    policy = Policy.from_config(config, overrides)
    track = Tracker.start(policy, R)
    ckpt = checkpoint.CohortCheckpoints(os.path.join(workdir, workdir_lib.CHECKPOINTS))
    # Checkpoints hold the R real replicas, whatever the device count that wrote them; a
    # damaged newest step is set aside and the one before it used.
    step, restored = ckpt.restore_newest(
        lambda s: ckpt.restore(s, cohort.real(state), cohort.real(best)),
        set_aside=outputs.is_writer())
    if step is not None:
        state, best, record = restored
        state, best = (devices.place(devices.pad(devices.to_host(t), cohort.padded), mesh)
                       for t in (state, best))
        track = Tracker.from_json(record, policy)
        logging.info("resumed from the checkpoint of epoch %d", track.epoch)
    history = outputs.History(os.path.join(workdir, workdir_lib.HISTORY), track.epoch)
    tb = outputs.TensorBoard(os.path.join(workdir, workdir_lib.TENSORBOARD), R)
    progress = outputs.Progress(E, R, label)
    every = max(int(config.eval.every), 1)
    # The training loss above which a replica has diverged: healthy runs of the loss study
    # never exceeded 1.39 per unit of loss weight (docs/design.md §7).
    weights = sum(table[k] for k in table if k.startswith("loss.weights."))
    bound = float(config.train.divergence_loss) * np.maximum(weights, 1.0)
    # Reduce-on-plateau is fed only in the replicas whose schedule is "plateau".
    plateau = np.array([c.optim.schedule == "plateau" for c in built.configs])

    full_every = config.eval.full_metrics == "every"
    phases = dict.fromkeys(("compile", "steps", "evaluate", "checkpoint", "epochs"), 0.0)

    def save():
        t = time.perf_counter()
        ckpt.save(track.epoch, cohort.real(state), cohort.real(best),
                  outputs.jsonable(track.to_json()))
        phases["checkpoint"] += time.perf_counter() - t

    horizon = int(config.train.schedule_epochs) or E  # what the schedule spans
    for epoch in range(track.epoch + 1, E + 1):  # 1-based: the epoch being trained
        if not track.alive.any():
            break
        t0, tp = time.time(), time.perf_counter()
        alive = track.alive
        scale = devices.to_host(state["plateau"].scale, R)
        factor = np.array([optim.schedule_factor(c.optim, epoch - 1, horizon)
                           for c in built.configs])
        lr = table["optim.learning_rate"] * factor * scale
        plan = cohort.plan(hp["seed"], built.member_d, epoch - 1)
        state, acc = cohort.run_epoch(state, hp, cohort.pad_vector(lr.astype(np.float32), 0.0),
                                      cohort.pad_vector(alive, False), plan, built.images,
                                      built.labels)
        acc = devices.to_host(acc, R)  # waits for the epoch's steps
        elapsed = time.perf_counter() - tp
        compiled_now = not phases["compile"] and cohort.compile_s  # this launch's first epoch
        if compiled_now:
            phases["compile"] = cohort.compile_s
            elapsed -= cohort.compile_s
        phases["steps"] += elapsed
        train_loss = np.where(acc["count"] > 0, acc["loss"] / np.maximum(acc["count"], 1),
                              np.nan)
        track.diverged(acc["bad"], epoch)
        track.trained(alive, train_loss, epoch, bound)
        records = []
        if epoch % every == 0 or epoch == E or epoch in policy.rungs:  # rungs rank evaluations
            te = time.perf_counter()
            rows = evaluate(cohort, state, hp, built.val, int(config.eval.batch_size), config,
                            built.val_index, alive, full=full_every)
            phases["evaluate"] += time.perf_counter() - te
            improved = track.evaluated(rows, epoch)
            if epoch in policy.rungs and policy.group == "grid":
                paused = time.perf_counter()
                track.prune((yield Rung(epoch, [rec.rank_best for rec in track.replicas],
                                        list(track.alive))), epoch)
                paused = time.perf_counter() - paused  # other cohorts' training, not this one's
                t0, t_start, tp = t0 + paused, t_start + paused, tp + paused
            for r, row in enumerate(rows):
                if row is None:
                    continue  # frozen before this epoch: its metrics no longer change
                records.append({"replica": r, "epoch": epoch, "train_loss": float(train_loss[r]),
                                "lr": float(lr[r]), "status": track.replicas[r].status,
                                **{k: v for k, v in row.items() if k != CASE_DICE}})
                tb.write(r, epoch, {"train/loss": float(train_loss[r]), "lr": float(lr[r]),
                                    **{f"val/{k}": row[k] for k in ("loss", "dice", "iou", "bf")
                                       if k in row}})
            if improved.any():
                best = cohort.keep_best(best, state, cohort.pad_vector(improved, False))
            if plateau.any():
                state = cohort.plateau(state, cohort.pad_vector(np.array(
                    [r["loss"] if r else 0.0 for r in rows], np.float32), 0.0),
                                       cohort.pad_vector(track.plateau_feed(plateau), False))
        history.append(records)
        track.epoch_done(epoch, time.time() - t0)
        # The last epoch's checkpoint (E, or the epoch after which no replica runs) is
        # written below, with the best weights' full metrics.
        if (epoch % max(int(config.train.checkpoint_every), 1) == 0 and epoch != E
                and track.alive.any()):
            save()
        leader, leader_dice = track.leader()
        healthy = np.array([s in ("running", "finished") for s in track.status])
        # The mean over the replicas that trained this epoch (also those it stopped or
        # pruned at its end), but the diverged: their loss would swamp it.
        shown = np.where(np.array([s != "diverged" for s in track.status]), train_loss, np.nan)
        mean_loss = float(np.nanmean(shown)) if np.isfinite(shown).any() else np.nan
        alive_now = int(healthy.sum())
        progress.epoch_done(epoch, time.time() - t0, alive_now, leader_dice, leader, mean_loss,
                            compile_s=cohort.compile_s if compiled_now else 0.0)
        phases["epochs"] += time.perf_counter() - tp

    in_loop = dict(phases)
    tf = time.perf_counter()
    pending = track.needs_full_metrics()
    if pending.any():  # the full metric set of every best epoch, on the kept weights
        track.add_full_metrics(evaluate(cohort, best, hp, built.val,
                                        int(config.eval.batch_size), config, built.val_index,
                                        pending, full=True))
    if ckpt.latest_step() != track.epoch or pending.any():
        save()
    ckpt.close()
    tb.close()
    summary = {"replicas": track.replica_summaries(identity["overrides"], table),
               "epochs": track.epoch, "wall_time_s": track.wall_time_s,
               "process_time_s": time.time() - t_start, "complete": track.complete,
               "strategy": cohort.strategy, "loop": cohort.loop,
               "strategy_choice": choice.to_json(),
               # This launch's wall time in its epochs, by phase, and after them (the best
               # weights' full evaluation and the last checkpoint).
               "time_s": {**in_loop, "other": in_loop["epochs"] - in_loop["compile"]
                          - in_loop["steps"] - in_loop["evaluate"] - in_loop["checkpoint"],
                          "final": time.perf_counter() - tf},
               "halving": {"rungs": list(policy.rungs), "eta": policy.eta,
                           "metric": policy.rank, "group": policy.group}
               if policy.rungs else None,
               # Each replica's own training, summed over launches: its epochs trained
               # times its steps per epoch (under vmap/unroll the device also steps frozen
               # and short replicas, masked; under sequential it skips them).
               "replica_steps": int(sum(len(rec.train_loss) * int(n) for rec, n in zip(
                   track.replicas, np.ceil(built.member.sum(1) / int(config.train.batch_size)),
                   strict=True))),
               # Replica-steps and evaluations this launch did not compute (stopped,
               # diverged or short replicas).
               "skipped_replica_steps": cohort.skipped,
               "skipped_replica_evals": cohort.skipped_evals}
    if cohort.skipped:
        logging.info("%sskipped %d idle replica-steps and %d evaluations of frozen replicas",
                     label, cohort.skipped, cohort.skipped_evals)
    outputs.write_json(os.path.join(workdir, workdir_lib.SUMMARY), summary)
    return outputs.jsonable(summary)


def _strategy(config, workdir: str, data, num_replicas: int) -> autotune.Choice:
    """The cohort's replica strategy: the one its first launch chose, or chosen now.

    A resumed ``auto`` cohort keeps the strategy recorded in ``replicas.json`` (the same
    programs as before the interruption, whatever the cache holds now).
    """
    t = config.train
    path = os.path.join(workdir, workdir_lib.REPLICAS)
    if t.strategy == "auto" and os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f).get("strategy_choice")
        if recorded:
            return autotune.Choice(recorded["strategy"], int(recorded["chunk"]), "resumed",
                                   recorded.get("timings", {}))
    devices_n = devices.device_count(t.devices)
    train_images = len(data.pool) if int(config.data.folds) else len(data.train)
    return autotune.choose(config, data, -(-num_replicas // devices_n),
                           -(-train_images // int(t.batch_size)))
