"""Optax chains and schedules against hand-worked updates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import configs, optim
from jaxseg.errors import JaxsegError

PARAMS = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
GRADS = jax.tree.map(jnp.ones_like, PARAMS)


def first_update(name, lr=0.01, wd=0.1, l1=0.01, momentum=-1.0, **kw):
    cfg = configs.default().optim
    cfg.name = name
    cfg.momentum = momentum
    for k, v in kw.items():
        setattr(cfg, k, v)
    tx = optim.make_optimizer(cfg)
    state = optim.init_optimizer(tx, PARAMS, lr, wd, optim.resolve_momentum(cfg), l1)
    updates, _ = tx.update(GRADS, state, PARAMS)
    return float(updates["kernel"][0, 0]), float(updates["bias"][0])


def test_first_updates_by_hand():
    # SGD, coupled L2 and L1 on kernels only: -lr * (g + wd*w + l1*sign(w)).
    assert first_update("sgd") == pytest.approx((-0.01 * 1.11, -0.01))
    # AdamW: Adam's first step is -lr * sign(g); decoupled decay adds -lr * wd * w.
    k, b = first_update("adamw")
    assert k == pytest.approx(-0.01 * (1 + 0.1), rel=1e-5) and b == pytest.approx(-0.01, rel=1e-5)
    # Adam + coupled L2: the decay goes through Adam's normalisation: still -lr.
    assert first_update("adam")[0] == pytest.approx(-0.01, rel=1e-5)
    # RMSProp (rho .9, no momentum): g / sqrt(0.1 g^2) = sqrt(10) at the first step.
    assert first_update("rmsprop", wd=0.0, l1=0.0)[0] == pytest.approx(-0.01 * 10**0.5, rel=1e-4)
    # Adagrad: g / sqrt(0.1 + g^2).
    assert first_update("adagrad", wd=0.0, l1=0.0)[0] == pytest.approx(-0.01 / 1.1**0.5,
                                                                        rel=1e-4)
    for name in ("adamax", "adadelta"):
        assert np.isfinite(first_update(name)[0])


def test_momentum_accumulates():
    cfg = configs.default().optim
    cfg.name, cfg.momentum = "sgd", 0.5
    tx = optim.make_optimizer(cfg)
    state = optim.init_optimizer(tx, PARAMS, 1.0, 0.0, 0.5, 0.0)
    _, state = tx.update(GRADS, state, PARAMS)
    u, _ = tx.update(GRADS, state, PARAMS)
    assert float(u["bias"][0]) == pytest.approx(-1.5)  # buf = 0.5 * 1 + 1


def test_per_replica_hyperparameters_vmapped():
    cfg = configs.default().optim
    cfg.name = "sgd"
    tx = optim.make_optimizer(cfg)
    lrs = jnp.array([0.1, 0.2, 0.3])

    def step(lr):
        s = optim.init_optimizer(tx, PARAMS, lr, 0.0, 0.0, 0.0)
        return tx.update(GRADS, s, PARAMS)[0]["bias"][0]

    np.testing.assert_allclose(jax.vmap(step)(lrs), -lrs, rtol=1e-6)


def test_schedules_per_epoch():
    cfg = configs.default().optim
    cfg.schedule = "step"
    cfg.step_every, cfg.step_factor = 100, 0.1
    assert [optim.schedule_factor(cfg, e, 300) for e in (0, 99, 100, 250)] == pytest.approx(
        [1, 1, 0.1, 0.01])
    cfg.schedule, cfg.decay_rate = "exponential", 0.97
    assert optim.schedule_factor(cfg, 10, 100) == pytest.approx(0.97**10)
    cfg.schedule = "piecewise"  # constant 50 epochs, then x0.8 every 10
    got = [optim.schedule_factor(cfg, e, 100) for e in (49, 50, 59, 60, 75)]
    assert got == pytest.approx([1, 0.8, 0.8, 0.64, 0.512])
    cfg.schedule = "cosine"
    assert optim.schedule_factor(cfg, 50, 100) == pytest.approx(0.5)


def test_reduce_on_plateau_scales_after_patience():
    cfg = configs.default().optim
    cfg.plateau_patience, cfg.plateau_factor = 2, 0.5
    plateau = optim.make_plateau(cfg)
    state = plateau.init(jnp.zeros(()))
    scales = []
    for loss in (1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9):
        state = optim.plateau_step(plateau, state, loss)
        scales.append(float(state.scale))
    # Best 0.9 at the 2nd value; the 3rd and 4th do not improve -> after 2 (= patience)
    # the scale halves and the count restarts; the 5th and 6th -> halves again.
    assert scales == [1, 1, 1, 0.5, 0.5, 0.25, 0.25]


def test_bad_hyperparameters():
    cfg = configs.default().optim
    ok = {"learning_rate": [1e-3], "weight_decay": [0.0], "momentum": [0.9], "l1": [0.0]}
    optim.validate(cfg, ok)
    with pytest.raises(JaxsegError, match="optim.learning_rate=\\[-0.1\\] must be > 0"):
        optim.validate(cfg, {**ok, "learning_rate": [-0.1]})
    with pytest.raises(JaxsegError, match="momentum"):
        optim.validate(cfg, {**ok, "momentum": [1.2]})
    cfg.name = "lamb"
    with pytest.raises(JaxsegError, match="unknown optim.name 'lamb'"):
        optim.make_optimizer(cfg)
