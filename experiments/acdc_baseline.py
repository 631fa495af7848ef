"""ACDC baseline: a 4-class U-Net on the 1,312 ACDC training slices, evaluated per volume.

Command (data in ../shared/data/acdc, or --config.data.source_dir=PATH to your copy):
  jaxseg train --config=experiments/acdc_baseline.py --workdir=runs/acdc_baseline

Grid: 1 replica (base 16, depth 4, batch norm, CE + Dice, flips and +-20 degree rotation,
AdamW 1e-3, weight decay 1e-4, batch 16, 256x256 crop/pad, 100 epochs). Validation: the 20
volumes of val.list, 3-D Dice and HD95 per volume (history key ``volume_dice``).

Measured 2026-11-22 on 2 CPU cores (XLA CPU, jax 0.10.2; no GPU was lent to this task):
one training step takes 7.36 s (median of 3; compile 20.7 s), so one epoch of 82 steps takes
about 10 min plus evaluation, and the 100-epoch run about 17 hours: this baseline is meant
for a GPU. Command of the measurement:
  jaxseg bench --config=experiments/acdc_baseline.py --replicas=1 --strategies=unroll
(docs/bench_acdc_step_cpu.json). Validation Dice: not measured yet (needs the GPU run).
"""

import os

from jaxseg import configs


def get_config():
    """The baseline config."""
    c = configs.default()
    c.data.name = "acdc"
    c.data.source_dir = os.path.join(configs.shared_data(), "acdc")
    c.data.image_size = 256
    c.model.base_width = 16
    c.model.depth = 4
    c.loss.weights = {"ce": 1.0, "dice": 1.0}
    c.augment.hflip = True
    c.augment.vflip = True
    c.augment.rotation = 20.0
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-3
    c.optim.weight_decay = 1e-4
    c.train.epochs = 100
    c.train.batch_size = 16
    c.eval.every = 5
    c.eval.batch_size = 16
    return c
