"""Study: U-Net depth (3, 4) x base width (16, 32, 64), on cmr96.

Command:
  jaxseg sweep --config=experiments/depth_width.py --workdir=runs/depth_width

`--dry_run --calibrate` on 2026-11-23 (2 CPU cores, idle) timed the steps at 0.28 s (d3 w16)
to 2.68 s (d4 w64) and estimated 85.4 min for the whole grid, not the 405 min of the built-in
throughput (wide convolutions run far closer to the CPU's peak). The width-64 cohorts take
most of the time; to spread the grid over two sessions or machines sharing the workdir (the
second launch writes the tables):
  jaxseg sweep --config=experiments/depth_width.py --workdir=runs/depth_width \
      --cohorts=c000,c001,c002,c003,c004
  jaxseg sweep --config=experiments/depth_width.py --workdir=runs/depth_width --cohorts=c005

Grid: 2 depths x 3 widths x 2 seeds = 12 runs in 6 cohorts. Expected run time on 2 CPU cores
(this project's dev machine, XLA CPU, jax 0.10.2): ~405 min (~6.8 h) by the planner's --dry_run
estimate of 2026-11-23 (training, evaluation and compilation; early stopping shortens it;
measured studies took 0.43x to 1.18x of it: 7-18% longer on 2026-11-22, less than half on
2026-11-23, when the machine ran about twice as fast;
--dry_run --calibrate times this machine first). Result: not yet measured on the full
grid; the smoke variant runs in CI.
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
