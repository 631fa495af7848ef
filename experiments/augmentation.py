"""Study: augmentation on/off, on cmr96.

Settings: flips; rotation +-10/20/180 degrees; translation +-10 px; random crop.

Command:
  jaxseg sweep --config=experiments/augmentation.py --workdir=runs/augmentation

Every setting but "none" keeps the base config's horizontal and vertical flips.

Grid: 6 augmentation settings x 2 seeds = 12 runs in 6 cohorts (planner estimate ~43 min on
2 CPU cores, compile and evaluation not included).

Expected (54 min 42 s, 2 CPU cores, 2026-11-22): none 0.810 ± 0.008; flips 0.855, rot ±20°
0.863, rot 180° 0.852, crop 64 0.845, rot ±10° + shift 0.845 (2 seeds).
Notes, tables and figures: docs/studies/augmentation/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid

SETTINGS = {
    "none": {"augment.hflip": False, "augment.vflip": False},
    "flips": {},
    "rot10+trans10": {"augment.rotation": 10.0, "augment.translation": 10.0},
    "rot20": {"augment.rotation": 20.0},
    "rot180": {"augment.rotation": 180.0},
    "crop64": {"augment.crop": 64},
}


def get_config(arg=None):
    """The study's base config (flips on)."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Every setting."""
    for name in configs.smoke_axis(list(SETTINGS), arg):
        grid(add, {}, seeds=1 if arg == "smoke" else 2, label=name, **SETTINGS[name])
