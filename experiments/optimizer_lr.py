"""Study: optimizer x learning rate, on cmr96.

Optimizers: Adam, AdamW, SGD+momentum, RMSProp, Adagrad, Adamax, Adadelta.

Command:
  jaxseg sweep --config=experiments/optimizer_lr.py --workdir=runs/optimizer_lr

Grid: 7 optimizers x 5 learning rates (1e-5...1e-1) = 35 runs in 7 cohorts (one per optimizer
family). Expected run time on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2):
~148 min (~2.5 h) by the planner's --dry_run estimate of 2026-11-23 (training, evaluation and
compilation; early stopping shortens it; measured studies took 0.43x to 1.18x of it: 7-18%
longer on 2026-11-22, less than half on 2026-11-23, when the machine ran about twice as fast;
--dry_run --calibrate times this machine first).
Weight decay: AdamW's decoupled decay of 1e-4 only; the other optimizers train without
(as Adam, SGD and the rest are used by default).

Result: not yet measured with this grid; the smoke variant runs in CI. A first launch
(2026-11-23, 39 min on 2 CPU cores) gave every optimizer decoupled decay 1e-4, which made
Adam the same computation as AdamW (their 10 rows agreed to the last digit; a test now
refuses two runs of one experiment that compute the same thing). Its best learning rates,
validation mean foreground Dice, one seed: Adamax 1e-2 0.901, SGD+momentum 1e-1 0.879,
Adam(W) 1e-2 0.875, RMSProp 1e-2 0.871, Adagrad 1e-1 0.846, Adadelta 1e-1 0.376 (stopped
early; best epoch 11); every optimizer at 1e-5 and 1e-4, and SGD, Adagrad and Adadelta at
1e-3, stayed below 0.39. 29 of 35 runs stopped early.
"""

from jaxseg import configs

OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax", "adadelta"]
LRS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


def get_config(arg=None):
    """The study's base config (SGD momentum 0.9, no weight decay but AdamW's)."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Every optimizer over the learning-rate grid."""
    for name in configs.smoke_axis(OPTIMIZERS, arg):
        for lr in configs.smoke_axis(LRS, arg):
            # AdamW is Adam with decoupled decay (optim.weight_decay_mode "default").
            decay = {"optim.weight_decay": 1e-4} if name == "adamw" else {}
            add(**{"optim.name": name, "optim.learning_rate": lr, **decay})
