"""Study: optimizer x learning rate, on cmr96.

Optimizers: Adam, AdamW, SGD+momentum, RMSProp, Adagrad, Adamax, Adadelta.

Command:
  jaxseg sweep --config=experiments/optimizer_lr.py --workdir=runs/optimizer_lr

Grid: 7 optimizers x 5 learning rates (1e-5...1e-1) = 35 runs in 7 cohorts (one per optimizer
family). Weight decay: AdamW's decoupled decay of 1e-4 only; the other optimizers train
without (as Adam, SGD and the rest are used by default).

Measured 2026-11-23 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above as committed: 37 min 14 s (one launch killed after 99 s and the same command
re-run, which resumed cohort c000 from its epoch-5 checkpoint; planner's built-in estimate
148 min, --dry_run --calibrate 52.6 min; 28 of 35 runs stopped early). Validation mean
foreground Dice at each run's best epoch, one seed:
               1e-5   1e-4   1e-3   1e-2   1e-1
  Adam         0.135  0.197  0.851  0.888  0.811
  AdamW 1e-4   0.135  0.197  0.844  0.875  0.757
  SGD+m 0.9    0.128  0.134  0.383  0.783  0.861
  RMSProp      0.135  0.248  0.869  0.855  0.551
  Adagrad      0.128  0.129  0.142  0.711  0.852
  Adamax       0.133  0.148  0.800  0.895  0.831
  Adadelta     0.128  0.128  0.130  0.141  0.375
Best: Adamax 1e-2 0.895, Adam 1e-2 0.888, AdamW 1e-2 0.875, RMSProp 1e-3 0.869, SGD+momentum
1e-1 0.861, Adagrad 1e-1 0.852; Adadelta (whose learning rate scales an update that is already
unit-sized; its paper uses 1.0) reaches 0.375 at 1e-1 and nothing below. Every optimizer at
1e-5 and 1e-4 was stopped at epoch 11 by early stopping on validation loss without learning the
structures. AdamW's decay 1e-4 trails Adam by 0.007-0.054 at 1e-3...1e-1, all five AdamW runs
stopped early (one seed: not a ranking). The Adam, SGD, RMSProp and Adagrad rows are
experiments/lr_search.py's stage 1 (same base config, seed and rates): all 20 runs gave the
same numbers to the last digit there, Adam's cohort here after the resume, so the runs are
deterministic on this machine and resuming changed nothing.
A first launch of this file (2026-11-23, 39 min) gave every optimizer decoupled decay 1e-4,
which made Adam the same computation as AdamW (their 10 rows agreed to the last digit; a test
now refuses two runs of one experiment that compute the same thing); its numbers are not these
(e.g. Adamax 1e-2 0.901, SGD+momentum 1e-1 0.879, Adam(W) 1e-2 0.875).
Tables and figures (grid.png is the optimizer x learning-rate matrix): docs/studies/optimizer_lr/.
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
