"""Study: optimizer x learning rate, on cmr96.

Optimizers: Adam, AdamW, SGD+momentum, RMSProp, Adagrad, Adamax, Adadelta.

Command:
  jaxseg sweep --config=experiments/optimizer_lr.py --workdir=runs/optimizer_lr

Grid: 7 optimizers x 5 learning rates (1e-5...1e-1) = 35 runs in 7 cohorts (one per optimizer
family). Expected run time on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2):
~148 min (~2.5 h) by the planner's --dry_run estimate of 2026-11-23 (training, evaluation and
compilation; early stopping shortens it; measured studies took 0.43x to 1.18x of it: 7-18%
longer on 2026-11-22, less than half on 2026-11-23, when the machine ran about twice as fast).
Result: not yet measured on the full grid; the smoke variant runs in CI.
"""

from jaxseg import configs

OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax", "adadelta"]
LRS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


def get_config(arg=None):
    """The study's base config (SGD momentum 0.9; AdamW decay 1e-4)."""
    c = configs.study(arg)
    c.optim.weight_decay = 1e-4
    c.optim.weight_decay_mode = "decoupled"
    return c


def sweep(add, arg=None):
    """Every optimizer over the learning-rate grid."""
    for name in configs.smoke_axis(OPTIMIZERS, arg):
        for lr in configs.smoke_axis(LRS, arg):
            add(**{"optim.name": name, "optim.learning_rate": lr})
