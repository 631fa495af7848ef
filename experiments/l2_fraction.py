"""Study: L2 weight decay x training-data fraction (Adam with coupled L2), on cmr96.

Command:
  jaxseg sweep --config=experiments/l2_fraction.py --workdir=runs/l2_fraction

Early stopping is off, as in data_fraction.py: a patience counted in epochs stops the small
fractions (2 steps an epoch at 20%) before they have trained.

Grid: 5 weight decays x 6 fractions (20-100%) = 30 runs in one cohort (each replica trains on
its own subset), one seed each.

Measured 2026-11-23 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above as committed, on the machine alone but for a few niced commands: 35 min 57 s
wall (the planner's --dry_run estimated 72 min; the machine ran about twice as fast that day
as when the planner's throughput was measured; the small fractions' idle steps, 4,750 of them,
were skipped). Validation mean foreground Dice at each run's best epoch (one seed; the
data_fraction study's seed std is 0.007 at 100% and 0.041 at 20%):
  fraction  L2 0    1e-5   1e-4   1e-3   1e-2
  100%      0.851  0.848  0.858  0.864  0.873
   80%      0.840  0.829  0.839  0.837  0.859
   60%      0.829  0.803  0.823  0.826  0.831
   40%      0.765  0.746  0.748  0.772  0.736
   30%      0.712  0.702  0.718  0.736  0.657
   20%      0.674  0.669  0.673  0.654  0.585
Coupled L2 up to 1e-3 changes little at any fraction (within the seed spread). 1e-2 is the
best setting with 80-100% of the data (+0.02 at 100%, mostly RV) and the worst with 20-40%
(-0.09 at 20%): with 2-4 steps an epoch, strong L2 holds the weights back before they have
trained. The fraction itself matters far more than L2 (0.85 -> 0.67 from 100% to 20% without
L2). Tables and figures: docs/studies/l2_fraction/.
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
