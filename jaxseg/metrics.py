"""Segmentation metrics aggregated by exact sums: Dice, IoU, accuracy, boundary F1, HD95.

Every overlap metric is computed from per-class integer counts accumulated over the
whole split and divided once at the end, so the result does not depend on the
evaluation batch size or on padding (padded samples carry ``valid = 0``). The
counts live in a clu ``Metric`` (:class:`SegSums`) inside a clu ``Collection``
(:class:`EvalMetrics`), so they merge across batches and stack across replicas
like any pytree.

* Dice and IoU per class from TP/FP/FN over all pixels of the split; the headline
  ``dice``/``iou`` are the means over the foreground classes.
* Boundary F1 (BF) per class: boundary pixels of prediction and truth; a predicted
  boundary pixel matches if a true one lies within ``tolerance`` pixels (Euclidean),
  and vice versa; precision and recall come from the summed matches, BF is their
  harmonic mean (Csurka et al., 2013, aggregated over the split).
* Per-volume 3-D Dice for volume splits: counts summed per volume, Dice per volume
  and class, then the mean over volumes.
* HD95 (host side, :func:`hd95`): the 95th percentile of the symmetric surface
  distances per image (2-D) or per volume (3-D), averaged over the cases where
  both masks are non-empty; it is per case, so also exact whatever the batching.
"""

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from clu import metrics as clu_metrics
from scipy import ndimage


def _boundary(masks: jax.Array) -> jax.Array:
    """Boundary pixels of binary masks ``(B, H, W, K)``: inside, with an outside 4-neighbour.

    The image border is not a boundary (outside pixels count as inside), matching
    the contour of the structure rather than the edge of the field of view.
    """
    m = masks.astype(jnp.int32)
    eroded = jax.lax.reduce_window(m, 1, jax.lax.min, (1, 3, 3, 1), (1, 1, 1, 1),
                                   ((0, 0), (1, 1), (1, 1), (0, 0)))
    return (m == 1) & (eroded == 0)


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


def _safe_div(a, b):
    return np.where(b > 0, a / np.maximum(b, 1), np.nan)


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
    vol_tp: jax.Array
    vol_fp: jax.Array
    vol_fn: jax.Array

    @classmethod
    def from_model_output(cls, *, pred, labels, valid, num_classes, tolerance=2.0,
                          volume=None, num_volumes=0, **_):
        """Counts for one batch.

        Args:
          pred: ``(B, H, W)`` predicted labels.
          labels: ``(B, H, W)`` true labels.
          valid: ``(B,)`` 1 for real samples, 0 for padding.
          num_classes: K (static).
          tolerance: boundary F1 distance tolerance in pixels (static).
          volume: ``(B,)`` volume index per slice, for volume splits.
          num_volumes: V (static), 0 for 2-D data.

        Returns:
          The metric for this batch.
        """
        tp, fp, fn = confusion_counts(pred, labels, valid, num_classes)
        v = valid.astype(bool)[:, None, None, None]
        pb = _boundary(jax.nn.one_hot(pred, num_classes, dtype=jnp.int32)) & v
        gb = _boundary(jax.nn.one_hot(labels, num_classes, dtype=jnp.int32)) & v
        count = lambda x: jnp.sum(x, (0, 1, 2)).astype(jnp.int32)  # noqa: E731
        if num_volumes:
            seg = lambda x: jax.ops.segment_sum(x, volume, num_volumes)  # noqa: E731
            vtp, vfp, vfn = seg(tp), seg(fp), seg(fn)
        else:
            vtp = vfp = vfn = jnp.zeros((0, num_classes), jnp.int32)
        return cls(tp=tp.sum(0), fp=fp.sum(0), fn=fn.sum(0),
                   bf_match_pred=count(pb & _near(gb, tolerance)), bf_pred=count(pb),
                   bf_match_true=count(gb & _near(pb, tolerance)), bf_true=count(gb),
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
               "accuracy": float(tp.sum() / total) if total else np.nan}
        prec = _safe_div(np.asarray(self.bf_match_pred, np.float64),
                         np.asarray(self.bf_pred, np.float64))
        rec = _safe_div(np.asarray(self.bf_match_true, np.float64),
                        np.asarray(self.bf_true, np.float64))
        out["bf_per_class"] = np.where(prec + rec > 0, 2 * prec * rec / np.where(
            prec + rec > 0, prec + rec, 1), 0.0)
        out["bf_per_class"] = np.where(np.isnan(prec) | np.isnan(rec), np.nan,
                                       out["bf_per_class"])
        if np.asarray(self.vol_tp).shape[0]:
            vtp, vfp, vfn = (np.asarray(x, np.float64)
                             for x in (self.vol_tp, self.vol_fp, self.vol_fn))
            per_volume = _safe_div(2 * vtp, 2 * vtp + vfp + vfn)  # (V, K)
            out["volume_dice_per_class"] = _nanmean(per_volume, axis=0)
            out["volume_dice"] = float(_nanmean(out["volume_dice_per_class"][1:]))
        for name in ("dice", "iou", "bf"):
            out[name] = float(_nanmean(out[f"{name}_per_class"][1:]))
        return out


def _nanmean(x, axis=None):
    x = np.asarray(x, np.float64)
    n = np.sum(~np.isnan(x), axis=axis)
    s = np.nansum(x, axis=axis)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
    """Validation loss (masked mean over real samples) and the segmentation counts."""

    loss: clu_metrics.Average.from_output("loss")
    seg: SegSums


def hd95(pred: np.ndarray, true: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance between two binary masks (pixels).

    Args:
      pred: boolean mask, 2-D or 3-D.
      true: boolean mask of the same shape.

    Returns:
      The distance, or NaN when either mask is empty.
    """
    if not pred.any() or not true.any():
        return np.nan
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    pb = pred ^ ndimage.binary_erosion(pred, structure, border_value=1)
    tb = true ^ ndimage.binary_erosion(true, structure, border_value=1)
    d_to_true = ndimage.distance_transform_edt(~tb)[pb]
    d_to_pred = ndimage.distance_transform_edt(~pb)[tb]
    return float(np.percentile(np.concatenate([d_to_true, d_to_pred]), 95))


def hd95_per_case(pred: np.ndarray, labels: np.ndarray, num_classes: int,
                  volume: np.ndarray | None = None) -> np.ndarray:
    """HD95 per case (image, or volume when ``volume`` is given) and class.

    Args:
      pred: ``(N, H, W)`` predicted labels.
      labels: ``(N, H, W)`` true labels.
      num_classes: K.
      volume: ``(N,)`` volume index of each slice (slices in order), or None.

    Returns:
      ``(cases, K)`` distances, NaN where undefined (class 0 is left NaN).
    """
    if volume is None:
        cases = [(pred[i], labels[i]) for i in range(pred.shape[0])]
    else:
        cases = [(pred[volume == v], labels[volume == v]) for v in np.unique(volume)]
    out = np.full((len(cases), num_classes), np.nan)
    for i, (p, g) in enumerate(cases):
        for c in range(1, num_classes):
            out[i, c] = hd95(p == c, g == c)
    return out


def summarize_hd95(per_case: np.ndarray) -> dict:
    """Mean HD95 per class over the cases where it is defined, and over foreground classes."""
    per_class = _nanmean(per_case, axis=0)
    return {"hd95_per_class": per_class, "hd95": float(_nanmean(per_class[1:]))}
