"""Study: training-data fraction 20-100% (each replica trains on its own subset), on cmr96.

Command:
  jaxseg sweep --config=experiments/data_fraction.py --workdir=runs/data_fraction

Early stopping is off: every run trains 50 epochs and reports its best epoch (validation
Dice). The studies' patience counts epochs, and an epoch of 20% of the images is 2 steps: the
first launch of this study, with the common patience of 10, stopped five of the six 20% and
30% runs after epoch 11 (22 steps; their validation loss was lowest after epoch 1, with
BatchNorm's running statistics still far off) at a validation Dice of 0.10-0.20: a table
about the stopping rule rather than the data.

Grid: 6 fractions x 3 seeds = 18 runs in one cohort.

Expected (51 min 37 s, 2 CPU cores, 2026-11-23): 100% 0.857 ± 0.007, 80% 0.828, 60% 0.809, 40%
0.756, 30% 0.687, 20% 0.652 ± 0.041 (3 seeds; RV falls most).
Notes, tables and figures: docs/studies/data_fraction/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """The study's base config, without early stopping (see the module docstring)."""
    c = configs.study(arg)
    c.train.early_stopping = 0
    return c


def sweep(add, arg=None):
    """Fractions x seeds (the subset drawn with the same seed nests across fractions)."""
    grid(add, {"data.fraction": configs.smoke_axis([0.2, 0.3, 0.4, 0.6, 0.8, 1.0], arg)},
         seeds=1 if arg == "smoke" else 3)
