"""Study: augmentation on/off, on cmr96.

Settings: flips; rotation +-10/20/180 degrees; translation +-10 px; random crop.

Command:
  jaxseg sweep --config=experiments/augmentation.py --workdir=runs/augmentation

Grid: 6 augmentation settings x 2 seeds = 12 runs in 6 cohorts. Result: not yet measured on
the full grid; the smoke variant runs in CI.
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
