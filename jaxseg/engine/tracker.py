"""The replica tracker: where each replica of a cohort stands, and the rules that move it.

Every per-replica decision of the training loop is made here, on the host, from the
numbers the device returns: divergence (a non-finite loss or gradient, or a training loss
above ``train.divergence_loss`` times the sum of the loss weights, freezes a replica),
the best epoch (``eval.select``: the weights kept as "best"), early stopping
(``train.early_stopping`` evaluations without a better ``train.early_stopping_monitor``,
counted from epoch ``train.early_stopping_start``), which replicas feed
reduce-on-plateau, successive halving (``train.halving``: :mod:`jaxseg.engine.halving`)
and the end of training. The tracker is saved with every checkpoint
(:meth:`Tracker.to_json`) and read back on resume, by ``inspect``, ``predict`` and
``report``, so those rules and that record live in one place.

A replica's status is ``running`` until it ``diverged``, ``stopped`` (early), was
``pruned`` (by successive halving, at a rung) or ``finished`` (trained every epoch). A
frozen replica (any status but ``running``) is no longer stepped or evaluated, and its
record no longer changes.
"""

import dataclasses
import math

import numpy as np
from absl import logging

from jaxseg.engine import halving

# A validation row's per-case Dice (only in the full metric set: jaxseg.engine.evaluate).
CASE_DICE = "case_dice"
RUNNING, FINISHED, STOPPED, DIVERGED, PRUNED = ("running", "finished", "stopped", "diverged",
                                                "pruned")
# volume_dice (each volume's 3-D Dice, averaged: the ACDC protocol) needs volume splits.
SELECT = ("dice", "dice_image", "volume_dice", "loss")
MONITOR = ("dice", "volume_dice", "loss")
PER_VOLUME = "volume_dice"


def score(row: dict, metric: str) -> float:
    """A validation row's value of ``metric``, higher is better (the loss is negated)."""
    return -row["loss"] if metric == "loss" else row[metric]


@dataclasses.dataclass(frozen=True)
class Policy:
    """The rules of a cohort (static; from its config).

    Attributes:
      epochs: the epochs asked for.
      select: the metric whose best epoch gives the kept weights (``eval.select``).
      monitor: the metric early stopping watches (``train.early_stopping_monitor``).
      patience: evaluations without improvement before a replica stops (0: never).
      start: the epoch after which evaluations without improvement count.
      rungs: the successive-halving rungs (epochs; empty: no halving).
      eta: the halving's reduction factor.
      rank: the metric configurations are ranked by at a rung (each replica's best so far).
      groups: each replica's configuration (:func:`jaxseg.engine.halving.configuration_groups`).
      group: who competes at a rung: ``cohort`` (the tracker decides) or ``grid`` (the
        sweep decides over every cohort; the tracker only applies it: :meth:`prune`).
    """

    epochs: int
    select: str = "dice"
    monitor: str = "loss"
    patience: int = 0
    start: int = 0
    rungs: tuple = ()
    eta: int = 3
    rank: str = "dice"
    groups: tuple = ()
    group: str = "cohort"

    @classmethod
    def from_config(cls, config, overrides: list[dict] | None = None) -> "Policy":
        """The policy of a cohort's config and its replicas' overrides."""
        t, h = config.train, config.train.halving
        return cls(epochs=int(t.epochs), select=config.eval.select,
                   monitor=t.early_stopping_monitor, patience=int(t.early_stopping),
                   start=int(t.early_stopping_start),
                   rungs=halving.rungs(int(t.epochs), int(h.min_epochs), int(h.eta)),
                   eta=int(h.eta), rank=h.metric or config.eval.select,
                   groups=halving.configuration_groups(overrides or [{}]),
                   group=h.group)


@dataclasses.dataclass
class ReplicaRecord:
    """One replica's record.

    Attributes:
      status: ``running`` | ``finished`` | ``stopped`` | ``diverged`` | ``pruned``.
      best_epoch: the epoch of the best ``select`` score (0: none yet).
      best_score: that score (higher is better; -inf: none yet).
      best_monitored: the lowest monitored value so far (the monitor negated when higher
        is better; inf: none yet). Checkpoints before 2026-12 hold it as ``best_val_loss``.
      bad_evals: evaluations since the monitored value last improved (after ``start``).
      best_metrics: the validation metrics at ``best_epoch``.
      last_metrics: the latest validation metrics.
      stopped_epoch: the epoch it stopped, diverged or was pruned in (None while it trains
        or finished).
      train_loss: its mean training loss of every epoch it trained.
      rank_best: its best value so far of the halving metric (higher is better; -inf: none).
    """

    status: str = RUNNING
    best_epoch: int = 0
    best_score: float = -math.inf
    best_monitored: float = math.inf
    bad_evals: int = 0
    best_metrics: dict | None = None
    last_metrics: dict | None = None
    stopped_epoch: int | None = None
    train_loss: list = dataclasses.field(default_factory=list)
    rank_best: float = -math.inf


# The record's fields as the checkpoint's JSON holds them: one list per field, a value per
# replica (the layout every jaxseg checkpoint has used).
_FIELDS = tuple(f.name for f in dataclasses.fields(ReplicaRecord))
_RENAMED = {"best_monitored": "best_val_loss"}  # new name: the name old checkpoints use
# JSON has no infinities: a missing value (None) reads back as its field's start value.
_START = {"best_score": -math.inf, "best_monitored": math.inf, "rank_best": -math.inf}


@dataclasses.dataclass
class Tracker:
    """Every replica's record and the epoch the cohort reached.

    Attributes:
      replicas: one record per replica.
      epoch: epochs done.
      wall_time_s: training time, summed over resumptions.
      policy: the rules (None for a tracker only read, e.g. by ``inspect``).
    """

    replicas: list[ReplicaRecord]
    epoch: int = 0
    wall_time_s: float = 0.0
    policy: Policy | None = None

    @classmethod
    def start(cls, policy: Policy, num_replicas: int) -> "Tracker":
        """A new cohort's tracker: every replica running, nothing evaluated."""
        return cls([ReplicaRecord() for _ in range(num_replicas)], policy=policy)

    @property
    def alive(self) -> np.ndarray:
        """``(R,)`` bools: the replicas still training."""
        return np.array([r.status == RUNNING for r in self.replicas])

    @property
    def status(self) -> list[str]:
        """Every replica's status."""
        return [r.status for r in self.replicas]

    @property
    def complete(self) -> bool:
        """Whether the cohort is done: every epoch trained, or no replica left running."""
        return self.epoch == self.policy.epochs or not self.alive.any()

    def diverged(self, bad: np.ndarray, epoch: int) -> None:
        """Freezes the replicas whose loss or gradients were non-finite in ``epoch`` (1-based)."""
        for r in np.flatnonzero(bad):
            self.replicas[r].status, self.replicas[r].stopped_epoch = DIVERGED, epoch
            logging.warning("replica %d diverged (non-finite loss or gradients) in epoch %d; "
                            "frozen at its last finite state", r, epoch)

    def trained(self, alive: np.ndarray, train_loss: np.ndarray, epoch: int,
                bound: np.ndarray | None = None) -> None:
        """Records the epoch's mean training loss of the replicas that trained in it.

        A replica whose loss is finite but above its ``bound`` has diverged without becoming
        NaN (an exploding learning rate) and is frozen like a non-finite one.

        Args:
          alive: ``(R,)`` the replicas that trained in this epoch.
          train_loss: ``(R,)`` their mean training loss.
          epoch: the epoch (1-based).
          bound: ``(R,)`` the largest plausible loss (None or 0: no bound).
        """
        for r in np.flatnonzero(alive):
            loss = float(train_loss[r])
            self.replicas[r].train_loss.append(loss)
            rec = self.replicas[r]
            if bound is not None and bound[r] > 0 and loss > bound[r] and rec.status == RUNNING:
                rec.status, rec.stopped_epoch = DIVERGED, epoch
                logging.warning("replica %d diverged in epoch %d: its training loss %.3g is "
                                "above train.divergence_loss's bound %.3g; frozen", r, epoch,
                                loss, bound[r])

    def evaluated(self, rows: list[dict | None], epoch: int) -> np.ndarray:
        """Applies the best-epoch and early-stopping rules to one evaluation.

        Args:
          rows: each replica's validation metrics (None: not evaluated, it was frozen
            before this epoch). A replica that diverged during the epoch still has its row.
          epoch: the epoch just evaluated (1-based).

        Returns:
          ``(R,)`` bools: the replicas whose current weights become their best.
        """
        p = self.policy
        improved = np.zeros(len(self.replicas), bool)
        for r, (rec, row) in enumerate(zip(self.replicas, rows, strict=True)):
            if row is None:
                continue
            rec.last_metrics = row
            s = score(row, p.select)
            if s > rec.best_score:
                rec.best_score, rec.best_epoch, rec.best_metrics = s, epoch, row
                improved[r] = rec.status == RUNNING
            rec.rank_best = max(rec.rank_best, score(row, p.rank))
            watched = -score(row, p.monitor)  # lower is better
            if watched < rec.best_monitored:
                rec.best_monitored, rec.bad_evals = watched, 0
            elif epoch > p.start:
                rec.bad_evals += 1
                if p.patience and rec.bad_evals >= p.patience and rec.status == RUNNING:
                    rec.status, rec.stopped_epoch = STOPPED, epoch
        if epoch in p.rungs and p.group == "cohort":
            self.halve(epoch)
        return improved

    def halve(self, epoch: int) -> list[int]:
        """A successive-halving rung: prunes the configurations outside the top ``1/eta``.

        The configurations with a replica still running compete, each scored by the mean of
        its replicas' ``rank_best`` (seeds and folds together; a replica that diverged keeps
        the score it had). Every running replica of a configuration that does not go on
        becomes ``pruned``; its best weights stay as they are.

        Returns:
          The replicas pruned.
        """
        p = self.policy
        # No groups given (a policy built by hand): each replica is its own configuration.
        groups = list(p.groups or range(len(self.replicas)))
        pruned, scores, kept = halving.rung_decision(
            groups, [rec.rank_best for rec in self.replicas], self.alive, p.eta)
        self.prune(pruned, epoch)
        if scores:
            logging.info("successive halving at epoch %d: %d of %d configurations go on (by "
                         "mean best %s: %s); %d replica(s) pruned", epoch, len(kept),
                         len(scores), p.rank, ", ".join(f"{g}:{scores[g]:.4f}" for g in sorted(
                             kept, key=lambda g: -scores[g])), len(pruned))
        return pruned

    def prune(self, replicas, epoch: int) -> None:
        """Marks the given replicas ``pruned`` in ``epoch`` (those still running)."""
        for r in replicas:
            if self.replicas[r].status == RUNNING:
                self.replicas[r].status, self.replicas[r].stopped_epoch = PRUNED, epoch

    def needs_full_metrics(self) -> np.ndarray:
        """``(R,)`` bools: replicas with a best epoch whose record lacks the full metric set."""
        return np.array([rec.best_metrics is not None and CASE_DICE not in rec.best_metrics
                         for rec in self.replicas])

    def add_full_metrics(self, rows: list[dict | None]) -> None:
        """Adds the full metric set of each replica's best weights to its best record.

        The values the best epoch's own evaluation gave (Dice, loss, ...) are kept as
        they were, so the record agrees with the history; the full set adds boundary F1,
        HD95 and each case's Dice.

        Args:
          rows: per replica, the full evaluation of its best weights, or None.
        """
        for rec, row in zip(self.replicas, rows, strict=True):
            if row is not None and rec.best_metrics is not None:
                rec.best_metrics = {**row, **rec.best_metrics}

    def plateau_feed(self, plateau: np.ndarray) -> np.ndarray:
        """Which replicas' reduce-on-plateau states take this evaluation.

        Those on a ``plateau`` schedule that are still running (frozen ones have no new value).
        """
        return np.asarray(plateau, bool) & self.alive

    def epoch_done(self, epoch: int, seconds: float) -> None:
        """Closes ``epoch`` (1-based): replicas running after the last epoch are finished."""
        self.epoch = epoch
        self.wall_time_s += seconds
        if epoch == self.policy.epochs:
            for rec in self.replicas:
                if rec.status == RUNNING:
                    rec.status = FINISHED

    def leader(self) -> tuple[int, float]:
        """The replica with the best score so far and its validation Dice (for progress)."""
        scores = [r.best_score if math.isfinite(r.best_score) else -math.inf
                  for r in self.replicas]
        r = int(np.argmax(scores))
        return r, (self.replicas[r].best_metrics or {}).get("dice", math.nan)

    def replica_summaries(self, overrides: list[dict], table: dict) -> list[dict]:
        """The per-replica part of ``summary.json``."""
        return [{"replica": r, "overrides": overrides[r] if r < len(overrides) else {},
                 "hyperparameters": {k: v[r] for k, v in table.items()},
                 "status": rec.status, "best_epoch": rec.best_epoch,
                 "stopped_epoch": rec.stopped_epoch, "best": rec.best_metrics,
                 "last": rec.last_metrics} for r, rec in enumerate(self.replicas)]

    def to_json(self) -> dict:
        """The checkpoint's record: ``{"epoch", "wall_time_s", field: [per replica]}``."""
        out = {"epoch": self.epoch, "wall_time_s": self.wall_time_s}
        for name in _FIELDS:
            out[name] = [getattr(rec, name) for rec in self.replicas]
        return out

    @classmethod
    def from_json(cls, data: dict, policy: Policy | None = None) -> "Tracker":
        """Reads :meth:`to_json`'s record (also an old checkpoint's, migrating its names).

        Args:
          data: the record.
          policy: the rules, to go on training (None: only to read).

        Returns:
          The tracker.
        """
        n = len(data["status"])
        kwargs = [{} for _ in range(n)]  # fields an old record lacks keep their start value
        for name in _FIELDS:
            values = data.get(name, data.get(_RENAMED.get(name, name)))
            for r, v in enumerate(values if values is not None else []):
                kwargs[r][name] = _START[name] if v is None and name in _START else v
        records = [ReplicaRecord(**kw) for kw in kwargs]
        return cls(records, int(data["epoch"]), float(data.get("wall_time_s", 0.0)), policy)

    @classmethod
    def from_summary(cls, summary: dict) -> "Tracker":
        """The (read-only) tracker of a finished cohort, from its ``summary.json``."""
        records = [ReplicaRecord(status=r["status"], best_epoch=r["best_epoch"],
                                 best_metrics=r["best"], last_metrics=r.get("last"),
                                 stopped_epoch=r.get("stopped_epoch"))
                   for r in summary["replicas"]]
        return cls(records, int(summary["epochs"]), float(summary.get("wall_time_s", 0.0)))
