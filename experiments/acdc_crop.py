"""ACDC on 2 CPU cores: a 4-class U-Net on 160x160 centred crops, evaluated per volume.

Command (data in ../shared/data/acdc, or --config.data.source_dir=PATH to your copy):
  jaxseg train --config=experiments/acdc_crop.py --workdir=runs/acdc_crop

Recipe (sized to converge in under 2.5 hours on 2 CPU cores; experiments/acdc_baseline.py is
the full-resolution one for a GPU):
- Every slice centre-cropped (or zero-padded) to 160x160 at its native resolution. A centred
  160 crop keeps every foreground pixel of the 20 validation volumes (the widest needs 150)
  and of 1,291 of the 1,312 training slices (21 lose some pixels at the crop's edge; the
  widest training slice would need 218); 128 would cut 5 of the 20 validation volumes.
- Training on random 128x128 crops of those (augment.crop: also a translation of up to +-16
  px), rotation +-15 degrees, no flips (short-axis cine keeps its orientation, RV on the
  image's left, as in cmr96_baseline). Validation on the whole 160x160 crops (the U-Net is
  fully convolutional).
- U-Net base 16, depth 4 (depth_width: width gains most, but base 32 has ~4x the conv FLOPs:
  the budget decides), batch norm, CE + Dice, AdamW 1e-3 (weight decay 1e-4) with a cosine
  schedule to 5% (cmr96_baseline's), batch 8, 70 epochs; evaluated every 2 epochs, the best
  pooled validation Dice kept, early stopping after 10 evaluations without a better one.

Validation: the 20 volumes (10 patients, ED and ES) of val.list, 3-D Dice per volume and
class (``volume_dice``: the mean over volumes of each class, then over RV/MYO/LV) and HD95
per volume in voxels (the HDF5 conversion keeps no spacing; ACDC's in-plane spacing is
1.37-1.68 mm and its slices 5-10 mm apart, so a voxel HD95 mixes the two axes: a
``--config.data.spacing`` you know for your copy gives millimetres).

Expected (84 min 57 s on 2 CPU cores, 2026-12-01, commit 8eb6fca, the command above; stopped
early at epoch 56, best epoch 36): per-volume 3-D Dice 0.920 (RV 0.909, MYO 0.907, LV 0.944),
pooled 0.928, HD95 1.74 voxels per volume (RV 1.28, MYO 2.84, LV 1.09); 1 seed, selected on
the same 10 validation patients. `jaxseg predict` on the exported best weights reproduces
every foreground number to the last digit.
Notes, per-volume table and figures: docs/studies/acdc/
"""

import os

from jaxseg import configs


def get_config():
    """The recipe's config."""
    c = configs.default()
    c.data.name = "acdc"
    c.data.source_dir = os.path.join(configs.shared_data(), "acdc")
    c.data.image_size = 160
    c.model.base_width = 16
    c.model.depth = 4
    c.loss.weights = {"ce": 1.0, "dice": 1.0}
    c.augment.crop = 128
    c.augment.rotation = 15.0
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-3
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "cosine"
    c.optim.cosine_min = 0.05
    c.train.epochs = 70
    c.train.batch_size = 8
    c.train.early_stopping = 10
    c.train.early_stopping_monitor = "dice"
    c.train.checkpoint_every = 2
    c.eval.every = 2
    c.eval.batch_size = 30
    return c
