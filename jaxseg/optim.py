"""Optimizers, regularisation and learning-rate schedules as optax chains built from config.

The chain is wrapped in ``optax.inject_hyperparams`` so that the learning rate,
weight decay, momentum and L1 lambda live in the optimizer *state*: each replica's
state carries its own values, which is what lets one compiled program train
replicas with different hyperparameters (vmapped or written out one by one).

Schedules are per epoch, as in the source studies (Keras/PyTorch schedulers step
once per epoch): the engine sets ``learning_rate = base_lr * schedule(epoch) *
plateau_scale`` in every replica's state before each epoch. Reduce-on-plateau is
``optax.contrib.reduce_on_plateau``, fed the validation loss once per evaluation.

Regularisation: L1 (``lambda * sign(w)``) and L2 are applied to convolution and
dense kernels only (not to biases or norm parameters), like Keras kernel
regularisers. ``weight_decay_mode`` ``coupled`` adds ``wd * w`` to the gradient
before the optimizer's scaling (Adam + L2); ``decoupled`` adds it after, scaled
by the learning rate only (AdamW). ``default`` is decoupled for ``adamw`` and
coupled for everything else.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxseg.errors import JaxsegError, check_choice

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax", "adadelta")
SCHEDULES = ("constant", "step", "exponential", "piecewise", "cosine", "plateau")
DEFAULT_MOMENTUM = {"sgd": 0.9, "rmsprop": 0.0}


def _kernels(params):
    """True for weight matrices/kernels (ndim >= 2), False for biases and norm params."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def add_l1(l1) -> optax.GradientTransformation:
    """Adds the gradient of ``l1 * sum(|w|)``, i.e. ``l1 * sign(w)``, to the updates.

    Args:
      l1: the L1 lambda (may be traced).

    Returns:
      A stateless gradient transformation (needs ``params``).
    """

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("add_l1 needs params")
        return jax.tree.map(lambda g, p: g + l1 * jnp.sign(p), updates, params), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def resolve_momentum(cfg: ml_collections.ConfigDict) -> float:
    """The momentum a config asks for, with ``-1`` meaning the family's default."""
    m = float(cfg.momentum)
    return DEFAULT_MOMENTUM.get(cfg.name, 0.0) if m < 0 else m


def _scaler(cfg, momentum) -> optax.GradientTransformation:
    """The optimizer family's preconditioning, without the learning rate."""
    name = cfg.name
    if name in ("adam", "adamw"):
        return optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    if name == "sgd":
        return optax.trace(decay=momentum, nesterov=bool(cfg.nesterov))
    if name == "rmsprop":
        return optax.chain(optax.scale_by_rms(decay=cfg.rho, eps=cfg.eps),
                           optax.trace(decay=momentum, nesterov=bool(cfg.nesterov)))
    if name == "adagrad":
        return optax.scale_by_rss(initial_accumulator_value=0.1, eps=1e-7)
    if name == "adamax":
        return optax.scale_by_adamax(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    return optax.scale_by_adadelta(rho=cfg.rho, eps=1e-6)


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Builds the optax chain an ``optim`` config describes.

    Args:
      cfg: the ``optim`` config; its structure (family, modes, clipping) is static.

    Returns:
      An ``inject_hyperparams`` transformation whose ``init`` takes params and whose
      state holds ``learning_rate``, ``weight_decay``, ``momentum`` and ``l1``.
      Call :func:`init_optimizer` to initialise it with per-replica values.
    """
    check_choice("optim.name", cfg.name, OPTIMIZERS)
    mode = cfg.weight_decay_mode
    check_choice("optim.weight_decay_mode", mode, ("default", "coupled", "decoupled"))
    if mode == "default":
        mode = "decoupled" if cfg.name == "adamw" else "coupled"

    def chain(learning_rate, weight_decay, momentum, l1):
        txs = []
        if cfg.grad_clip:
            txs.append(optax.clip_by_global_norm(cfg.grad_clip))
        txs.append(optax.masked(add_l1(l1), _kernels))
        if mode == "coupled":
            txs.append(optax.add_decayed_weights(weight_decay, mask=_kernels))
        txs.append(_scaler(cfg, momentum))
        if mode == "decoupled":
            txs.append(optax.add_decayed_weights(weight_decay, mask=_kernels))
        txs.append(optax.scale_by_learning_rate(learning_rate))
        return optax.chain(*txs)

    return optax.inject_hyperparams(chain)(
        learning_rate=float(cfg.learning_rate), weight_decay=float(cfg.weight_decay),
        momentum=resolve_momentum(cfg), l1=float(cfg.l1))


def init_optimizer(tx, params, learning_rate, weight_decay, momentum, l1):
    """Initialises ``tx`` for one replica and writes that replica's hyperparameters.

    Args:
      tx: from :func:`make_optimizer`.
      params: the replica's parameters.
      learning_rate: scalar (may be traced).
      weight_decay: scalar (may be traced).
      momentum: scalar (may be traced).
      l1: scalar (may be traced).

    Returns:
      The optimizer state.
    """
    state = tx.init(params)
    hp = dict(state.hyperparams)
    hp.update(learning_rate=jnp.asarray(learning_rate, jnp.float32),
              weight_decay=jnp.asarray(weight_decay, jnp.float32),
              momentum=jnp.asarray(momentum, jnp.float32), l1=jnp.asarray(l1, jnp.float32))
    return state._replace(hyperparams=hp)


def set_learning_rate(opt_state, learning_rate):
    """Returns ``opt_state`` with its injected learning rate replaced."""
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    return opt_state._replace(hyperparams=hp)


def schedule_factor(cfg: ml_collections.ConfigDict, epoch: int, total_epochs: int) -> float:
    """The learning-rate multiplier for ``epoch`` (0-based) under a per-epoch schedule.

    Args:
      cfg: the ``optim`` config (``schedule`` and its parameters, all static).
      epoch: the epoch about to run.
      total_epochs: the run's length (for ``cosine``).

    Returns:
      The multiplier; ``plateau`` and ``constant`` return 1 (plateau scales separately).
    """
    kind = cfg.schedule
    check_choice("optim.schedule", kind, SCHEDULES)
    if kind == "step":
        return cfg.step_factor ** (epoch // max(int(cfg.step_every), 1))
    if kind == "exponential":
        return cfg.decay_rate**epoch
    if kind == "piecewise":
        if epoch < cfg.hold_epochs:
            return 1.0
        return cfg.piece_factor ** ((epoch - cfg.hold_epochs) // max(int(cfg.piece_every), 1) + 1)
    if kind == "cosine":
        t = min(epoch / max(total_epochs, 1), 1.0)
        return cfg.cosine_min + (1 - cfg.cosine_min) * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


def make_plateau(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """``optax.contrib.reduce_on_plateau`` as the config describes (factor is static)."""
    return optax.contrib.reduce_on_plateau(
        factor=float(cfg.plateau_factor), patience=int(cfg.plateau_patience),
        min_scale=float(cfg.plateau_min_scale), rtol=1e-4, cooldown=0)


def plateau_step(plateau: optax.GradientTransformation, state, value):
    """Feeds one validation loss to a reduce-on-plateau state (once per evaluation).

    Args:
      plateau: from :func:`make_plateau`.
      state: its state.
      value: the validation loss (scalar, may be traced).

    Returns:
      The new state; its ``scale`` multiplies the learning rate.
    """
    _, new_state = plateau.update(jnp.zeros(()), state, value=value)
    return new_state


def validate(cfg: ml_collections.ConfigDict, values: dict) -> None:
    """Checks the optimizer choices and every replica's hyperparameters.

    Args:
      cfg: the ``optim`` config.
      values: ``{field: array of per-replica values}`` for ``learning_rate``,
        ``weight_decay``, ``momentum`` and ``l1``.
    """
    check_choice("optim.name", cfg.name, OPTIMIZERS)
    check_choice("optim.schedule", cfg.schedule, SCHEDULES)
    checks = {
        "learning_rate": (lambda v: np.isfinite(v) & (v > 0), "must be > 0"),
        "weight_decay": (lambda v: np.isfinite(v) & (v >= 0), "must be >= 0"),
        "momentum": (lambda v: (v >= 0) & (v < 1), "must be in [0, 1)"),
        "l1": (lambda v: np.isfinite(v) & (v >= 0), "must be >= 0"),
    }
    for name, (ok, why) in checks.items():
        v = np.asarray(values[name], np.float64)
        if not np.all(ok(v)):
            raise JaxsegError(f"optim.{name}={v.tolist()} {why}")
    validate_schedule(cfg)
    if cfg.schedule == "plateau" and not 0 < cfg.plateau_factor < 1:
        raise JaxsegError(f"optim.plateau_factor={cfg.plateau_factor} must be in (0, 1)")


def validate_schedule(cfg: ml_collections.ConfigDict) -> None:
    """Checks one replica's schedule choice and parameters."""
    check_choice("optim.schedule", cfg.schedule, SCHEDULES)
    if cfg.schedule == "exponential" and not 0 < cfg.decay_rate <= 1:
        raise JaxsegError(f"optim.decay_rate={cfg.decay_rate} must be in (0, 1]")
    if cfg.schedule == "step" and (cfg.step_every < 1 or cfg.step_factor <= 0):
        raise JaxsegError(f"optim.step_every={cfg.step_every} must be >= 1 and "
                          f"optim.step_factor={cfg.step_factor} > 0")
