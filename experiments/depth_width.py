"""Study: U-Net depth (3, 4) x base width (16, 32, 64), on cmr96.

Command:
  jaxseg sweep --config=experiments/depth_width.py --workdir=runs/depth_width

Grid: 2 depths x 3 widths x 2 seeds = 12 runs in 6 cohorts (one per architecture).

Measured 2026-11-23 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above as committed: 94 min 56 s (planner's built-in estimate 405 min; --dry_run
--calibrate just before it 87.6 min, its steps timed at 0.28 s for d3 w16 to 2.71 s for d4
w64; 7 of 12 runs stopped early). The two width-64 cohorts took 63 of the 95 minutes. To spread
the grid over two sessions or machines sharing the workdir (the second launch writes the
tables):
  jaxseg sweep --config=experiments/depth_width.py --workdir=runs/depth_width \
      --cohorts=c000,c001,c002,c003,c004
  jaxseg sweep --config=experiments/depth_width.py --workdir=runs/depth_width --cohorts=c005
Validation mean foreground Dice at each run's best epoch, mean ± std over 2 seeds:
             width 16        width 32        width 64
  depth 3    0.857 ± 0.009   0.889 ± 0.007   0.900 ± 0.006
  depth 4    0.861 ± 0.009   0.897 ± 0.002   0.913 ± 0.004
Width is what matters: 16 -> 32 -> 64 gains 0.03 and then 0.01-0.02 at either depth, most of
it on the right ventricle (RV 0.78 at width 16, 0.86-0.89 at 64); a fourth level adds at most
0.013 (0.004 and 0.008 at widths 16 and 32, about the seed spread). Best: depth 4, width 64
(RV 0.892, MYO 0.889, LV 0.957, HD95 3.2 px; best epochs 41 and 48 of 50), at about 10x the
step time of the depth-3 width-16 default. The d3-w16 seed-0 run repeats
experiments/optimizer_lr.py's Adam 1e-3 run to the last digit (the same configuration).
Tables and figures (grid.png is the depth x width matrix): docs/studies/depth_width/.
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
