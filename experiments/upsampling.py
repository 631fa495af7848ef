"""Study: decoder up-sampling, transposed convolution vs bilinear + 1x1 conv, on cmr96.

Command:
  jaxseg sweep --config=experiments/upsampling.py --workdir=runs/upsampling

Grid: 2 modes x 3 seeds = 6 runs in 2 cohorts. Result: not yet measured on the full grid;
the smoke variant runs in CI.
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """The study's base config."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Both modes, 3 seeds."""
    grid(add, {"model.upsample": ["transpose", "bilinear"]}, seeds=1 if arg == "smoke" else 3)
