"""Study: U-Net vs UNet 3+ vs DeepLabV3 on cmr96 (4 classes), 3 seeds.

The 4-class study of the catalogue compared its U-Net with UNet 3+ (Huang et al. 2020) and
DeepLabV3 (Chen et al. 2017). Each network here is trained from scratch with the study's
common settings (CE + Dice, flips, Adam 1e-3, batch 16, up to 50 epochs, early stopping on
the validation loss after 10 evaluations):

- ``unet``: base 16, depth 3, transposed-conv decoder (483,204 parameters);
- ``unet3plus``: the same encoder (base 16, depth 3), full-scale skips of 16 channels per
  scale, deep supervision with equal weights (525,760 parameters);
- ``deeplabv3``: ResNet-18 at output stride 16, ASPP of 256 channels at rates (1, 2, 3)
  (15,303,108 parameters). The paper's rates (6, 12, 18) are for a 33x33 feature map; a
  96x96 slice gives 6x6 at stride 16, where those rates leave only the centre tap of every
  filter, so they are scaled by 96/513 and rounded (jaxseg/models/deeplabv3.py).

Command:
  jaxseg sweep --config=experiments/architectures.py --workdir=runs/architectures

Grid: 3 architectures x 3 seeds = 9 runs in 3 cohorts (architecture is structural).

Expected (measured 2026-12-02 on 2 CPU cores at commit dfd43e4, 40 min 10 s with the
planner's estimate at 78.7 min; validation mean foreground Dice, mean ± std over 3 seeds):
U-Net 0.858 ± 0.007, UNet 3+ 0.851 ± 0.008, DeepLabV3 0.768 ± 0.009. UNet 3+ converges
fastest (Dice 0.80 at epochs 11-17 against the U-Net's 18-22, the lowest validation loss,
every run stopped early) and ends within a seed spread of the U-Net by the per-image test;
DeepLabV3 at output stride 16 (a 6x6 map, no decoder) trails on every class and was still
improving at epoch 50.
Notes, tables and figures: docs/studies/architectures/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid

ARCHITECTURES = {
    "unet": {"model.name": "unet"},
    "unet3plus": {"model.name": "unet3plus", "model.cat_width": 16,
                  "model.deep_supervision": True},
    "deeplabv3": {"model.name": "deeplabv3", "model.output_stride": 16,
                  "model.aspp_rates": (1, 2, 3)},
}


def get_config(arg=None):
    """The study's base config (the U-Net's encoder fields are the UNet 3+'s too)."""
    return configs.study(arg)


def sweep(add, arg=None):
    """Every architecture, 3 seeds (1 seed under smoke)."""
    unet = configs.default().model  # smoke's small U-Net fields do not apply to DeepLabV3
    for name, fields in ARCHITECTURES.items():
        if name == "deeplabv3" and arg == "smoke":
            fields = {**fields, "model.depth": unet.depth, "model.base_width": unet.base_width}
        grid(add, {}, seeds=1 if arg == "smoke" else 3, label=name, **fields)
