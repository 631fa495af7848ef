"""Study: loss functions and their combinations, 4-class U-Net on cmr96.

Command:
  jaxseg sweep --config=experiments/loss_functions.py --workdir=runs/loss_functions
  (smoke test: --config=experiments/loss_functions.py:smoke)

Grid: 9 losses x 3 seeds = 27 runs, planned into ONE cohort (loss choices are numeric weights
over the union of terms).

Measured 2026-12-01 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above at commit fc8bc6b (metrics and the wce/bce fixes of that commit): 1 h 26 min
wall; epochs with every replica alive took 95-126 s (50-78 s on 2026-11-23: this machine's
drift, and a niced cross-check script ran beside it). 10 of 27 runs stopped early, which
skipped 532 replica-steps.
Validation metrics at each run's best epoch (by pooled Dice), mean +- std over 3 seeds; Dice
and BF pooled over the split's pixels, "per image" the mean over images (docs/metrics.md):
  loss                    Dice            RV              per image  BF@2px  HD95 (px)
  dice                    0.865 +- 0.011  0.802 +- 0.033  0.821      0.875   6.4
  0.5tversky+dice+0.5bce  0.862 +- 0.015  0.792 +- 0.023  0.823      0.874   6.4
  dice+focal              0.861 +- 0.008  0.790 +- 0.022  0.829      0.873   5.5
  switching(0.5)          0.859 +- 0.004  0.784 +- 0.020  0.821      0.868   5.5
  tversky                 0.858 +- 0.011  0.791 +- 0.030  0.812      0.863   7.6
  ce+dice                 0.858 +- 0.006  0.786 +- 0.018  0.822      0.871   5.8
  bce                     0.835 +- 0.015  0.739 +- 0.022  0.800      0.832   6.9
  wce                     0.815 +- 0.009  0.720 +- 0.032  0.779      0.791   9.1
  focal                   0.813 +- 0.005  0.707 +- 0.025  0.772      0.791   9.5
Every loss with a region (Dice/Tversky) term lands within one seed spread of the others
(0.858-0.865); the pixel-wise losses alone trail by 0.03-0.05 Dice, mostly on the RV. The
class-weighted CE (effective number from class percentages, RV weighted 15x the background)
is 0.02 below plain BCE and level with focal. The 15 runs without a bce or wce term (focal,
dice, tversky, ce+dice, dice+focal) trained exactly as in the first measurement (2026-11-23,
commit ea3494f's tables: their Dice repeats to the last digit). That launch's wce rows were
plain CE (0.835 +- 0.001: every effective-number weight was 1) and its bce rows clipped
log(1 - p) at 1e-7 (bce 0.830 +- 0.020, 0.5tversky+dice+0.5bce 0.865, switching 0.858, all
within seed spread of today's; at the best weights of today's bce runs no training pixel has a
wrong class above 1 - 1e-7, so the clip changed rounding, not the loss). Tables and figures:
docs/studies/loss_functions/.
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
