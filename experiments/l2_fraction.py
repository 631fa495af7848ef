"""Study: L2 weight decay x training-data fraction (Adam with coupled L2), on cmr96.

Command:
  jaxseg sweep --config=experiments/l2_fraction.py --workdir=runs/l2_fraction

Early stopping is off, as in data_fraction.py: a patience counted in epochs stops the small
fractions (2 steps an epoch at 20%) before they have trained.

Grid: 5 weight decays x 6 fractions (20-100%) = 30 runs in one cohort (each replica trains on
its own subset), one seed each.

Expected (35 min 57 s, 2 CPU cores, 2026-11-23): coupled L2 ≤ 1e-3 within seed spread at every
fraction; 1e-2 best at 100% (0.873 vs 0.851 without) and worst at 20% (0.585 vs 0.674) (1
seed).
Notes, tables and figures: docs/studies/l2_fraction/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """Adam with coupled L2 (Adam + L2 in the gradient)."""
    c = configs.study(arg)
    c.optim.weight_decay_mode = "coupled"
    c.train.early_stopping = 0  # patience in epochs is unfair to small fractions (data_fraction.py)
    return c


def sweep(add, arg=None):
    """Weight decay x data fraction."""
    grid(add, {"optim.weight_decay": configs.smoke_axis([0.0, 1e-5, 1e-4, 1e-3, 1e-2], arg),
               "data.fraction": configs.smoke_axis([0.2, 0.3, 0.4, 0.6, 0.8, 1.0], arg)})
