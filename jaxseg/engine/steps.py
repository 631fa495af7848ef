"""The pure one-replica functions of training: a cohort's static parts, init, batches, steps.

Everything here is written for one replica and is free of host state;
:mod:`jaxseg.engine.cohort` lifts it to R stacked replicas with the chosen strategy
(:func:`jaxseg.engine.replicas.over_replicas`) and compiles it once per cohort. The data
lives on the device; batch order, augmentation and dropout come from keys derived from each
replica's seed, the epoch and the step, so nothing is fed per batch and a resumed run draws
exactly what an uninterrupted run draws.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxseg import losses, metrics, optim
from jaxseg.data import augment

STAGES = ("encoder", "bottleneck", "decoder")


@dataclasses.dataclass(frozen=True, eq=False)
class Static:
    """Everything fixed for a cohort (part of the compiled program).

    Attributes:
      model: the Flax module.
      tx: the optax chain (hyperparameters injected per replica).
      plateau: the reduce-on-plateau transformation.
      terms: the loss terms present.
      head: ``softmax`` | ``sigmoid``.
      num_classes: K.
      class_counts: wce's effective-number sample counts per class (the training pixel
        counts in the unit ``loss.ecn_counts`` names).
      augment: the augmentation config.
      dropout: per stage, whether any replica uses dropout there.
      tolerance: boundary F1 tolerance (pixels).
      num_volumes: validation volumes (0 for 2-D data).
      side_weight: the weight of each deep-supervision side output's loss (UNet 3+).
    """

    model: object
    tx: optax.GradientTransformation
    plateau: optax.GradientTransformation
    terms: tuple
    head: str
    num_classes: int
    class_counts: np.ndarray
    augment: ml_collections.ConfigDict
    dropout: tuple
    tolerance: float
    num_volumes: int
    side_weight: float = 1.0


def _loss_args(static: Static, hp: dict):
    weights = {t: hp[f"loss.weights.{t}"] for t in static.terms}
    params = {p: hp[f"loss.params.{p}"] for p in losses.PARAMS if f"loss.params.{p}" in hp}
    return weights, params


def _variables(state):
    v = {"params": state["params"]}
    if state["batch_stats"]:
        v["batch_stats"] = state["batch_stats"]
    return v


def init_replica(static: Static, hp: dict, image_shape: tuple) -> dict:
    """Initial state of one replica from its seed and hyperparameters.

    Args:
      static: the cohort's static parts.
      hp: this replica's hyperparameters (scalars).
      image_shape: ``(H, W, C)`` of the training images.

    Returns:
      ``{"params", "batch_stats", "opt_state", "plateau"}``.
    """
    key = jax.random.fold_in(jax.random.key(hp["seed"]), 0)
    variables = static.model.init({"params": key}, jnp.zeros((1, *image_shape)))
    params = variables["params"]
    opt_state = optim.init_optimizer(static.tx, params, hp["optim.learning_rate"],
                                     hp["optim.weight_decay"], hp["optim.momentum"],
                                     hp["optim.l1"])
    return {"params": params, "batch_stats": variables.get("batch_stats", {}),
            "opt_state": opt_state, "plateau": static.plateau.init(jnp.zeros(()))}


def epoch_plan(seed, member, epoch, *, batch_size: int, steps: int):
    """One replica's batches for one epoch: its own subset, in its own random order.

    Args:
      seed: the replica's seed.
      member: ``(N,)`` bool, the training images this replica may use (data fraction).
      epoch: the epoch (0-based).
      batch_size: B.
      steps: steps per epoch of the cohort (for the replica with the most images).

    Returns:
      ``(index (steps, B), active (steps,), keys (steps,))``: a replica with fewer
      images has inactive trailing steps; its last batch is filled by wrapping around.
    """
    base = jax.random.key(seed)
    order_key = jax.random.fold_in(jax.random.fold_in(base, 1), epoch)
    step_key = jax.random.fold_in(jax.random.fold_in(base, 2), epoch)
    scores = jnp.where(member, jax.random.uniform(order_key, member.shape), 2.0)
    perm = jnp.argsort(scores)  # members first, in random order
    n = jnp.maximum(jnp.sum(member), 1)
    index = perm[jnp.arange(steps * batch_size) % n].reshape(steps, batch_size)
    active = jnp.arange(steps) < (n + batch_size - 1) // batch_size
    return index, active, jax.random.split(step_key, steps)


def output_loss(static: Static, out, labels, weights: dict, params: dict):
    """The training loss of a model's output: logits, or ``(logits, side logits)``.

    Deep supervision (UNet 3+): the same loss on every side output, weighted by
    ``static.side_weight`` against the main one and normalised so that the total keeps one
    output's scale: ``(L_main + w * sum(L_side)) / (1 + w * n_sides)``.

    Args:
      static: the cohort's static parts.
      out: what the model returned in training.
      labels: ``(B, H, W)``.
      weights: the loss terms' weights.
      params: the loss parameters.

    Returns:
      The scalar loss.
    """
    logits, sides = out if isinstance(out, tuple) else (out, ())
    main, *extra = (losses.total_loss(lg, labels, weights, params, head=static.head,
                                      num_classes=static.num_classes,
                                      class_counts=static.class_counts)[0]
                    for lg in (logits, *sides))
    if not extra:
        return main
    w = static.side_weight
    return (main + w * sum(extra)) / (1.0 + w * len(extra))


def train_step(static: Static, state: dict, acc: dict, hp: dict, lr, alive, index, active,
               key, images, labels):
    """One optimisation step of one replica; frozen, inactive or non-finite steps change nothing.

    Args:
      static: the cohort's static parts.
      state: the replica's state.
      acc: the epoch's accumulators ``{"loss", "count", "bad"}``.
      hp: the replica's hyperparameters.
      lr: the learning rate for this epoch.
      alive: False once the replica stopped early or diverged.
      index: ``(B,)`` the images of this batch.
      active: False for the padding steps of a replica with fewer images.
      key: this step's key.
      images: ``(N, H, W, C)`` all training images (shared).
      labels: ``(N, H, W)`` all training labels (shared).

    Returns:
      ``(state, acc)``.
    """
    # The named scopes only label the ops of each part in profiles and XLA dumps
    # (benchmarks/step_profile.py groups a step's time by them); they change no computation.
    k_aug, k_drop = jax.random.split(key)
    with jax.named_scope("batch"):
        x, y = augment.augment_batch(k_aug, images[index], labels[index], static.augment)
    rates = tuple(hp[f"model.dropout.{s}"] if on else None
                  for s, on in zip(STAGES, static.dropout, strict=True))
    weights, params_ = _loss_args(static, hp)

    def loss_fn(params):
        variables = _variables({**state, "params": params})
        out, mutated = static.model.apply(variables, x, train=True, dropout_rates=rates,
                                          rngs={"dropout": k_drop}, mutable=["batch_stats"])
        with jax.named_scope("loss"):
            loss = output_loss(static, out, y, weights, params_)
        return loss, mutated.get("batch_stats", {})

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    with jax.named_scope("optimizer"):
        opt_state = optim.set_learning_rate(state["opt_state"], lr)
        updates, opt_state = static.tx.update(grads, opt_state, state["params"])
        params = optax.apply_updates(state["params"], updates)
    with jax.named_scope("guard"):  # a non-finite, frozen or padding step changes nothing
        finite = jnp.isfinite(loss) & jnp.all(jnp.array(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        ok = alive & active & finite
        new = {"params": params, "batch_stats": batch_stats, "opt_state": opt_state,
               "plateau": state["plateau"]}
        state = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
        acc = {"loss": acc["loss"] + jnp.where(ok, loss, 0.0),
               "count": acc["count"] + ok.astype(jnp.float32),
               "bad": acc["bad"] | (alive & active & ~finite)}
    return state, acc


def eval_step(static: Static, full: bool, state: dict, hp: dict, images, labels, valid,
              volume, region):
    """Loss, predictions and metric counts of one replica on one evaluation batch.

    Args:
      static: the cohort's static parts.
      full: whether to count boundary pixels too (boundary F1); the per-epoch evaluation
        leaves them to the evaluation of the best weights (``eval.full_metrics``).
      state: the replica's state.
      hp: the replica's hyperparameters (loss weights and parameters).
      images: ``(B, H, W, C)``.
      labels: ``(B, H, W)``.
      valid: ``(B,)`` 1 for real samples, 0 for padding.
      volume: ``(B,)`` volume index per slice (zeros for 2-D data).
      region: ``(B, 4)`` where each image lies (``top, bottom, left, right``): the
        prediction outside it, in the zero padding of a smaller slice, is background.

    Returns:
      ``(EvalMetrics, predictions uint8 (B, H, W))``.
    """
    logits = static.model.apply(_variables(state), images, train=False)
    weights, params_ = _loss_args(static, hp)

    def per_sample(lg, lb):  # per image, so the mean does not depend on the batch size
        return losses.total_loss(lg[None], lb[None], weights, params_, head=static.head,
                                 num_classes=static.num_classes,
                                 class_counts=static.class_counts)[0]

    loss = jax.vmap(per_sample)(logits, labels)
    pred = jnp.argmax(losses.class_log_probs(logits, static.head), -1)
    # The padding's labels are background: scored there, the prediction can only be
    # right for background or a false positive for a class; predict drops it likewise.
    pred = jnp.where(metrics.inside(region, pred.shape[1:]), pred, 0)
    m = metrics.EvalMetrics.single_from_model_output(
        loss=loss, mask=valid, pred=pred, labels=labels, valid=valid,
        num_classes=static.num_classes, tolerance=static.tolerance,
        volume=volume, num_volumes=static.num_volumes, boundary=full)
    return m, pred.astype(jnp.uint8)
