"""Study: decoder up-sampling, transposed convolution vs bilinear + 1x1 conv, on cmr96.

Command:
  jaxseg sweep --config=experiments/upsampling.py --workdir=runs/upsampling

Grid: 2 modes x 3 seeds = 6 runs in 2 cohorts (planner estimate ~24 min on 2 CPU cores,
compile not included).

Expected (27 min 30 s, 2 CPU cores, 2026-11-22): transpose 0.857 ± 0.007, bilinear 0.850 ±
0.010 (3 seeds): within seed spread.
Notes, tables and figures: docs/studies/upsampling/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """The study's base config."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Both modes, 3 seeds."""
    grid(add, {"model.upsample": ["transpose", "bilinear"]}, seeds=1 if arg == "smoke" else 3)
