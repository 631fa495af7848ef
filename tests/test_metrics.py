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
    for key in ("dice_image_per_class", "iou_image_per_class", "bf_image_per_class"):
        np.testing.assert_allclose(whole[key], merged[key], rtol=1e-6)
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


def test_missed_class_scores_zero_boundary_f1():
    # The case: RV (class 1) is in the truth and never predicted.
    g = np.zeros((1, 16, 16), int)
    g[0, 2:6, 2:6] = 1
    g[0, 8:14, 8:14] = 2
    p = np.where(g == 1, 0, g)
    out = seg(p, g, 3).compute()
    assert out["dice"] == pytest.approx(0.5)
    # Class 1: recall 0 -> BF 0; class 2 exact -> 1; mean 0.5 (was 1.0 with class 1 left out).
    np.testing.assert_allclose(out["bf_per_class"][1:], [0.0, 1.0])
    assert out["bf"] == pytest.approx(0.5) and out["bf_image"] == pytest.approx(0.5)
    # Predicted but absent from the truth: precision 0 -> BF 0. Absent from both: undefined.
    out = seg(g, p, 4).compute()
    assert out["bf_per_class"][1] == 0.0 and np.isnan(out["bf_per_class"][3])
    assert np.isnan(out["dice_per_class"][3]) and np.isnan(out["dice_image_per_class"][3])


def test_boundary_is_four_neighbour_with_the_image_edge_outside():
    # A 4x4 square with its top-right corner cut: pixel (2, 3) has all four 4-neighbours
    # inside (it is interior, as for bwperim) but a diagonal one outside (the 3x3 erosion
    # counted it). Interior: (2,2), (2,3), (3,2), (3,3) -> 15 - 4 = 11 boundary pixels.
    m = np.zeros((1, 6, 6, 1), int)
    m[0, 1:5, 1:5] = 1
    m[0, 1, 4] = 0
    b = np.asarray(metrics._boundary(jnp.asarray(m)))[0, ..., 0]
    assert b.sum() == 11 and not b[2, 3] and b[2, 4]
    # The same set as the surface HD95 uses (medpy's erosion, border value 0).
    np.testing.assert_array_equal(b, metrics.surface(m[0, ..., 0].astype(bool)))
    # A structure filling the image has its boundary on the image edge.
    full = np.asarray(metrics._boundary(jnp.ones((1, 5, 5, 1), jnp.int32)))[0, ..., 0]
    assert full.sum() == 16 and not full[1:4, 1:4].any()


def test_matlab_bf_tolerance():
    # 0.75% of the diagonal: 96x96 -> 1.018 px, 256x256 -> 2.715 px.
    assert metrics.bf_tolerance("matlab", 2.0, (96, 96)) == pytest.approx(0.0075 * 96 * 2**0.5)
    assert metrics.bf_tolerance("jaxseg", 2.0, (96, 96)) == 2.0
    with pytest.raises(metrics.JaxsegError, match="bf_convention"):
        metrics.bf_tolerance("matlb", 2.0, (96, 96))
    # A 4x4 square and the same square one column right, at the tolerance of a 10x12 image
    # (0.117 px: only exact matches). Each boundary has 12 pixels; they share rows 2 and 5
    # at columns 3..5 (6 pixels): precision = recall = 6/12 -> BF 0.5.
    labels = np.zeros((1, 10, 12), int)
    labels[0, 2:6, 2:6] = 1
    pred = np.zeros_like(labels)
    pred[0, 2:6, 3:7] = 1
    tol = metrics.bf_tolerance("matlab", 0, (10, 12))
    out = seg(pred, labels, 2, tolerance=tol).compute()
    assert out["bf"] == pytest.approx(0.5)


def test_per_image_and_pooled_means_by_hand():
    # Image 0: class 1 TP 1, FN 1 -> Dice 2/3, IoU 1/2. Image 1: class 1 TP 8 -> 1, 1.
    # Pooled: TP 9, FN 1 -> Dice 18/19, IoU 9/10. Per image: 5/6 and 3/4.
    labels = np.zeros((2, 4, 4), int)
    pred = np.zeros_like(labels)
    labels[0, 0, :2] = 1
    pred[0, 0, 0] = 1
    labels[1, :2] = pred[1, :2] = 1
    out = seg(pred, labels, 2).compute()
    assert out["dice"] == pytest.approx(18 / 19) and out["iou"] == pytest.approx(9 / 10)
    assert out["dice_image"] == pytest.approx(5 / 6) and out["iou_image"] == pytest.approx(3 / 4)
    # Per-class accuracy is TP / (TP + FN) (MATLAB's class Accuracy): 9/10 for class 1,
    # 22/22 for the background.
    np.testing.assert_allclose(out["accuracy_per_class"], [1.0, 0.9])
    # An image where the class occurs in neither mask does not count (padding neither).
    more = seg(np.concatenate([pred, np.zeros((1, 4, 4), int)]),
               np.concatenate([labels, np.zeros((1, 4, 4), int)]), 2).compute()
    assert more["dice_image"] == pytest.approx(5 / 6)


def test_hd95_image_edge_and_spacing_like_medpy():
    # The case: a missed basal slice of a structure that fills the volume's extent.
    a = np.zeros((3, 21, 21), bool)
    a[:, 3:18, 3:18] = True
    b = a.copy()
    b[0] = False
    assert metrics.hd95(b, a) == pytest.approx(1.0)  # medpy: 1.0 (2.45 with the edge inside)
    assert metrics.hd95(b, a) == pytest.approx(metrics.hd95(np.pad(b, 1), np.pad(a, 1)))
    # Anisotropic spacing (rows 2 mm, columns 0.5 mm): a at (0,0); b at (0,3) and (4,0).
    # a->b: 1.5; b->a: 1.5 and 8; 95th percentile of [1.5, 1.5, 8] = 1.5 + 0.9 * 6.5 = 7.35.
    p = np.zeros((8, 8), bool)
    t = np.zeros((8, 8), bool)
    p[0, 0] = True
    t[0, 3] = t[4, 0] = True
    assert metrics.hd95(p, t, (2.0, 0.5)) == pytest.approx(7.35)
    # The slice step counts in mm: b's missed slice is 10 mm away with 10 mm slices.
    assert metrics.hd95(b, a, (10.0, 1.5, 1.5)) == pytest.approx(10.0)


def test_hd95_summary_counts_missed_cases_and_names_its_unit():
    g = np.zeros((3, 8, 8), int)
    g[:, 2:5, 2:5] = 1
    p = g.copy()
    p[1] = 0  # case 1: class 1 missed
    p[2, 2:5, 3:6] = 1  # case 2: shifted by a column
    p[2, 2:5, 2] = 0
    per_case = metrics.hd95_per_case(p, g, 2)
    assert per_case[0, 1] == 0.0 and per_case[1, 1] == np.inf and per_case[2, 1] == 1.0
    s = metrics.summarize_hd95(per_case, "mm")
    assert s["hd95"] == pytest.approx(0.5) and s["hd95_missed"] == 1 and s["hd95_unit"] == "mm"
    assert metrics.hd95_spacing((), volumes=True) == (None, "voxels")
    assert metrics.hd95_spacing((1.5, 1.5), volumes=False) == ((1.5, 1.5), "mm")
    with pytest.raises(metrics.JaxsegError, match="data.spacing"):
        metrics.hd95_spacing((1.5, 1.5), volumes=True)


def test_impossible_spacing_is_refused_before_training():
    from jaxseg import configs, validation

    c = configs.default()
    c.data.spacing = (1.5, -1.0)
    with pytest.raises(metrics.JaxsegError, match=r"data.spacing=\(1.5, -1.0\)"):
        validation.validate(c)
    # Before the data are loaded either form passes; four sizes never do.
    assert metrics.hd95_spacing((10.0, 1.5, 1.5), None) == ((10.0, 1.5, 1.5), "mm")
    c.data.spacing = (1.0, 1.0, 1.0, 1.0)
    with pytest.raises(metrics.JaxsegError, match="give 2 .* or 3"):
        validation.validate(c)
