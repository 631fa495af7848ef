"""Study: loss functions and their combinations (GUIDE §6), 4-class U-Net on cmr96.

Command:
  jaxseg sweep --config=experiments/loss_functions.py --workdir=runs/loss_functions
  (smoke test: --config=experiments/loss_functions.py:smoke)

Grid: 9 losses x 3 seeds = 27 runs, planned into ONE cohort (loss choices are numeric weights
over the union of terms).

Measured 2026-11-23 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above as committed, on the machine alone but for a few niced unit tests: 52 min 58 s
wall. The planner's --dry_run estimated 112.9 min from a step measured at 0.687 s on
2026-11-22; this run's epochs with all 27 replicas alive (50-78 s for 189 steps and the
evaluation) imply about 0.35 s a step: machine drift, see docs/benchmarks.md. 9 of 27 runs
stopped early, which skipped 427 replica-steps.
Validation mean foreground Dice at each run's best epoch, mean +- std over 3 seeds:
  loss                    Dice            RV              HD95 (px)
  dice                    0.865 +- 0.011  0.802 +- 0.033  6.4
  0.5tversky+dice+0.5bce  0.865 +- 0.007  0.795 +- 0.028  6.1
  dice+focal              0.861 +- 0.008  0.790 +- 0.022  5.5
  tversky                 0.858 +- 0.011  0.791 +- 0.030  7.6
  ce+dice                 0.858 +- 0.007  0.786 +- 0.018  5.8
  switching(0.5)          0.858 +- 0.002  0.790 +- 0.016  5.6
  wce                     0.835 +- 0.001  0.749 +- 0.012  6.0
  bce                     0.830 +- 0.020  0.732 +- 0.037  7.4
  focal                   0.813 +- 0.005  0.707 +- 0.025  9.5
Every loss with a region (Dice/Tversky) term lands within one seed spread of the others
(0.858-0.865); the pixel-wise losses alone trail by 0.02-0.05 Dice, mostly on the RV, the
smallest and most variable class; focal alone is last. Tables and figures:
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
