"""Start here for your own data: a documented base for a NIfTI or a PNG/DICOM folder set.

Commands: point it at your data and train one model, then a small grid (README.md, "Your own
data", walks through it from a raw folder to predictions):

  # NIfTI: nnU-Net's raw layout (imagesTr/ labelsTr/ dataset.json), the official ACDC
  # release (patientXXX/ folders; use --config.data.name=acdc), or images/ + labels/
  jaxseg train --config=experiments/own_data.py --workdir=runs/mine \
      --config.data.source_dir=/data/Dataset027_ACDC
  # PNG or DICOM slices with PNG masks: [train|val/]images/ + masks/, grey level per class
  jaxseg train --config=experiments/own_data.py --workdir=runs/mine \
      --config.data.name=folder --config.data.source_dir=/data/lge \
      '--config.data.grey_levels=(0,128,255)' --config.data.image_size=128
  # :grid, the grid below (learning rate x loss, 2 seeds = 12 runs); --dry_run plans it
  # and writes nothing
  jaxseg sweep --config=experiments/own_data.py:grid --workdir=runs/mine_grid \
      --config.data.source_dir=/data/Dataset027_ACDC --dry_run

The recipe is experiments/acdc_crop.py's, which reached a per-volume 3-D Dice of 0.920 on
ACDC in 85 minutes on 2 CPU cores (commit 8eb6fca, 2026-12-01, its docstring's command;
docs/studies/acdc/), made generic:
- every slice centre-cropped or zero-padded to 160x160 at its native resolution
  (``data.fit=crop``: a short-axis heart at 1.2-1.8 mm pixels fits; the padding is not scored;
  ``--config.data.fit=resize`` scales instead, for sets whose field of view varies); training
  on random 128x128 crops of those, rotation +-15 degrees, no flips;
- U-Net base 16, depth 4, batch norm, CE + Dice, AdamW 1e-3 (weight decay 1e-4) with a
  cosine schedule to 5%, batch 8, up to 100 epochs, evaluated every 2, the best validation
  Dice kept, early stopping after 10 evaluations without a better one;
- classes: a NIfTI set's ``dataset.json`` names them; a folder set's grey levels count them
  (``data.class_names`` names them); ``data.classes`` selects or merges them;
- validation: your ``val`` split, or, for volumes without one (nnU-Net's imagesTr), fold 0
  of 5 of the training volumes (both frames of an ACDC patient together); per-volume 3-D
  Dice and HD95 in mm from the NIfTI headers.

Expected: what it reaches depends on your data; on the ACDC volumes the recipe is
acdc_crop's (above). The grid's smoke version runs in the tests on the built-in phantom.
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid

LOSSES = {"ce+dice": {"ce": 1.0, "dice": 1.0}, "dice": {"dice": 1.0}}
LEARNING_RATES = (3e-4, 1e-3, 3e-3)


def get_config(arg=None):
    """The base recipe (``:grid`` the same; ``:smoke`` the tests' tiny grid on the phantom)."""
    c = configs.study("smoke" if arg == "smoke" else None)
    c.data.name = "nifti"
    c.data.source_dir = ""  # your data: --config.data.source_dir=PATH
    c.augment.hflip = c.augment.vflip = False
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-3
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "cosine"
    c.optim.cosine_min = 0.05
    c.train.early_stopping = 10
    c.train.early_stopping_monitor = "dice"
    c.train.checkpoint_every = 2
    c.eval.every = 2
    if arg == "smoke":
        c.data.name = "phantom"
        c.train.checkpoint_every = c.eval.every = 1
        return c
    c.data.image_size = 160
    c.augment.crop = 128
    c.augment.rotation = 15.0
    c.model.base_width, c.model.depth = 16, 4
    c.train.epochs = 100
    c.train.batch_size = 8
    c.eval.batch_size = 30
    return c


def sweep(add, arg=None):
    """One run (the recipe); ``:grid`` learning rate x loss, 2 seeds (smoke 2 x 2 x 1 seed)."""
    if arg not in ("grid", "smoke"):
        return
    for lr in configs.smoke_axis(list(LEARNING_RATES), arg):
        for name in configs.smoke_axis(list(LOSSES), arg):
            grid(add, {}, seeds=1 if arg == "smoke" else 2, label=f"lr {lr:g}, {name}",
                 **{"optim.learning_rate": lr, "loss.weights": LOSSES[name]})
