"""Study: optimizer x learning rate, on cmr96.

Optimizers: Adam, AdamW, SGD+momentum, RMSProp, Adagrad, Adamax, Adadelta.

Command:
  jaxseg sweep --config=experiments/optimizer_lr.py --workdir=runs/optimizer_lr

Grid: 7 optimizers x 5 learning rates (1e-5...1e-1) = 35 runs in 7 cohorts (one per optimizer
family). Weight decay: AdamW's decoupled decay of 1e-4 only; the other optimizers train
without (as Adam, SGD and the rest are used by default).

Expected (37 min 14 s, 2 CPU cores, 2026-11-23): best rate each: Adamax 1e-2 0.895, Adam 1e-2
0.888, AdamW (decay 1e-4) 1e-2 0.875, RMSProp 1e-3 0.869, SGD+m 1e-1 0.861, Adagrad 1e-1
0.852, Adadelta 1e-1 0.375; 1e-5 and 1e-4 learn nothing in 11 epochs; the 20 runs it shares
with lr_search stage 1 repeat it to the last digit (1 seed).
Notes, tables and figures: docs/studies/optimizer_lr/

With successive halving (--config.train.halving.min_epochs=2 --config.train.halving.eta=2):
measured side by side with the full grid (2026-12-01, 2 CPU cores, commit b1f03a5,
benchmarks/halving_compare.py): 34.4% of its replica-steps, 40.5% of its wall time, 28 of 35
runs pruned; best RMSProp 1e-3 0.869, which the paired per-image test tells from the full
grid's best (Adamax 1e-2 0.895, pruned at epoch 2 with Adam's and AdamW's 1e-2: p = 0.014).
With the whole grid ranked together (--config.train.halving.group=grid, min_epochs=4, eta=3:
rungs 4, 12, 36), side by side with the full grid (2026-12-02, 2 CPU cores, commits
2d16f54 / 50a8387, benchmarks/halving_compare.py): 33.1% of its replica-steps, 37.3% of its
wall time (1380 s vs 3697 s), 33 of 35 runs pruned, best Adamax 1e-2 0.8953: the full grid's
best, the same run to the last digit. The PyTorch reference under Optuna with the same grid
and rungs (benchmarks/optuna_peer.py, same day, same machine): 1170 s, best SGD+m 1e-1 0.882
(its own training): jaxseg 1.18x its time, fewer epochs (306 vs 391) at a slower step.
docs/studies/optimizer_lr/halving/
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
