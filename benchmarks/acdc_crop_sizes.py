"""Which centred square crop keeps every foreground pixel of the ACDC slices and volumes.

For each side s of ``--sizes``, counts the training slices (``train_slices.list``) and the
validation volumes (``val.list``) of which a centred s x s crop (``data.fit=crop``'s) loses
foreground pixels, and how many pixels that is. What ``experiments/acdc_crop.py``'s 160
rests on.

Command (from the repository root; data in ../shared/data/acdc or --source_dir):
  python benchmarks/acdc_crop_sizes.py --out=docs/studies/acdc/crop_sizes.json
"""

import json
import os

import h5py
import numpy as np
from absl import app, flags

from jaxseg import configs
from jaxseg.data import preprocess

flags.DEFINE_string("source_dir", os.path.join(configs.shared_data(), "acdc"),
                    "The ACDC HDF5 folder (train_slices.list, val.list, data/).")
flags.DEFINE_list("sizes", ["128", "144", "160", "176", "192", "224", "256"], "Crop sides.")
flags.DEFINE_string("out", None, "Write the results as JSON to this file.")


def lost_pixels(label: np.ndarray, size: int) -> int:
    """Foreground pixels of ``label`` ((H, W) or (S, H, W)) that jaxseg's centred crop to
    size x size (:func:`jaxseg.data.preprocess.crop_or_pad`, ``data.fit=crop``) cuts off."""
    return int((label > 0).sum() - (preprocess.crop_or_pad(label, size) > 0).sum())


def main(argv):
    del argv
    src = flags.FLAGS.source_dir
    sizes = [int(s) for s in flags.FLAGS.sizes]
    res = {"source_dir": os.path.abspath(src), "sizes": {}}
    sets = {}
    for split, listing in (("train_slices", "train_slices.list"), ("val_volumes", "val.list")):
        with open(os.path.join(src, listing)) as f:
            names = [n.strip() for n in f if n.strip()]
        labels = []
        for n in names:
            with h5py.File(os.path.join(src, "data", f"{n}.h5"), "r") as f:
                labels.append(np.asarray(f["label"]))
        sets[split] = (names, labels)
    for s in sizes:
        row = {}
        for split, (names, labels) in sets.items():
            lost = [lost_pixels(lb, s) for lb in labels]
            cut = [n for n, k in zip(names, lost, strict=True) if k]
            row[split] = {"total": len(names), "cut": len(cut), "lost_pixels": int(sum(lost)),
                          "foreground_pixels": int(sum(int((lb > 0).sum()) for lb in labels)),
                          "cut_names": cut[:25]}
        res["sizes"][s] = row
        print(f"{s}x{s}: training slices cut {row['train_slices']['cut']}/"
              f"{row['train_slices']['total']} ({row['train_slices']['lost_pixels']} of "
              f"{row['train_slices']['foreground_pixels']} foreground pixels), validation "
              f"volumes cut {row['val_volumes']['cut']}/{row['val_volumes']['total']} "
              f"({row['val_volumes']['lost_pixels']} pixels)")
    if flags.FLAGS.out:
        os.makedirs(os.path.dirname(os.path.abspath(flags.FLAGS.out)), exist_ok=True)
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
