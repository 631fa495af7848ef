"""Real-data baseline: a 4-class U-Net on cmr96 train, selected on cmr96 val.

Command (from the repository root, with the data beside it in ../shared/data/cmr96,
or --config.data.source_dir=PATH to your copy):
  jaxseg train --config=experiments/cmr96_baseline.py --workdir=runs/cmr96_baseline

Grid: 1 replica. U-Net base 16, depth 3, batch norm, CE + Dice, AdamW 1e-3 (weight decay
1e-4) with a cosine schedule to 5% over 100 epochs, batch 8, augmentation: rotation +-10
degrees and translation +-6 px (no flips: short-axis cine has a fixed orientation, RV on the
image's left).

Expected (9 min 08 s on 2 idle CPU cores, 2026-11-22): 0.8856 (RV 0.874, MYO 0.838, LV 0.945);
0.8885 in an earlier run.
Notes, tables and figures: docs/studies/cmr96_baseline/
"""

import os

from jaxseg import configs


def get_config():
    """The baseline config."""
    c = configs.default()
    c.data.name = "cmr96"
    c.data.source_dir = os.path.join(configs.shared_data(), "cmr96")
    c.data.image_size = 96
    c.model.base_width = 16
    c.model.depth = 3
    c.loss.weights = {"ce": 1.0, "dice": 1.0}
    c.augment.rotation = 10.0
    c.augment.translation = 6.0
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-3
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "cosine"
    c.optim.cosine_min = 0.05
    c.train.epochs = 100
    c.train.batch_size = 8
    c.train.checkpoint_every = 5
    return c
