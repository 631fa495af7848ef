"""Every loss of the source studies, multi-class and binary, with traced parameters.

A loss is a weighted sum of named *terms*; which terms exist is static (part of
the compiled program), while every weight and every loss parameter may be a
traced per-replica scalar.

Terms (``TERMS``):

* ``ce``: categorical cross-entropy; with a sigmoid head this is binary CE.
* ``bce``: binary cross-entropy of every class channel (one-vs-rest), averaged over
  classes; for a sigmoid head it equals ``ce``. ``log(1 - p_c)`` is the log-sum-exp of
  the other classes' log-probabilities, exact where ``1 - p_c`` rounds to 0 in float32.
* ``wce``: cross-entropy weighted by the effective number of samples,
  ``w_c = (1 - beta) / (1 - beta**n_c)`` normalised to sum to the number of
  classes (Cui et al., 2019). ``n_c`` is the class's share of the training pixels in
  percent (``loss.ecn_counts=percent``, as the source study: with beta 0.999 the
  weights then differ, RV about 15x the background on cmr96) or its raw pixel count
  (``pixels``, Cui et al.'s samples; with 10^4+ pixels a class ``beta**n_c`` is 0 and
  every weight is 1, i.e. plain CE).
* ``focal``: ``-alpha_t (1 - p_t)**gamma log p_t`` (Lin et al., 2017); ``alpha_t`` is
  ``alpha`` for foreground and ``1 - alpha`` for background with a sigmoid head, and
  ``alpha`` for every class with a softmax head.
* ``dice``: soft Dice loss, ``1 -`` mean over foreground classes of
  ``(2 I + s) / (P + G + s)`` with sums over the whole batch.
* ``inv_dice``: inverse Dice, the soft Dice loss of the background class.
* ``tversky``: ``1 -`` mean over foreground of ``(I + s) / (I + a FP + b FN + s)``.
* ``switching``: ``BCE + lam * Dice + (1 - lam) * inverse Dice``.
* ``dice_inv``: ``lam * Dice + (1 - lam) * inverse Dice``.

Parameters (``PARAMS``): ``focal_gamma``, ``focal_alpha``, ``tversky_alpha``,
``tversky_beta``, ``lam``, ``ecn_beta``, ``smooth``.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.errors import JaxsegError

TERMS = ("ce", "bce", "wce", "focal", "dice", "inv_dice", "tversky", "switching", "dice_inv")
PARAMS = ("focal_gamma", "focal_alpha", "tversky_alpha", "tversky_beta", "lam", "ecn_beta",
          "smooth")
_EPS = 1e-7


def class_log_probs(logits: jax.Array, head: str) -> jax.Array:
    """Log-probabilities of every class, ``(..., K)``, for either head.

    A sigmoid head's single logit ``z`` becomes the two classes
    ``[log sigmoid(-z), log sigmoid(z)]`` so that every loss and metric below is
    written once for ``K`` classes.
    """
    if head == "sigmoid":
        z = logits[..., 0]
        return jnp.stack([jax.nn.log_sigmoid(-z), jax.nn.log_sigmoid(z)], axis=-1)
    return jax.nn.log_softmax(logits, axis=-1)


ECN_COUNTS = ("percent", "pixels")


def ecn_sample_counts(pixel_counts, unit: str) -> np.ndarray:
    """The ``n_c`` of :func:`effective_number_weights` from the training pixel counts.

    Args:
      pixel_counts: ``(K,)`` training pixels of each class.
      unit: ``percent`` (each class's share of the pixels, in %) or ``pixels`` (as given).

    Returns:
      ``(K,)`` float64.
    """
    counts = np.asarray(pixel_counts, np.float64)
    if unit == "percent":
        return 100.0 * counts / max(counts.sum(), 1.0)
    if unit == "pixels":
        return counts
    raise JaxsegError(f"loss.ecn_counts={unit!r}: choose from {list(ECN_COUNTS)}")


def effective_number_weights(class_counts, beta) -> jax.Array:
    """Class weights ``(1 - beta) / (1 - beta**n_c)``, normalised to sum to K.

    Args:
      class_counts: ``(K,)`` effective-number sample counts ``n_c`` of each class
        (:func:`ecn_sample_counts`); a class with ``n_c = 0`` never occurs and gets weight 0.
      beta: in [0, 1); may be traced.

    Returns:
      ``(K,)`` weights.
    """
    n = jnp.asarray(class_counts, jnp.float32)
    present = n > 0
    w = jnp.where(present, (1.0 - beta) / (1.0 - jnp.power(beta, jnp.where(present, n, 1.0))),
                  0.0)
    return w * n.shape[0] / jnp.sum(w)


def log1m_probs(logp: jax.Array) -> jax.Array:
    """``log(1 - p_c)`` for every class from the log-probabilities ``(..., K)``.

    ``1 - p_c`` is the sum of the other classes' probabilities, so its log is their
    log-sum-exp: exact (and with the right gradient) where ``1 - p_c`` itself rounds to 0.
    """
    k = logp.shape[-1]
    others = jnp.where(jnp.eye(k, dtype=bool), -jnp.inf, logp[..., None, :])
    return jax.nn.logsumexp(others, axis=-1)


def _soft_overlap(probs, onehot):
    """Per-class sums over batch and pixels: intersection, predicted mass, true mass."""
    axes = tuple(range(probs.ndim - 1))
    return (jnp.sum(probs * onehot, axes), jnp.sum(probs, axes), jnp.sum(onehot, axes))


def _dice_per_class(probs, onehot, smooth):
    inter, p, g = _soft_overlap(probs, onehot)
    return (2.0 * inter + smooth) / (p + g + smooth)


def term_values(logits: jax.Array, labels: jax.Array, params: Mapping[str, jax.Array],
                terms, *, head: str, num_classes: int, class_counts=None) -> dict:
    """Computes the named loss terms (unweighted).

    Args:
      logits: ``(B, H, W, C)`` model outputs.
      labels: ``(B, H, W)`` int labels.
      params: loss parameters (``PARAMS``), scalars or traced.
      terms: the names of the terms to compute.
      head: ``softmax`` | ``sigmoid``.
      num_classes: K, including background.
      class_counts: ``(K,)`` wce's sample counts ``n_c`` (:func:`ecn_sample_counts`).

    Returns:
      ``{term: scalar}``.
    """
    logp = class_log_probs(logits, head)
    probs = jnp.exp(logp)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=logp.dtype)
    smooth = params.get("smooth", 1.0)
    cache = {}

    def nll():
        if "nll" not in cache:
            cache["nll"] = -jnp.sum(onehot * logp, axis=-1)
        return cache["nll"]

    def bce():
        if "bce" not in cache:
            cache["bce"] = -jnp.mean(onehot * logp + (1.0 - onehot) * log1m_probs(logp))
        return cache["bce"]

    def dice_loss():
        return 1.0 - jnp.mean(_dice_per_class(probs, onehot, smooth)[1:])

    def inv_dice_loss():
        return 1.0 - _dice_per_class(probs, onehot, smooth)[0]

    out = {}
    for name in terms:
        if name == "ce":
            out[name] = jnp.mean(nll())
        elif name == "bce":
            out[name] = bce()
        elif name == "wce":
            if class_counts is None:
                raise JaxsegError("loss term 'wce' needs the training class counts")
            w = effective_number_weights(class_counts, params["ecn_beta"])
            out[name] = jnp.mean(jnp.sum(onehot * w, -1) * nll())
        elif name == "focal":
            gamma, alpha = params["focal_gamma"], params["focal_alpha"]
            logp_t = -nll()
            p_t = jnp.exp(logp_t)
            if head == "sigmoid":
                alpha_t = jnp.where(labels == 1, alpha, 1.0 - alpha)
            else:
                alpha_t = alpha
            # (1 - p_t)**gamma via exp/log1p: finite gradients at gamma = 0 and p_t = 1.
            mod = jnp.exp(gamma * jnp.log(jnp.clip(1.0 - p_t, _EPS, 1.0)))
            out[name] = -jnp.mean(alpha_t * mod * logp_t)
        elif name == "dice":
            out[name] = dice_loss()
        elif name == "inv_dice":
            out[name] = inv_dice_loss()
        elif name == "tversky":
            a, b = params["tversky_alpha"], params["tversky_beta"]
            inter, p, g = _soft_overlap(probs, onehot)
            ti = (inter + smooth) / (inter + a * (p - inter) + b * (g - inter) + smooth)
            out[name] = 1.0 - jnp.mean(ti[1:])
        elif name == "switching":
            lam = params["lam"]
            out[name] = bce() + lam * dice_loss() + (1.0 - lam) * inv_dice_loss()
        elif name == "dice_inv":
            lam = params["lam"]
            out[name] = lam * dice_loss() + (1.0 - lam) * inv_dice_loss()
        else:
            raise JaxsegError(f"unknown loss term {name!r}; choose from {list(TERMS)}")
    return out


def total_loss(logits, labels, weights: Mapping[str, jax.Array], params: Mapping[str, jax.Array],
               *, head: str, num_classes: int, class_counts=None) -> tuple[jax.Array, dict]:
    """The weighted sum of the named terms.

    Args:
      logits: ``(B, H, W, C)`` model outputs.
      labels: ``(B, H, W)`` int labels.
      weights: ``{term: weight}``; the keys are static, the weights may be traced.
      params: loss parameters, may be traced.
      head: ``softmax`` | ``sigmoid``.
      num_classes: K.
      class_counts: wce's sample counts ``n_c`` (:func:`ecn_sample_counts`).

    Returns:
      ``(loss, {term: value})``.
    """
    values = term_values(logits, labels, params, tuple(weights), head=head,
                         num_classes=num_classes, class_counts=class_counts)
    loss = sum(weights[name] * values[name] for name in weights)
    return loss, values


def validate(weights: Mapping, params: Mapping, num_classes: int, head: str) -> None:
    """Checks loss names and parameter ranges before anything is compiled.

    Args:
      weights: ``{term: weight}`` (per-replica arrays allowed).
      params: ``{param: value}`` (per-replica arrays allowed).
      num_classes: K.
      head: the model head.
    """
    if not weights:
        raise JaxsegError("loss.weights is empty; name at least one term, e.g. {'ce': 1.0}")
    for name in weights:
        if name not in TERMS:
            raise JaxsegError(f"unknown loss term {name!r}; choose from {list(TERMS)}")
    for name, w in weights.items():
        if np.any(np.asarray(w, np.float64) < 0):
            raise JaxsegError(f"loss.weights.{name}={np.asarray(w).tolist()}: a loss weight "
                              "must be >= 0 (a negative one trains against its term)")
    for name in params:
        if name not in PARAMS:
            raise JaxsegError(f"unknown loss parameter {name!r}; choose from {list(PARAMS)}")

    def bad(name, ok):
        v = np.asarray(params[name], np.float64)
        if not np.all(ok(v)):
            raise JaxsegError(f"loss.params.{name}={v.tolist()} is out of range")

    bad("focal_gamma", lambda v: v >= 0)
    bad("focal_alpha", lambda v: (v >= 0) & (v <= 1))
    bad("tversky_alpha", lambda v: v >= 0)
    bad("tversky_beta", lambda v: v >= 0)
    bad("lam", lambda v: (v >= 0) & (v <= 1))
    bad("ecn_beta", lambda v: (v >= 0) & (v < 1))
    bad("smooth", lambda v: v >= 0)
    if num_classes < 2:
        raise JaxsegError(f"data.num_classes={num_classes}: segmentation needs >= 2 classes")
