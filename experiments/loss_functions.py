"""Study: loss functions and their combinations, 4-class U-Net on cmr96.

Command:
  jaxseg sweep --config=experiments/loss_functions.py --workdir=runs/loss_functions
  (smoke test: --config=experiments/loss_functions.py:smoke)

Grid: 9 losses x 3 seeds = 27 runs, planned into ONE cohort (loss choices are numeric weights
over the union of terms).

Expected (1 h 26 min, 2 CPU cores, 2026-12-01 (commit fc8bc6b)): dice 0.865 ± 0.011, 0.5
Tversky + Dice + 0.5 BCE 0.862, Dice + focal 0.861, switching 0.859, Tversky / CE + Dice
0.858; BCE 0.835, WCE (effective number from class %) 0.815, focal 0.813 ± 0.005 (3 seeds;
region losses within seed spread, pixel-wise ones trail on RV).
Notes, tables and figures: docs/studies/loss_functions/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid

LOSSES = {
    "bce": {"bce": 1.0},
    "wce": {"wce": 1.0},
    "focal": {"focal": 1.0},
    "dice": {"dice": 1.0},
    "tversky": {"tversky": 1.0},
    "ce+dice": {"ce": 1.0, "dice": 1.0},
    "dice+focal": {"dice": 1.0, "focal": 1.0},
    "0.5tversky+dice+0.5bce": {"tversky": 0.5, "dice": 1.0, "bce": 0.5},
    "switching(0.5)": {"switching": 1.0},
}


def get_config(arg=None):
    """The study's base config."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Every loss, 3 seeds (2 losses x 1 seed for smoke)."""
    names = configs.smoke_axis(list(LOSSES), arg)
    for name in names:
        grid(add, {}, seeds=1 if arg == "smoke" else 3, label=name,
             **{"loss.weights": LOSSES[name]})
