"""Study: decoder up-sampling, transposed convolution vs bilinear + 1x1 conv, on cmr96.

Command:
  jaxseg sweep --config=experiments/upsampling.py --workdir=runs/upsampling

Grid: 2 modes x 3 seeds = 6 runs in 2 cohorts (planner estimate ~24 min on 2 CPU cores,
compile not included).

Measured 2026-11-22 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above as committed: 27 min 30 s wall. Validation mean foreground Dice at each run's
best epoch, mean +- std over 3 seeds:
  transpose  0.857 +- 0.007  (RV 0.780, MYO 0.847, LV 0.944; HD95 6.4 px)
  bilinear   0.850 +- 0.010  (RV 0.759, MYO 0.844, LV 0.946; HD95 6.9 px)
The difference (0.0075) is within one seed std: no mode wins on cmr96 at 50 epochs; the
transposed convolution is a little better on RV. 3 of 6 runs early-stopped (best epochs
26-49).
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """The study's base config."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Both modes, 3 seeds."""
    grid(add, {"model.upsample": ["transpose", "bilinear"]}, seeds=1 if arg == "smoke" else 3)
