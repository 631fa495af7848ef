"""Segmentation metrics aggregated by exact sums: Dice, IoU, accuracy, boundary F1, HD95.

Every overlap metric is computed from per-class integer counts accumulated over the
whole split and divided once at the end, so the result does not depend on the
evaluation batch size or on padding (padded samples carry ``valid = 0``). The
counts live in a clu ``Metric`` (:class:`SegSums`) inside a clu ``Collection``
(:class:`EvalMetrics`), so they merge across batches and stack across replicas
like any pytree. Which reference each metric follows, and where it differs, is
written down in ``docs/metrics.md``.

Two means, both reported (the pooled one is the default selection metric):

* **pooled** (``dice``, ``iou``, ``bf``): per class from TP/FP/FN (or boundary matches)
  summed over every pixel of the split, then the mean over the foreground classes.
* **per image** (``dice_image``, ``iou_image``, ``bf_image``): per image and class, then
  the mean over the images in which the class occurs in the truth or the prediction
  (MATLAB ``evaluateSemanticSegmentation``'s ``ClassMetrics``), then over foreground
  classes. It weighs a small structure's images as much as a large one's. The per-image
  values are summed in float32, so this mean agrees across batch sizes to float32
  precision rather than bit for bit.

Definitions:

* A class's *boundary* is the set of its pixels with a 4-neighbour outside it, the edge
  of the field of view counting as outside (MATLAB ``bwperim``, medpy's surface). BF and
  HD95 use the same boundary.
* Boundary F1 (Csurka et al., 2013): a predicted boundary pixel matches if a true one
  lies within ``tolerance`` pixels (Euclidean, ``<=``), and vice versa; precision and
  recall are the matched fractions, BF their harmonic mean. A class in the truth that is
  never predicted (or predicted but absent) has recall (precision) 0 and BF 0; a class
  absent from both is undefined (NaN, left out of the means).
* ``accuracy``: the fraction of pixels labelled right (MATLAB ``GlobalAccuracy``);
  ``accuracy_per_class``: TP / (TP + FN), MATLAB's per-class ``Accuracy`` (recall).
* Per-volume 3-D Dice for volume splits: counts summed per volume, Dice per volume
  and class, then the mean over volumes.
* HD95 (host side, :func:`hd95`): medpy's ``hd95``, the 95th percentile of the surface
  distances of both directions pooled (MONAI's ``percentile=95`` takes the larger of the
  two directed percentiles instead, usually larger), per image (2-D) or per volume
  (3-D), in millimetres when the data's spacing is known and in pixels/voxels
  otherwise, averaged over the cases where both masks are non-empty. A case where one
  mask is empty and the other not has no distance; it is counted in ``hd95_missed``
  instead of being averaged.
"""

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from clu import metrics as clu_metrics
from scipy import ndimage

from jaxseg.errors import JaxsegError

MATLAB_BF_FRACTION = 0.0075  # evaluateSemanticSegmentation: 0.75% of the image diagonal
BF_CONVENTIONS = ("jaxseg", "matlab")


def bf_tolerance(convention: str, tolerance: float, shape) -> float:
    """The boundary F1 distance tolerance in pixels for a named convention.

    Args:
      convention: ``jaxseg`` (``tolerance`` pixels) or ``matlab`` (0.75% of the diagonal
        of an image of ``shape``, as MATLAB's ``evaluateSemanticSegmentation``).
      tolerance: the ``jaxseg`` tolerance in pixels.
      shape: ``(H, W)`` of the images.

    Returns:
      The tolerance in pixels.
    """
    if convention == "matlab":
        return MATLAB_BF_FRACTION * float(np.hypot(*shape[:2]))
    if convention == "jaxseg":
        return float(tolerance)
    raise JaxsegError(f"eval.bf_convention={convention!r}: choose from {list(BF_CONVENTIONS)}")


def _boundary(masks: jax.Array) -> jax.Array:
    """Boundary pixels of binary masks ``(B, H, W, K)``: inside, with an outside 4-neighbour.

    The edge of the field of view counts as outside (MATLAB ``bwperim``, medpy's surface
    in :func:`hd95`): a structure cut by the image edge has a boundary there.
    """
    m = jnp.pad(masks.astype(jnp.int32), ((0, 0), (1, 1), (1, 1), (0, 0)))
    inside = (m[:, :-2, 1:-1] & m[:, 2:, 1:-1] & m[:, 1:-1, :-2] & m[:, 1:-1, 2:])
    return (m[:, 1:-1, 1:-1] == 1) & (inside == 0)


def _disk(radius: float) -> np.ndarray:
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy**2 + xx**2 <= radius**2 + 1e-9).astype(np.float32)


def _near(boundary: jax.Array, radius: float) -> jax.Array:
    """Pixels within ``radius`` (Euclidean) of a boundary pixel, per class channel."""
    k = boundary.shape[-1]
    disk = jnp.asarray(_disk(radius))[:, :, None, None]
    kernel = jnp.tile(disk, (1, 1, 1, k))
    y = jax.lax.conv_general_dilated(boundary.astype(jnp.float32), kernel, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=k)
    return y > 0.5


def confusion_counts(pred: jax.Array, labels: jax.Array, valid: jax.Array, num_classes: int):
    """Per-image, per-class TP, FP and FN counts.

    Args:
      pred: ``(B, H, W)`` predicted labels.
      labels: ``(B, H, W)`` true labels.
      valid: ``(B,)`` 1 for real samples, 0 for padding.
      num_classes: K.

    Returns:
      ``(tp, fp, fn)``, each int32 ``(B, K)``.
    """
    p = jax.nn.one_hot(pred, num_classes, dtype=jnp.int32)
    g = jax.nn.one_hot(labels, num_classes, dtype=jnp.int32)
    v = valid.astype(jnp.int32)[:, None]
    tp = jnp.sum(p * g, (1, 2)) * v
    fp = jnp.sum(p * (1 - g), (1, 2)) * v
    fn = jnp.sum((1 - p) * g, (1, 2)) * v
    return tp, fp, fn


def inside(region: jax.Array, shape) -> jax.Array:
    """Which pixels of each image lie in its region.

    Args:
      region: int ``(B, 4)``: ``top, bottom, left, right`` (bottom, right exclusive).
      shape: the images' ``(H, W)``.

    Returns:
      bool ``(B, H, W)``.
    """
    rows = jnp.arange(shape[0])[None, :, None]
    cols = jnp.arange(shape[1])[None, None, :]
    r = region[:, :, None, None]
    return ((rows >= r[:, 0]) & (rows < r[:, 1]) & (cols >= r[:, 2]) & (cols < r[:, 3]))


def _safe_div(a, b):
    return np.where(b > 0, a / np.maximum(b, 1), np.nan)


def _f1(match_pred, n_pred, match_true, n_true, xp=np):
    """Boundary F1 from matched and total boundary pixels; NaN where both are empty.

    An empty side makes its ratio 0 (not undefined): a missed class has recall 0, a
    false alarm precision 0, and both BF 0 (Csurka et al., 2013).
    """
    prec = match_pred / xp.maximum(n_pred, 1)
    rec = match_true / xp.maximum(n_true, 1)
    f = xp.where(prec + rec > 0, 2 * prec * rec / xp.where(prec + rec > 0, prec + rec, 1), 0.0)
    return xp.where((n_pred + n_true) > 0, f, xp.nan)


@flax.struct.dataclass
class SegSums(clu_metrics.Metric):
    """Exact per-class counts for Dice, IoU, accuracy, boundary F1 and per-volume Dice.

    Attributes:
      tp: ``(K,)`` true-positive pixels.
      fp: ``(K,)`` false-positive pixels.
      fn: ``(K,)`` false-negative pixels.
      bf_match_pred: ``(K,)`` predicted boundary pixels near a true boundary.
      bf_pred: ``(K,)`` predicted boundary pixels.
      bf_match_true: ``(K,)`` true boundary pixels near a predicted boundary.
      bf_true: ``(K,)`` true boundary pixels.
      img_dice: ``(K,)`` per-image Dice summed over the images where it is defined.
      img_iou: ``(K,)`` per-image IoU, summed likewise.
      img_bf: ``(K,)`` per-image boundary F1, summed likewise.
      img_n: ``(K,)`` images in which the class occurs in the truth or the prediction
        (where all three per-image metrics are defined).
      vol_tp: ``(V, K)`` per-volume TP (``V = 0`` for 2-D data).
      vol_fp: ``(V, K)`` per-volume FP.
      vol_fn: ``(V, K)`` per-volume FN.
    """

    tp: jax.Array
    fp: jax.Array
    fn: jax.Array
    bf_match_pred: jax.Array
    bf_pred: jax.Array
    bf_match_true: jax.Array
    bf_true: jax.Array
    img_dice: jax.Array
    img_iou: jax.Array
    img_bf: jax.Array
    img_n: jax.Array
    vol_tp: jax.Array
    vol_fp: jax.Array
    vol_fn: jax.Array

    @classmethod
    def from_model_output(cls, *, pred, labels, valid, num_classes, tolerance=2.0,
                          volume=None, num_volumes=0, boundary=True, **_):
        """Counts for one batch.

        Args:
          pred: ``(B, H, W)`` predicted labels.
          labels: ``(B, H, W)`` true labels.
          valid: ``(B,)`` 1 for real samples, 0 for padding.
          num_classes: K (static).
          tolerance: boundary F1 distance tolerance in pixels (static; see
            :func:`bf_tolerance`).
          volume: ``(B,)`` volume index per slice, for volume splits.
          num_volumes: V (static), 0 for 2-D data.
          boundary: whether to count boundary pixels (static). Without them the boundary
            fields are empty, and :meth:`compute` leaves out ``bf``: the boundary
            dilations cost about 70% of a U-Net's forward pass on XLA CPU
            (``benchmarks/eval_cost.py``).

        Returns:
          The metric for this batch.
        """
        tp, fp, fn = confusion_counts(pred, labels, valid, num_classes)
        present = ((tp + fp + fn) > 0) & (valid[:, None] > 0)  # (B, K)
        tpf, fpf, fnf = (x.astype(jnp.float32) for x in (tp, fp, fn))
        img_sum = lambda x: jnp.sum(jnp.where(present, x, 0.0), 0)  # noqa: E731
        img_dice = img_sum(2 * tpf / jnp.maximum(2 * tpf + fpf + fnf, 1))
        img_iou = img_sum(tpf / jnp.maximum(tpf + fpf + fnf, 1))
        if boundary:
            v = valid.astype(bool)[:, None, None, None]
            pb = _boundary(jax.nn.one_hot(pred, num_classes, dtype=jnp.int32)) & v
            gb = _boundary(jax.nn.one_hot(labels, num_classes, dtype=jnp.int32)) & v
            per_image = lambda x: jnp.sum(x, (1, 2)).astype(jnp.int32)  # noqa: E731
            bm_pred, b_pred = per_image(pb & _near(gb, tolerance)), per_image(pb)
            bm_true, b_true = per_image(gb & _near(pb, tolerance)), per_image(gb)
            img_bf = img_sum(jnp.nan_to_num(_f1(bm_pred, b_pred, bm_true, b_true, jnp)))
        else:
            bm_pred = b_pred = bm_true = b_true = jnp.zeros((1, 0), jnp.int32)
            img_bf = jnp.zeros((0,), jnp.float32)
        if num_volumes:
            seg = lambda x: jax.ops.segment_sum(x, volume, num_volumes)  # noqa: E731
            vtp, vfp, vfn = seg(tp), seg(fp), seg(fn)
        else:
            vtp = vfp = vfn = jnp.zeros((0, num_classes), jnp.int32)
        return cls(tp=tp.sum(0), fp=fp.sum(0), fn=fn.sum(0),
                   bf_match_pred=bm_pred.sum(0), bf_pred=b_pred.sum(0),
                   bf_match_true=bm_true.sum(0), bf_true=b_true.sum(0),
                   img_dice=img_dice, img_iou=img_iou, img_bf=img_bf,
                   img_n=jnp.sum(present, 0).astype(jnp.int32),
                   vol_tp=vtp, vol_fp=vfp, vol_fn=vfn)

    def merge(self, other: "SegSums") -> "SegSums":
        """Adds two sets of counts."""
        return jax.tree.map(jnp.add, self, other)

    def compute(self) -> dict:
        """Returns the metrics (NumPy floats; NaN where a class never occurs)."""
        tp, fp, fn = (np.asarray(x, np.float64) for x in (self.tp, self.fp, self.fn))
        total = (tp + fn).sum()  # every labelled pixel is a TP or FN of its true class
        out = {"dice_per_class": _safe_div(2 * tp, 2 * tp + fp + fn),
               "iou_per_class": _safe_div(tp, tp + fp + fn),
               "accuracy": float(tp.sum() / total) if total else np.nan,
               "accuracy_per_class": _safe_div(tp, tp + fn)}
        boundary = np.asarray(self.bf_pred).shape[-1] > 0  # counted (``boundary=True``)
        if boundary:
            out["bf_per_class"] = _f1(*(np.asarray(x, np.float64) for x in (
                self.bf_match_pred, self.bf_pred, self.bf_match_true, self.bf_true)))
        n = np.asarray(self.img_n, np.float64)
        for name in ("dice", "iou", "bf") if boundary else ("dice", "iou"):
            out[f"{name}_image_per_class"] = _safe_div(
                np.asarray(getattr(self, f"img_{name}"), np.float64), n)
        if np.asarray(self.vol_tp).shape[0]:
            vtp, vfp, vfn = (np.asarray(x, np.float64)
                             for x in (self.vol_tp, self.vol_fp, self.vol_fn))
            per_volume = _safe_div(2 * vtp, 2 * vtp + vfp + vfn)  # (V, K)
            out["volume_dice_per_class"] = nanmean(per_volume, axis=0)
            out["volume_dice"] = float(nanmean(out["volume_dice_per_class"][1:]))
        for name in ("dice", "iou", "bf", "dice_image", "iou_image", "bf_image"):
            if f"{name}_per_class" in out:
                out[name] = float(nanmean(out[f"{name}_per_class"][1:]))
        return out


def dice_per_case(pred: np.ndarray, labels: np.ndarray, num_classes: int,
                  volume: np.ndarray | None = None) -> np.ndarray:
    """Each case's mean foreground Dice (case: an image, or a volume when ``volume`` is given).

    Per case and class, Dice from the case's TP/FP/FN counts (NaN where the class is in
    neither mask), then the mean over the foreground classes where it is defined (NaN for a
    case without foreground in either mask). The paired per-image test of the results
    tables (:mod:`jaxseg.sweep.compare`) compares configurations on these values.

    Args:
      pred: ``(N, H, W)`` predicted labels.
      labels: ``(N, H, W)`` true labels.
      num_classes: K.
      volume: ``(N,)`` volume index of each slice, or None.

    Returns:
      ``(cases,)`` float64.
    """
    # Class by class on the host (a one-hot of a whole split would not fit in memory).
    p = [pred == c for c in range(1, num_classes)]
    g = [labels == c for c in range(1, num_classes)]
    tp, fp, fn = (np.stack([np.sum(a & b, (1, 2)) for a, b in zip(x, y, strict=True)], 1)
                  .astype(np.float64) for x, y in ((p, g), (p, [~b for b in g]),
                                                   ([~a for a in p], g)))
    if volume is not None:
        ids = np.unique(volume)
        tp, fp, fn = (np.stack([x[volume == v].sum(0) for v in ids]) for x in (tp, fp, fn))
    return nanmean(_safe_div(2 * tp, 2 * tp + fp + fn), axis=1)


def nanmean(x, axis=None):
    """The mean over the non-NaN values (NaN where there are none), without a warning."""
    x = np.asarray(x, np.float64)
    n = np.sum(~np.isnan(x), axis=axis)
    s = np.nansum(x, axis=axis)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
    """Validation loss (masked mean over real samples) and the segmentation counts."""

    loss: clu_metrics.Average.from_output("loss")
    seg: SegSums


def surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a binary mask: inside, with a face-neighbour outside it.

    The edge of the array counts as outside, as in medpy (``binary_erosion`` with its
    default ``border_value=0``) and MATLAB's ``bwperim``: a structure that reaches the
    first or last slice of a volume has a surface there.
    """
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def hd95(pred: np.ndarray, true: np.ndarray, spacing=None) -> float:
    """95th-percentile symmetric Hausdorff distance between two binary masks (medpy's).

    The distances from each surface voxel of one mask to the other's surface, both
    directions pooled, then their 95th percentile (medpy ``hd95``).

    Args:
      pred: boolean mask, 2-D or 3-D.
      true: boolean mask of the same shape.
      spacing: the size of a pixel/voxel along each axis (e.g. mm), or None for 1.

    Returns:
      The distance in the units of ``spacing``; NaN when both masks are empty and
      ``inf`` when exactly one is (a missed or a spurious structure: no distance exists).
    """
    if not pred.any() or not true.any():
        return np.nan if not pred.any() and not true.any() else np.inf
    pb, tb = surface(pred.astype(bool)), surface(true.astype(bool))
    d_to_true = ndimage.distance_transform_edt(~tb, sampling=spacing)[pb]
    d_to_pred = ndimage.distance_transform_edt(~pb, sampling=spacing)[tb]
    return float(np.percentile(np.concatenate([d_to_true, d_to_pred]), 95))


def hd95_per_case(pred: np.ndarray, labels: np.ndarray, num_classes: int,
                  volume: np.ndarray | None = None, spacing=None) -> np.ndarray:
    """HD95 per case (image, or volume when ``volume`` is given) and class.

    Args:
      pred: ``(N, H, W)`` predicted labels.
      labels: ``(N, H, W)`` true labels.
      num_classes: K.
      volume: ``(N,)`` volume index of each slice (slices in order), or None.
      spacing: pixel size ``(row, col)`` for images or voxel size ``(slice, row, col)``
        for volumes, shared by every case; or one per case, ``(cases, 2 or 3)`` (NIfTI
        volumes have their own); or None (units of pixels/voxels).

    Returns:
      ``(cases, K)`` distances: NaN where the class is in neither mask (class 0 is left
      NaN), ``inf`` where it is in exactly one.
    """
    if volume is None:
        cases = [(pred[i], labels[i]) for i in range(pred.shape[0])]
    else:
        cases = [(pred[volume == v], labels[volume == v]) for v in np.unique(volume)]
    per_case = spacing is not None and np.ndim(spacing) == 2
    out = np.full((len(cases), num_classes), np.nan)
    for i, (p, g) in enumerate(cases):
        for c in range(1, num_classes):
            out[i, c] = hd95(p == c, g == c, tuple(spacing[i]) if per_case else spacing)
    return out


def hd95_spacing(spacing, volumes: bool | None) -> tuple:
    """The spacing HD95 is computed with, and the unit its distances are in.

    Args:
      spacing: the ``data.spacing`` config, ``()`` when unknown.
      volumes: whether the cases are volumes (3-D) rather than images; None before the
        data are loaded (either length is then accepted).

    Returns:
      ``(spacing or None, unit)``: ``mm`` with a spacing, else ``voxels``/``px``.
    """
    spacing = tuple(float(x) for x in spacing or ())
    if not spacing:
        return None, "voxels" if volumes else "px"
    want = {None: (2, 3), True: (3,), False: (2,)}[volumes]
    if len(spacing) not in want or min(spacing) <= 0:
        shape = {2: "(row, col) for images", 3: "(slice, row, col) for volumes"}
        raise JaxsegError(f"data.spacing={spacing}: give " + " or ".join(
            f"{n} positive sizes in mm, {shape[n]}" for n in want) + "; () when unknown")
    return spacing, "mm"


def summarize_hd95(per_case: np.ndarray, unit: str = "px") -> dict:
    """Mean HD95 per class over the cases where it is defined, and over foreground classes.

    Args:
      per_case: from :func:`hd95_per_case`.
      unit: what the distances are in (``mm``, ``px`` or ``voxels``), recorded beside them.

    Returns:
      ``hd95_per_class``, ``hd95`` (the foreground mean), ``hd95_missed_per_class`` and
      ``hd95_missed`` (cases where the class was in only one of the two masks, left out of
      the means) and ``hd95_unit``.
    """
    per_case = np.asarray(per_case, np.float64)
    missed = np.isinf(per_case).sum(0)
    per_class = nanmean(np.where(np.isinf(per_case), np.nan, per_case), axis=0)
    return {"hd95_per_class": per_class, "hd95": float(nanmean(per_class[1:])),
            "hd95_missed_per_class": missed, "hd95_missed": int(missed[1:].sum()),
            "hd95_unit": unit}
