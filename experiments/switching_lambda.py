"""Study: the switching loss and the Dice/inverse-Dice mix over a lambda grid, on cmr96.

Losses: BCE + lam*Dice + (1-lam)*inverse Dice, and lam*Dice + (1-lam)*inverse Dice.

Command:
  jaxseg sweep --config=experiments/switching_lambda.py --workdir=runs/switching_lambda

Grid: 2 losses x 6 lambdas x 2 seeds = 24 runs in one cohort.

Expected (47 min 44 s, 2 CPU cores, 2026-11-23): λ ≥ 0.4: 0.854-0.864 for both BCE + λD +
(1-λ)ID and λD + (1-λ)ID (within seed spread); λ = 0: 0.828 with BCE, 0.187 without (inverse
Dice alone learns no foreground) (2 seeds).
Notes, tables and figures: docs/studies/switching_lambda/
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
