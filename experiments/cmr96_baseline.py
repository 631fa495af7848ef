"""Real-data baseline: a 4-class U-Net on cmr96 train, selected on cmr96 val.

Command (from the repository root, with the data beside it in ../shared/data/cmr96,
or --config.data.source_dir=PATH to your copy):
  jaxseg train --config=experiments/cmr96_baseline.py --workdir=runs/cmr96_baseline

Grid: 1 replica (base 16, depth 3, batch norm, CE + Dice, h/v flips, AdamW 1e-3,
weight decay 1e-4, batch 16, 80 epochs).

Measured: see MEASURED below (filled from runs/cmr96_baseline/summary.json).
"""

import os

from jaxseg import configs

_HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("JAXSEG_SHARED_DATA", os.path.join(_HERE, "..", "..", "shared", "data"))


def get_config():
    """The baseline config."""
    c = configs.default()
    c.data.name = "cmr96"
    c.data.source_dir = os.path.join(SHARED, "cmr96")
    c.data.image_size = 96
    c.model.base_width = 16
    c.model.depth = 3
    c.loss.weights = {"ce": 1.0, "dice": 1.0}
    c.augment.hflip = True
    c.augment.vflip = True
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-3
    c.optim.weight_decay = 1e-4
    c.train.epochs = 80
    c.train.batch_size = 16
    c.train.checkpoint_every = 5
    return c
