"""Study: training-data fraction 20-100% (each replica trains on its own subset), on cmr96.

Command:
  jaxseg sweep --config=experiments/data_fraction.py --workdir=runs/data_fraction

Grid: 6 fractions x 3 seeds = 18 runs in one cohort. Expected run time on 2 CPU cores (this
project's dev machine, XLA CPU, jax 0.10.2): ~43 min by the planner's --dry_run estimate of
2026-11-23 (training, evaluation and compilation; early stopping shortens it; measured studies
took 7-18% longer than it: upsampling.py 27.5 min against 25.7). Result: not yet measured on
the full grid; the smoke variant runs in CI.
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """The study's base config."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Fractions x seeds (the subset drawn with the same seed nests across fractions)."""
    grid(add, {"data.fraction": configs.smoke_axis([0.2, 0.3, 0.4, 0.6, 0.8, 1.0], arg)},
         seeds=1 if arg == "smoke" else 3)
