"""Study: L2 weight decay on a 3-class LGE-style task with grey-level masks (0/128/255).

The data are read through the ``folder`` dataset, split via train/val folders.

Command (your LGE data as images/ + masks/ PNGs under train/ and val/):
  jaxseg sweep --config=experiments/lge_l2.py --workdir=runs/lge_l2 \
      --config.data.source_dir=/path/to/lge_folder

No LGE data ships with jaxseg. Without a source folder the study runs on a stand-in written
once under ~/.cache/jaxseg/: with ACDC beside the checkout (../shared/data/acdc or
$JAXSEG_SHARED_DATA/acdc), real cine slices in LGE layout (jaxseg/data/lge.py: the
mid-ventricular slice of each frame, a 128x128 heart crop, MYO 128, LV blood pool 255, RV
as background; 30/10/10 patients = 60/20/20 images, the study's split); without ACDC, the
built-in phantom at 128x128 with masks in the same style. The smoke variant always uses the
phantom.

Grid: 6 weight decays x 2 seeds = 12 runs in one cohort.

Expected (22 min 57 s, 2 CPU cores, 2026-11-23): coupled L2 1e-2 0.862 ± 0.001, 1e-3..1e-5
0.843-0.849, none 0.839 ± 0.012, 1e-1 0.814 ± 0.033 (2 seeds).
Notes, tables and figures: docs/studies/lge_l2/
"""

import os

from jaxseg import configs
from jaxseg.data import lge
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """3 classes from grey levels 0/128/255, 128x128, Adam with coupled L2."""
    c = configs.study(arg)
    smoke = arg == "smoke"
    size = 32 if smoke else 128
    c.data.name = "folder"
    c.data.num_classes = 3
    c.data.class_names = ("bg", "MYO", "blood")
    c.data.grey_levels = (0, 128, 255)
    c.data.image_size = size
    acdc = os.path.join(configs.shared_data(), "acdc")
    if not smoke and os.path.exists(os.path.join(acdc, "train_slices.list")):
        c.data.source_dir = lge.write_lge_folder(
            acdc, os.path.expanduser(f"~/.cache/jaxseg/lge_acdc_{size}"), size)
    else:
        counts = (16, 8) if smoke else (60, 20)
        c.data.source_dir = lge.write_phantom_folder(
            os.path.expanduser(f"~/.cache/jaxseg/lge_phantom_{size}_{counts[0]}_{counts[1]}"),
            size, counts)
    c.optim.weight_decay_mode = "coupled"
    return c


def sweep(add, arg=None):
    """Weight decay x seeds."""
    grid(add, {"optim.weight_decay": configs.smoke_axis([0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
                                                        arg)},
         seeds=1 if arg == "smoke" else 2)
