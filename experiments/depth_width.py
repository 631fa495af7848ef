"""Study: U-Net depth (3, 4) x base width (16, 32, 64), on cmr96.

Command:
  jaxseg sweep --config=experiments/depth_width.py --workdir=runs/depth_width

Grid: 2 depths x 3 widths x 2 seeds = 12 runs in 6 cohorts (one per architecture).

Expected (94 min 56 s, 2 CPU cores, 2026-11-23): depth 3 / 4: width 16 0.857 / 0.861, width 32
0.889 / 0.897, width 64 0.900 / 0.913 ± 0.004 (2 seeds; width gains most, on RV; a 4th level
within about the seed spread at widths 16-32).
Notes, tables and figures: docs/studies/depth_width/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """The study's base config."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Depth x width x seeds (smoke: depth 2 and 1 x width 4 and 8)."""
    if arg == "smoke":
        grid(add, {"model.depth": [1, 2], "model.base_width": [4]})
        return
    grid(add, {"model.depth": [3, 4], "model.base_width": [16, 32, 64]}, seeds=2)
