"""Evaluation of a cohort: every replica's validation metrics in one pass over the split.

Per-class sums are accumulated batch by batch (clu metrics) and divided once, so the
metrics do not depend on the evaluation batch size; HD95 is computed on the host from the
predictions, per image or per volume. Replicas that are frozen are not evaluated.

Two depths: the full set (boundary F1, HD95 and each case's Dice besides the overlap
metrics), and the per-epoch set that training computes every evaluation under
``eval.full_metrics=best`` (loss, Dice, IoU, accuracy, their per-image and per-volume
means: everything the best epoch, early stopping and successive halving are decided
on), with the full set computed once for every replica's best weights.
"""

import jax
import numpy as np

from jaxseg import metrics
from jaxseg.data import datasets
from jaxseg.engine import devices
from jaxseg.engine.cohort import Cohort
from jaxseg.engine.tracker import CASE_DICE

# ``eval.full_metrics``: the full set for the best weights only, or at every evaluation.
FULL_METRICS = ("best", "every")


def batch_layout(n: int, batch_size: int) -> tuple[int, int]:
    """``(batches, batch)``: the fewest batches of at most ``batch_size``, equal in size.

    The last batch is padded to the common size (one compiled shape); equal batches keep
    that padding below one image per batch (20 images in batches of 32 are one batch of
    20, not 32 with 12 of padding; 100 are four of 25).
    """
    batches = max(1, -(-n // max(int(batch_size), 1)))
    return batches, max(1, -(-n // batches))


def evaluate(cohort: Cohort, state, hp, split: datasets.Split, batch_size: int, config,
             index: list[np.ndarray] | None = None, alive: np.ndarray | None = None,
             full: bool = True):
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
      full: the full set; False leaves out ``bf``..., ``hd95``... and ``case_dice``.

    Returns:
      A list (one per replica) of metric dicts: ``loss``, ``dice``, ``dice_per_class``,
      ``iou``..., ``bf``..., ``accuracy``, ``hd95``..., ``volume_dice`` for volume splits
      and ``case_dice`` (each image's or volume's mean foreground Dice, keyed by its index
      in the split or its volume id).
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
    batches, batch_size = batch_layout(max(len(i) for i in index), batch_size)
    width = batches * batch_size
    idx = np.full((len(index), width), -1, np.int64)  # -1: padding
    for r, ix in enumerate(index):
        idx[r, :len(ix)] = ix
    volume = split.volume if split.volume is not None else np.zeros(len(split), np.int32)
    region = split.regions()
    total, preds = None, []
    for i in range(0, width, batch_size):
        ib = idx[:, i:i + batch_size]
        take = np.maximum(ib, 0)
        args = (split.images[take], split.labels[take], (ib >= 0).astype(np.float32),
                np.where(ib >= 0, volume[take], 0).astype(np.int32), region[take])
        if shared:
            m, p = cohort.eval(state, hp, *devices.place([a[0] for a in args], cohort.mesh,
                                                         devices.SHARED), busy=busy, full=full)
        else:
            m, p = cohort.eval_each(state, hp, *devices.place(list(args), cohort.mesh),
                                    busy=busy, full=full)
        total = m if total is None else total.merge(m)
        if full:  # the per-epoch set needs no predictions on the host
            preds.append(devices.to_host(p, R))
    total = devices.to_host(total, R)
    if not full:
        return [None if not alive[r] else _row(jax.tree.map(lambda x, r=r: x[r], total))
                for r in range(R)]
    preds = np.concatenate(preds, axis=1)
    spacing, unit = metrics.hd95_spacing(config.data.spacing, split.volume is not None)
    # NIfTI volumes carry their own voxel sizes; data.spacing, when given, overrides them.
    own = split.spacing if spacing is None and split.volume is not None else None
    out = []
    for r in range(R):
        if not alive[r]:
            out.append(None)
            continue
        row = _row(jax.tree.map(lambda x, r=r: x[r], total))
        ix = index[0 if shared else r]
        vol = None if split.volume is None else split.volume[ix]
        # Each case's Dice, keyed by its image (or volume) in the split: what the results
        # tables' paired per-image test compares (kept with the best epoch, not in history).
        case_dice = metrics.dice_per_case(preds[r][:len(ix)], split.labels[ix],
                                          cohort.static.num_classes, vol)
        row[CASE_DICE] = {str(int(c)): None if np.isnan(d) else float(d) for c, d in zip(
            ix if vol is None else np.unique(vol), case_dice, strict=True)}
        if config.eval.hd95:
            per_case = metrics.hd95_per_case(preds[r][:len(ix)], split.labels[ix],
                                             cohort.static.num_classes, vol,
                                             spacing if own is None else own[np.unique(vol)])
            row.update(metrics.summarize_hd95(per_case, "mm" if own is not None else unit))
        out.append(row)
    return out


def _row(metric) -> dict:
    """One replica's accumulated ``EvalMetrics`` as a flat metric dict."""
    res = metric.compute()
    return {"loss": float(res["loss"]), **res["seg"]}
