"""Study: loss functions and their combinations (GUIDE §6), 4-class U-Net on cmr96.

Command:
  jaxseg sweep --config=experiments/loss_functions.py --workdir=runs/loss_functions
  (smoke test: --config=experiments/loss_functions.py:smoke)

Grid: 9 losses x 3 seeds = 27 runs, planned into ONE cohort (loss choices are numeric weights
over the union of terms). Expected run time on 2 CPU cores (this project's dev machine, XLA
CPU, jax 0.10.2): ~113 min by the planner's --dry_run estimate of 2026-11-23 (training,
evaluation and compilation; early stopping shortens it; measured studies took 7-18% longer than
it: upsampling.py 27.5 min against 25.7). Result: not yet measured on the full grid; the smoke
variant runs in CI.
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
