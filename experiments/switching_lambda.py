"""Study: the switching loss and the Dice/inverse-Dice mix over a lambda grid, on cmr96.

Losses: BCE + lam*Dice + (1-lam)*inverse Dice, and lam*Dice + (1-lam)*inverse Dice (GUIDE §6).

Command:
  jaxseg sweep --config=experiments/switching_lambda.py --workdir=runs/switching_lambda

Grid: 2 losses x 6 lambdas x 2 seeds = 24 runs in one cohort. Expected run time on 2 CPU cores
(this project's dev machine, XLA CPU, jax 0.10.2): ~100 min by the planner's --dry_run estimate
of 2026-11-23 (training, evaluation and compilation; early stopping shortens it; measured
studies took 7-18% longer than it: upsampling.py 27.5 min against 25.7). Result: not yet
measured on the full grid; the smoke variant runs in CI.
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid

LAMBDAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def get_config(arg=None):
    """The study's base config."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Both losses over the lambda grid."""
    for loss in ("switching", "dice_inv"):
        grid(add, {"loss.params.lam": configs.smoke_axis(LAMBDAS, arg)},
             seeds=1 if arg == "smoke" else 2, label=loss, **{"loss.weights": {loss: 1.0}})
