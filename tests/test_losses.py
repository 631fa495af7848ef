"""Losses against values worked out by hand on two pixels, and per-replica (vmapped) calls."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import losses
from jaxseg.errors import JaxsegError

L3 = math.log(3.0)
# Two pixels (one image, 1x2), softmax over 2 classes: p(A) = [.25, .75], p(B) = [.75, .25].
LOGITS = jnp.array([[[[0.0, L3], [L3, 0.0]]]])
LABELS = jnp.array([[[1, 1]]])
P = dict(focal_gamma=2.0, focal_alpha=0.25, tversky_alpha=0.3, tversky_beta=0.7, lam=0.5,
         ecn_beta=0.9, smooth=0.0)
NLL_75, NLL_25 = -math.log(0.75), -math.log(0.25)


def terms(names, params=P, logits=LOGITS, labels=LABELS, head="softmax", counts=None):
    return losses.term_values(logits, labels, params, names, head=head, num_classes=2,
                              class_counts=counts)


def test_cross_entropies():
    out = terms(("ce", "bce"))
    assert out["ce"] == pytest.approx((NLL_75 + NLL_25) / 2, rel=1e-6)  # 0.836988
    # BCE over both channels: A: -log(1-.25) - log(.75); B: -log(1-.75) - log(.25); / 4.
    assert out["bce"] == pytest.approx((2 * NLL_75 + 2 * NLL_25) / 4, rel=1e-6)


def test_weighted_ce_effective_number():
    counts = np.array([100.0, 10.0])
    w0 = 0.1 / (1 - 0.9**100)
    w1 = 0.1 / (1 - 0.9**10)
    w1n = 2 * w1 / (w0 + w1)  # normalised so the weights sum to K = 2: 1.211138
    assert w1n == pytest.approx(1.211138, rel=1e-5)
    out = terms(("wce",), counts=counts)
    assert out["wce"] == pytest.approx(w1n * (NLL_75 + NLL_25) / 2, rel=1e-5)


def test_focal_softmax_and_sigmoid():
    out = terms(("focal",))
    a = 0.25 * 0.25**2 * NLL_75
    b = 0.25 * 0.75**2 * NLL_25
    assert out["focal"] == pytest.approx((a + b) / 2, rel=1e-5)  # 0.099721
    # Sigmoid head: z = +log3 (p=.75, y=1) and z = -log3 (p=.25, y=0).
    logits = jnp.array([[[[L3], [-L3]]]])
    labels = jnp.array([[[1, 0]]])
    out = terms(("focal", "ce", "bce"), logits=logits, labels=labels, head="sigmoid")
    fa = 0.25 * 0.25**2 * NLL_75  # alpha for the foreground pixel
    fb = 0.75 * 0.25**2 * NLL_75  # 1 - alpha for the background pixel
    assert out["focal"] == pytest.approx((fa + fb) / 2, rel=1e-5)
    assert out["ce"] == pytest.approx(NLL_75, rel=1e-6)
    assert out["bce"] == pytest.approx(NLL_75, rel=1e-6)


def test_dice_family():
    out = terms(("dice", "inv_dice", "tversky", "dice_inv", "switching"))
    # Class 1: I = .75 + .25 = 1, P = 1, G = 2 -> Dice 2/3. Class 0: I = 0 -> Dice 0.
    assert out["dice"] == pytest.approx(1 - 2 / 3, rel=1e-6)
    assert out["inv_dice"] == pytest.approx(1.0, rel=1e-6)
    # Tversky class 1: FP = P - I = 0, FN = G - I = 1 -> 1 / (1 + .7).
    assert out["tversky"] == pytest.approx(1 - 1 / 1.7, rel=1e-6)
    assert out["dice_inv"] == pytest.approx(0.5 * (1 / 3) + 0.5 * 1.0, rel=1e-6)
    bce = (2 * NLL_75 + 2 * NLL_25) / 4
    assert out["switching"] == pytest.approx(bce + 0.5 * (1 / 3) + 0.5, rel=1e-6)


def test_smoothing():
    out = terms(("dice", "inv_dice"), params={**P, "smooth": 1.0})
    assert out["dice"] == pytest.approx(1 - 3 / 4, rel=1e-6)  # (2 + 1) / (3 + 1)
    assert out["inv_dice"] == pytest.approx(1 - 1 / 2, rel=1e-6)  # (0 + 1) / (1 + 1)


def test_weighted_sum_and_vmapped_replicas():
    key = jax.random.key(0)
    logits = jax.random.normal(key, (2, 8, 8, 4))
    labels = jax.random.randint(jax.random.key(1), (2, 8, 8), 0, 4)
    counts = np.array([50.0, 5.0, 5.0, 4.0])
    w = {"ce": jnp.array([1.0, 0.5, 0.0]), "dice": jnp.array([1.0, 2.0, 0.3]),
         "focal": jnp.array([0.0, 1.0, 0.5]), "tversky": jnp.array([0.2, 0.0, 1.0]),
         "wce": jnp.array([0.1, 0.2, 0.3]), "switching": jnp.array([0.5, 0.0, 1.0])}
    p = {**P, "focal_gamma": jnp.array([0.0, 1.0, 3.0]), "lam": jnp.array([0.1, 0.5, 0.9]),
         "tversky_alpha": jnp.array([0.3, 0.5, 0.7]), "ecn_beta": jnp.array([0.9, 0.99, 0.999])}
    p = {k: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (3,)) for k, v in p.items()}

    def one(wr, pr):
        return losses.total_loss(logits, labels, wr, pr, head="softmax", num_classes=4,
                                 class_counts=counts)[0]

    stacked = jax.vmap(one)(w, p)
    for r in range(3):
        single = one({k: v[r] for k, v in w.items()}, {k: v[r] for k, v in p.items()})
        assert float(stacked[r]) == pytest.approx(float(single), rel=1e-5)
    # The weighted sum is the sum of the weighted terms.
    wr = {k: float(v[1]) for k, v in w.items()}
    pr = {k: float(v[1]) for k, v in p.items()}
    vals = losses.term_values(logits, labels, pr, tuple(wr), head="softmax", num_classes=4,
                              class_counts=counts)
    assert float(one(wr, pr)) == pytest.approx(sum(wr[k] * float(vals[k]) for k in wr),
                                               rel=1e-5)


def test_gradients_finite_at_gamma_zero():
    g = jax.grad(lambda z: terms(("focal",), params={**P, "focal_gamma": 0.0},
                                 logits=z)["focal"])(LOGITS)
    assert np.all(np.isfinite(np.asarray(g)))


def test_bad_names_and_ranges():
    with pytest.raises(JaxsegError, match="unknown loss term 'dise'"):
        losses.validate({"dise": 1.0}, P, 4, "softmax")
    with pytest.raises(JaxsegError, match="lam"):
        losses.validate({"dice": 1.0}, {**P, "lam": np.array([0.5, 1.5])}, 4, "softmax")
    with pytest.raises(JaxsegError, match="unknown loss parameter"):
        losses.validate({"dice": 1.0}, {"gama": 1.0}, 4, "softmax")


def test_bce_exact_for_confident_logits():
    # |z| = 30: softmax over 2 classes, logits [30, 0], true class 1 (confidently wrong).
    # -log p_1 = 30 + log(1 + e^-30) = 30; -log(1 - p_0) = -log p_1 = 30 -> BCE = 30.
    # (Clipping 1 - p at 1e-7 capped the second term at 16.1 nats with no gradient.)
    z = jnp.array([[[[30.0, 0.0]]]])
    y = jnp.array([[[1]]])
    out = terms(("ce", "bce"), logits=z, labels=y)
    assert float(out["ce"]) == pytest.approx(30.0, rel=1e-6)
    assert float(out["bce"]) == pytest.approx(30.0, rel=1e-6)
    # Gradient of BCE w.r.t. the logits: each of the two terms gives (p - y) per class
    # channel, averaged over the 2 channels: d/dz = [1, -1] (as CE's), not halved.
    g = jax.grad(lambda x: terms(("bce",), logits=x, labels=y)["bce"])(z)
    np.testing.assert_allclose(np.asarray(g)[0, 0, 0], [1.0, -1.0], atol=1e-6)
    # Sigmoid head: z = 30 with label 0 and z = -30 with label 1: BCE = CE = 30, and the
    # gradients agree (sigmoid(z) - y = +1 and -1, over 2 pixels: +-0.5).
    zs = jnp.array([[[[30.0], [-30.0]]]])
    ys = jnp.array([[[0, 1]]])
    out = terms(("ce", "bce"), logits=zs, labels=ys, head="sigmoid")
    assert float(out["bce"]) == pytest.approx(float(out["ce"]), rel=1e-6)
    assert float(out["bce"]) == pytest.approx(30.0, rel=1e-6)
    for name in ("bce", "ce"):
        g = jax.grad(lambda x, n=name: terms((n,), logits=x, labels=ys, head="sigmoid")[n])(zs)
        np.testing.assert_allclose(np.asarray(g).ravel(), [0.5, -0.5], atol=1e-6)


def test_log1m_probs_is_log_of_the_other_classes():
    # Reference in float64: log(1 - p_c) = log(sum_{j != c} e^z_j) - log(sum_j e^z_j),
    # finite for the class at p = 1 - 4e-17 where log1p(-p) is -inf even in float64.
    z = np.array([2.0, -1.0, 0.5, 40.0])
    want = [np.log(np.exp(np.delete(z, c)).sum()) - np.log(np.exp(z).sum()) for c in range(4)]
    got = np.asarray(losses.log1m_probs(jax.nn.log_softmax(jnp.asarray(z[None], jnp.float32))))
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    assert want[3] == pytest.approx(-37.7587, abs=1e-3)


def test_effective_number_weights_on_cmr96_counts(tfds_dir):
    from conftest import shared_dir

    from jaxseg import configs
    from jaxseg.data import datasets

    c = configs.default().data
    c.name, c.tfds_dir, c.source_dir = "cmr96", tfds_dir, shared_dir("cmr96")
    counts = datasets.load(c).class_counts
    np.testing.assert_array_equal(counts, [758897, 48826, 56075, 57802])
    beta = 0.999
    # Raw pixel counts (Cui et al.'s samples): beta**n is 0 in float32 for every class, so
    # every weight is 1 and wce is plain CE (the study's first wce rows).
    raw = np.asarray(losses.effective_number_weights(
        losses.ecn_sample_counts(counts, "pixels"), beta))
    np.testing.assert_allclose(raw, [1, 1, 1, 1], rtol=1e-6)
    # Percentages (the source study): n = [82.35, 5.30, 6.08, 6.27] %.
    pct = 100 * counts / counts.sum()
    w = (1 - beta) / (1 - beta**pct)
    w = 4 * w / w.sum()  # RV 14.96x, MYO 13.03x, LV 12.64x the background
    got = np.asarray(losses.effective_number_weights(
        losses.ecn_sample_counts(counts, "percent"), beta))
    np.testing.assert_allclose(got, w, rtol=1e-4)
    assert got[1] / got[0] == pytest.approx(14.96, abs=0.01)
    with pytest.raises(JaxsegError, match="ecn_counts"):
        losses.ecn_sample_counts(counts, "percentage")


def test_negative_weights_and_unknown_static_choices_are_refused():
    with pytest.raises(JaxsegError, match=r"loss.weights.dice=\[1.0, -0.5\].*>= 0"):
        losses.validate({"dice": np.array([1.0, -0.5])}, P, 4, "softmax")
    from jaxseg import configs, validation

    for field, value in (("loss.ecn_counts", "percentage"), ("eval.bf_convention", "matlb")):
        c = configs.default()
        section, name = field.split(".")
        setattr(c[section], name, value)
        with pytest.raises(JaxsegError, match=f"{field}='{value}'"):
            validation.validate(c)

