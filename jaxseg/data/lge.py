"""An LGE-style three-region folder dataset made from real ACDC slices.

One of the source studies segmented late-gadolinium-enhancement (LGE) MRI into
three regions stored as grey-level mask PNGs (0 background, 128 myocardium, 255 blood
pool) at 128x128 with a 60/20/20 split. No LGE data can ship with jaxseg, so its study
(``experiments/lge_l2.py``) runs on this stand-in when ACDC is at hand: the mid-ventricular
slice of every ACDC frame (end-diastole and end-systole), cropped to a square around the
heart, with RV folded into background, MYO -> 128 and the LV cavity -> 255. Patients are
split, never slices: 30 / 10 / 10 patients give 60 / 20 / 20 images.

It is cine MRI, not LGE (no scar enhancement), and the crop is centred on the labelled
heart (the studies' 128x128 images were heart crops too), so it tests the pipeline and the
grid on real anatomy and real grey-level masks, not LGE contrast.
"""

import collections
import functools
import os
import shutil

import numpy as np

from jaxseg.data import phantom, readers
from jaxseg.errors import JaxsegError

GREY_LEVELS = (0, 128, 255)
# ACDC labels -> LGE regions: MYO -> 1 (grey 128), LV cavity -> 2 (grey 255); RV -> 0.
CLASS_MAP = {2: 1, 3: 2}


def heart_crop(image: np.ndarray, label: np.ndarray, size: int):
    """Crops ``size`` x ``size`` around the centroid of the labelled heart (zero-padded).

    Args:
      image: ``(H, W)`` float image.
      label: ``(H, W)`` labels; every non-zero pixel counts as heart.
      size: the output side.

    Returns:
      ``(image, label)`` crops of shape ``(size, size)``.
    """
    ys, xs = np.nonzero(label)
    if ys.size == 0:
        raise JaxsegError("heart_crop: the slice has no labelled pixel to centre on")
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    half = size // 2
    # Padding by half a crop on every side makes any centre a valid window.
    pad = ((half, half), (half, half))
    window = (slice(cy, cy + size), slice(cx, cx + size))
    return np.pad(image, pad)[window], np.pad(label, pad)[window]


def mid_slices(acdc_dir: str) -> dict[str, list[str]]:
    """The middle slice file of each ACDC training frame, grouped by patient.

    Args:
      acdc_dir: an SSL4MIS-layout ACDC folder (``train_slices.list``, ``data/``).

    Returns:
      ``{patient: [slice name per frame]}``, patients and frames in sorted order.
    """
    listing = os.path.join(readers.require_dir(acdc_dir, "acdc"), "train_slices.list")
    if not os.path.exists(listing):
        raise JaxsegError(f"acdc: {listing} not found (SSL4MIS layout expected)")
    frames = collections.defaultdict(list)
    with open(listing) as f:
        for line in f:
            if line.strip():
                frame, z = line.strip().rsplit("_slice_", 1)
                frames[frame].append(int(z))
    out = collections.defaultdict(list)
    for frame in sorted(frames):
        zs = sorted(frames[frame])
        out[frame.split("_")[0]].append(f"{frame}_slice_{zs[len(zs) // 2]}")
    return dict(out)


def write_lge_folder(acdc_dir: str, root: str, size: int = 128,
                     patients: tuple[int, int, int] = (30, 10, 10)) -> str:
    """Writes the LGE-style stand-in as a ``folder`` dataset (``train/ val/ test/``).

    Args:
      acdc_dir: the ACDC folder to read.
      root: the folder to create (left as it is when it exists).
      size: the crop side.
      patients: patients in the train, val and test splits, taken in sorted order.

    Returns:
      ``root``.
    """
    if os.path.isdir(root):
        return root
    by_patient = mid_slices(acdc_dir)
    names = sorted(by_patient)
    if sum(patients) > len(names):
        raise JaxsegError(f"acdc at {acdc_dir} has {len(names)} training patients; the LGE "
                          f"stand-in needs {sum(patients)} ({patients})")
    starts = np.cumsum((0,) + tuple(patients))

    def pairs(k):
        return [heart_crop(*readers.read_h5(os.path.join(acdc_dir, "data", name + ".h5")), size)
                for patient in names[starts[k]:starts[k + 1]] for name in by_patient[patient]]

    return _write_splits(root, {split: functools.partial(pairs, k)
                                for k, split in enumerate(("train", "val", "test"))})


def write_phantom_folder(root: str, size: int, counts: tuple[int, int]) -> str:
    """Writes the built-in phantom in the LGE layout (``train/ val/``), when ACDC is absent.

    Args:
      root: the folder to create (left as it is when it exists).
      size: the image side.
      counts: training and validation images.

    Returns:
      ``root``.
    """
    if os.path.isdir(root):
        return root
    return _write_splits(root, {split: functools.partial(phantom.phantom_split, seed, n, size)
                                for split, seed, n in zip(("train", "val"), (11, 12), counts,
                                                          strict=True)})


def _write_splits(root: str, splits: dict) -> str:
    """Writes ``{split: () -> [(image, label), ...]}`` as folders under ``root``.

    Written beside ``root`` and renamed at the end, so an interrupted write is never
    mistaken for a finished folder.
    """
    tmp = f"{root}.tmp{os.getpid()}"
    try:
        for split, pairs in splits.items():
            phantom.write_folder(os.path.join(tmp, split), pairs(), GREY_LEVELS, CLASS_MAP)
    except BaseException:  # interrupted or failed: leave no half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    os.replace(tmp, root)
    return root
