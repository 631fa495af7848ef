"""Successive halving: the rungs, who competes at a rung, who goes on.

``train.halving.min_epochs`` > 0 turns it on. Rungs are at epochs ``min_epochs * eta**k``
(k = 0, 1, ... while below ``train.epochs``); at each rung the *configurations* still
running are ranked by the mean, over their seeds and folds, of each replica's best
``train.halving.metric`` so far, and only the top ``max(1, n // eta)`` of the ``n`` go on
(the rule of Hyperband, Li et al. 2018, and Optuna's ``SuccessiveHalvingPruner``); the
others' replicas get the status ``pruned``, keeping their best weights, history and
checkpoint. The seeds and folds of one configuration are ranked and stopped together, so a
results table keeps its n.

Who competes (``train.halving.group``):

- ``cohort`` (the default): the configurations of one cohort. Every configuration of a
  cohort reaches a rung in the same epoch of the same program, so the decision does not
  depend on the run order, a resume, the device count or which launch trains which
  cohort (``--cohorts``). The tracker (:mod:`jaxseg.engine.tracker`) decides.
- ``grid``: every configuration of the sweep. ``jaxseg sweep`` trains each cohort up to
  the rung, decides over all of them, then goes on (:mod:`jaxseg.sweep.grid_halving`). A
  grid whose structural axis splits it into small cohorts (``optimizer_lr``: 7 optimizers,
  5 learning rates each) keeps one configuration per cohort under ``cohort``, and that
  survivor's full training alone costs about a third of the cohort's; ranking the grid
  keeps the few best of all, so a first rung late enough to rank fairly stays affordable.
  Synchronous, as the papers' rule (not ASHA's asynchronous one, whose decisions depend on
  the order the cohorts ran in).

The planner's ``--dry_run`` estimate uses :func:`replica_epochs`.
"""

import numpy as np

from jaxseg.errors import JaxsegError
from jaxseg.hparams import configuration_key


def rungs(epochs: int, min_epochs: int, eta: int) -> tuple[int, ...]:
    """The rung epochs ``min_epochs * eta**k`` below ``epochs`` (empty when halving is off).

    Example: ``rungs(50, 2, 3) == (2, 6, 18)``.
    """
    if min_epochs <= 0:
        return ()
    out, e = [], int(min_epochs)
    while e < epochs:
        out.append(e)
        e *= int(eta)
    return tuple(out)


def keep_count(n: int, eta: int) -> int:
    """How many of ``n`` competing configurations go on past a rung: ``max(1, n // eta)``."""
    return max(1, n // int(eta))


def configuration_groups(overrides: list[dict]) -> tuple[int, ...]:
    """The configuration of each replica: replicas that differ only in seed or fold share one.

    Returns:
      One group number per replica, numbered in order of first appearance.
    """
    keys: dict[str, int] = {}
    return tuple(keys.setdefault(configuration_key(o), len(keys)) for o in overrides)


GROUPS = ("cohort", "grid")


def survivors(scores: dict, eta: int) -> set:
    """The configurations that go on past a rung.

    Args:
      scores: ``{group: mean score}`` of the configurations competing (higher is better;
        a NaN or -inf score ranks last).
      eta: the reduction factor.

    Returns:
      The top ``keep_count(len(scores), eta)`` groups; ties go to the lower group number
      (or key).
    """
    ranked = sorted(scores, key=lambda g: (-_finite(scores[g]), g))
    return set(ranked[:keep_count(len(ranked), eta)])


def rung_decision(groups, rank_best, running, eta: int) -> tuple[list[int], dict, set]:
    """One rung over a set of replicas: which are pruned.

    The configurations with a replica still running compete, each scored by the mean of
    all its replicas' best-so-far values (seeds and folds together; a replica that stopped
    or diverged keeps the score it had).

    Args:
      groups: each replica's configuration (any sortable, hashable value).
      rank_best: each replica's best value so far of the halving metric.
      running: each replica's ``running`` flag.
      eta: the reduction factor.

    Returns:
      ``(pruned, scores, kept)``: the running replicas of the configurations that do not go
      on (indices), ``{configuration: mean score}`` of those that competed, and the
      configurations kept.
    """
    competing = sorted({groups[r] for r, alive in enumerate(running) if alive})
    scores = {g: float(np.mean([rank_best[r] for r in range(len(groups)) if groups[r] == g]))
              for g in competing}
    kept = survivors(scores, eta) if scores else set()
    pruned = [r for r, alive in enumerate(running) if alive and groups[r] not in kept]
    return pruned, scores, kept


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf


def replica_epochs(groups: tuple[int, ...], epochs: int, rung_epochs: tuple[int, ...],
                   eta: int) -> int:
    """Epochs the replicas train in all if every rung prunes as planned (no early stopping).

    Used by the ``--dry_run`` estimate: early stopping and divergence can only lower it.
    """
    sizes = np.bincount(np.asarray(groups, int)) if len(groups) else np.zeros(0, int)
    alive = list(range(len(sizes)))  # the survivors are unknown: count by group sizes,
    total, start = 0, 0  # the largest groups kept (the most replicas: the upper estimate)
    for rung in rung_epochs:
        total += int(sizes[alive].sum()) * (rung - start)
        alive = sorted(alive, key=lambda g: -sizes[g])[:keep_count(len(alive), eta)]
        start = rung
    return total + int(sizes[alive].sum()) * (epochs - start)


def validate(halving) -> None:
    """Checks ``train.halving``'s fields.

    Raises:
      JaxsegError: naming the field.
    """
    if int(halving.min_epochs) < 0:
        raise JaxsegError(f"train.halving.min_epochs={halving.min_epochs} must be >= 0 "
                          "(0: no successive halving)")
    if int(halving.eta) < 2:
        raise JaxsegError(f"train.halving.eta={halving.eta} must be >= 2 (the top 1/eta of "
                          "the configurations go on at each rung)")
    if halving.group not in GROUPS:
        raise JaxsegError(f"train.halving.group={halving.group!r} is not one of "
                          f"{', '.join(GROUPS)} (who competes at a rung)")
