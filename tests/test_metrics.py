"""Metrics against hand-worked values, and exactness whatever the evaluation batch size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import metrics


def seg(pred, labels, k, valid=None, **kw):
    pred, labels = jnp.asarray(pred), jnp.asarray(labels)
    if valid is None:
        valid = jnp.ones(pred.shape[0])
    return metrics.SegSums.from_model_output(pred=pred, labels=labels, valid=valid,
                                             num_classes=k, **kw)


def test_dice_iou_accuracy_by_hand():
    labels = np.array([[[0, 0, 1, 1],
                        [0, 2, 2, 1],
                        [0, 2, 2, 0],
                        [0, 0, 0, 0]]])
    pred = np.array([[[0, 1, 1, 1],
                      [0, 2, 2, 2],
                      [0, 0, 2, 0],
                      [0, 0, 0, 0]]])
    out = seg(pred, labels, 3).compute()
    # class 1: TP 2, FP 1, FN 1 -> Dice 4/6, IoU 2/4; class 2: TP 3, FP 1, FN 1 -> 6/8, 3/5.
    np.testing.assert_allclose(out["dice_per_class"][1:], [4 / 6, 6 / 8])
    np.testing.assert_allclose(out["iou_per_class"][1:], [2 / 4, 3 / 5])
    assert out["dice"] == pytest.approx((4 / 6 + 6 / 8) / 2)
    assert out["accuracy"] == pytest.approx(13 / 16)  # 3 of 16 pixels wrong


def test_boundary_f1_by_hand():
    # A 4x4 square, and the same square moved 3 columns right. Perimeter: 12 pixels.
    # Moved square's boundary: column 5 lies on the true boundary (4 px), columns 6 and 7
    # top/bottom are 1 and 2 px away (4 px), column 8 is 3 px away (4 px, unmatched at
    # tolerance 2): precision 8/12; by symmetry recall 8/12; BF = 2/3.
    labels = np.zeros((1, 10, 12), int)
    labels[0, 2:6, 2:6] = 1
    pred = np.zeros_like(labels)
    pred[0, 2:6, 5:9] = 1
    out = seg(pred, labels, 2, tolerance=2.0).compute()
    assert out["bf_per_class"][1] == pytest.approx(2 / 3)
    assert seg(labels, labels, 2).compute()["bf"] == pytest.approx(1.0)
    # With tolerance 3 every boundary pixel matches.
    assert seg(pred, labels, 2, tolerance=3.0).compute()["bf"] == pytest.approx(1.0)


def test_hd95_by_hand():
    a = np.zeros((8, 8), bool)
    b = np.zeros((8, 8), bool)
    a[0, 0] = True
    b[0, 3] = b[4, 0] = True
    # Distances a->b: [3]; b->a: [3, 4]; 95th percentile of [3, 3, 4] (linear) = 3.9.
    assert metrics.hd95(a, b) == pytest.approx(3.9)
    assert metrics.hd95(a, a) == 0.0
    # One empty mask: no distance exists (inf, counted as missed); both empty: undefined.
    assert metrics.hd95(a, np.zeros_like(a)) == np.inf
    assert np.isnan(metrics.hd95(np.zeros_like(a), np.zeros_like(a)))
    per_case = metrics.hd95_per_case(np.stack([a * 1, a * 1]), np.stack([b * 1, a * 1]), 2)
    assert metrics.summarize_hd95(per_case)["hd95"] == pytest.approx((3.9 + 0.0) / 2)


def test_exact_whatever_the_batch_size_and_padding():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (7, 16, 16))
    pred = np.where(rng.random((7, 16, 16)) < 0.7, labels, rng.integers(0, 4, (7, 16, 16)))
    volume = np.array([0, 0, 0, 1, 1, 2, 2])
    whole = seg(pred, labels, 4, volume=jnp.asarray(volume), num_volumes=3).compute()
    # Batches of 3 with the last one padded by zeros marked invalid.
    pad = 9 - 7
    p = np.concatenate([pred, np.zeros((pad, 16, 16), int)])
    g = np.concatenate([labels, np.zeros((pad, 16, 16), int)])
    v = np.concatenate([volume, np.zeros(pad, int)])
    valid = np.concatenate([np.ones(7), np.zeros(pad)])
    parts = [seg(p[i:i + 3], g[i:i + 3], 4, valid=jnp.asarray(valid[i:i + 3]),
                 volume=jnp.asarray(v[i:i + 3]), num_volumes=3) for i in range(0, 9, 3)]
    merged = parts[0].merge(parts[1]).merge(parts[2]).compute()
    for key in ("dice_per_class", "iou_per_class", "bf_per_class", "volume_dice_per_class"):
        np.testing.assert_array_equal(whole[key], merged[key])
    assert whole["accuracy"] == merged["accuracy"]


def test_volume_dice_by_hand():
    # Volume 0: two slices, class 1 TP 2 FP 0 FN 2 -> 4/6. Volume 1: perfect -> 1.
    labels = np.array([[[1, 1]], [[1, 1]], [[1, 0]]])
    pred = np.array([[[1, 1]], [[0, 0]], [[1, 0]]])
    out = seg(pred, labels, 2, volume=jnp.array([0, 0, 1]), num_volumes=2).compute()
    assert out["volume_dice_per_class"][1] == pytest.approx((4 / 6 + 1.0) / 2)


def test_collection_and_replica_stacking():
    labels = jnp.array([[[0, 1], [1, 1]]])
    preds = jnp.array([[[[0, 1], [1, 1]]], [[[0, 0], [0, 1]]]])  # two replicas

    def one(pred, loss):
        return metrics.EvalMetrics.single_from_model_output(
            loss=loss, pred=pred, labels=labels, valid=jnp.ones(1), num_classes=2)

    stacked = jax.vmap(one)(preds, jnp.array([[0.2], [0.4]]))
    r1 = jax.tree.map(lambda x: x[1], stacked).compute()
    assert r1["seg"]["dice"] == pytest.approx(2 * 1 / (2 * 1 + 0 + 2))
    assert float(r1["loss"]) == pytest.approx(0.4)
