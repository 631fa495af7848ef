"""NIfTI volumes as people in this field keep them: reading, writing back, and their layouts.

A volume is read (nibabel) as ``(slices, rows, cols)``: NIfTI's voxel axes ``(x, y, z)``
reversed, the array SimpleITK's ``GetArrayFromImage`` gives and the one the ACDC HDF5
conversion stores, so a short-axis slice is a 2-D image and slices run along the first
axis. Its voxel size in mm, from the header, comes in the same order; predictions are
written back through the reverse transpose with the input's affine and header, so they
overlay on the input in ITK-SNAP or 3D Slicer.

Intensities: MRI volumes have no fixed range (float or 16-bit, 0..800 or 0..30000), so a
volume is scaled to [0, 1] from its own :data:`jaxseg.data.readers.WIDE_PERCENTILES`,
clipped, once per volume (one scale for all its slices, as the ACDC HDF5 conversion did
with its min and max).

Layouts (:func:`cases`):

* ``nnunet``: nnU-Net's raw data set: ``dataset.json`` (label names and values),
  ``imagesTr/<case>_0000.nii.gz`` with ``labelsTr/<case>.nii.gz``, ``imagesTs/`` unlabelled.
  One channel (``_0000``) is read; a set with more channels is refused.
* ``acdc``: the official ACDC release: ``[training/|testing/]patientXXX/
  patientXXX_frameYY.nii.gz`` with ``patientXXX_frameYY_gt.nii.gz`` (the 4-D cine file and
  ``Info.cfg`` are not needed). Patients 1-100 are split as the ACDC HDF5 conversion's lists
  (:data:`ACDC_VAL`, :data:`ACDC_TRAIN`; the other 20 are ``test``), so results on the two
  layouts compare; patients of ``testing/`` (101-150) are the ``challenge`` split.
* ``plain``: ``[train/|val/|test/]images/*.nii.gz`` with ``labels/`` holding the same names
  (or ``<name>_gt``, ``<name>_mask``, ``<name>_seg``); without split folders, everything is
  ``train``.
* ``paired``: any other tree where each labelled image has its labels beside it
  (``<name>_gt.nii.gz``, as M&Ms and M&Ms-2 store their subjects); a top folder named
  ``Training``/``Validation``/``Testing`` (or train/val/test) sets the split, images without
  labels outside ``test`` are left out (the cine files beside ACDC-style frames).

A 4-D cine file (``(x, y, z, time)``) is one volume per frame; of a labelled one, the frames
whose labels hold a structure (:func:`case_volumes`).
"""

import dataclasses
import json
import os
import re

import numpy as np

from jaxseg.data import readers
from jaxseg.errors import JaxsegError

SUFFIXES = (".nii.gz", ".nii")
LABEL_SUFFIXES = ("", "_gt", "_mask", "_seg", "_label")

# The ACDC HDF5 conversion's patients (SSL4MIS train.list / val.list): 70 training and 10
# validation patients of ACDC's 100 training patients; the remaining 20 are its test list.
ACDC_VAL = (2, 19, 28, 30, 39, 45, 78, 82, 85, 87)
ACDC_TRAIN = (
    3, 4, 5, 6, 9, 10, 12, 14, 15, 16, 17, 18, 20, 21, 23, 25, 26, 27, 29, 31, 32, 34, 35, 36,
    37, 38, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 53, 54, 55, 56, 57, 58, 60, 61, 62,
    63, 67, 69, 70, 71, 72, 73, 74, 76, 77, 79, 86, 88, 89, 90, 91, 92, 94, 95, 96, 97, 98,
    99, 100)


@dataclasses.dataclass
class Volume:
    """One NIfTI volume.

    Attributes:
      array: ``(slices, rows, cols)`` as stored (not scaled); ``(frames, slices, rows,
        cols)`` for a 4-D cine file as :func:`read` returns it.
      spacing: the voxel size in mm, ``(slice, row, col)``.
      affine: the voxel-to-world matrix (4x4).
      header: the NIfTI header, for writing outputs that overlay on it.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    header: object


def is_nifti(path: str) -> bool:
    """Whether a path names a NIfTI file (``.nii`` or ``.nii.gz``)."""
    return path.endswith(SUFFIXES)


def stem(path: str) -> str:
    """A NIfTI file's name without its directory and ``.nii``/``.nii.gz``."""
    name = os.path.basename(path)
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return os.path.splitext(name)[0]


def files(folder: str) -> list[str]:
    """The NIfTI files of a folder, in natural order."""
    return readers.matching(os.path.join(folder, "*.nii.gz")) + readers.matching(
        os.path.join(folder, "*.nii"))


def read(path: str) -> Volume:
    """Reads a 2-D, 3-D or 4-D (cine) NIfTI file as a :class:`Volume`.

    Args:
      path: the file.

    Returns:
      The volume, ``array`` of shape ``(slices, rows, cols)`` (1 slice for a 2-D file), or
      ``(frames, slices, rows, cols)`` for a 4-D file with several frames
      (:func:`case_volumes` splits them).
    """
    import nibabel as nib

    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise JaxsegError(f"NIfTI file not found: {path}") from None
    except Exception as e:  # nibabel raises several types for a corrupt or truncated file
        raise JaxsegError(f"unreadable NIfTI file {path}: {type(e).__name__}: {e}") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim not in (3, 4):
        raise JaxsegError(f"NIfTI file {path} has shape {data.shape}; expected a 2-D or 3-D "
                          "grey volume, or a 4-D cine volume (x, y, z, time)")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3]) + (1.0,) * 3
    spacing = (zooms[2], zooms[1], zooms[0])
    if min(spacing) <= 0 or not np.all(np.isfinite(spacing)):
        raise JaxsegError(f"NIfTI file {path}: voxel size {spacing} mm is not positive")
    return Volume(np.transpose(data, tuple(range(data.ndim))[::-1]), spacing,
                  np.asarray(img.affine), img.header)


def case_volumes(name: str, image_path: str, label_path: str | None, num_classes: int):
    """The volumes of one case, scaled, with their labels: what training and predict read.

    A 3-D file is one volume. A 4-D cine file (``(x, y, z, time)``, as M&Ms stores a
    subject) is one volume per frame, named ``<name>_frameTT``; with labels, only the frames
    whose labels hold a structure (cine sets label end-diastole and end-systole only).

    Args:
      name: the case's name.
      image_path: its image file.
      label_path: its label file, or None.
      num_classes: the declared classes.

    Returns:
      A list of ``(name, Volume, image float32 [0, 1] (S, H, W), labels uint8 or None)``.
    """
    volume = read(image_path)
    labels = None if label_path is None else read_label(label_path, num_classes, volume,
                                                        image_path)
    if volume.array.ndim == 3:
        return [(name, volume, image_to_unit(volume, image_path), labels)]
    out = []
    for t in range(volume.array.shape[0]):
        frame = Volume(volume.array[t], volume.spacing, volume.affine, volume.header)
        lab = None if labels is None else labels[t]
        if lab is not None and not lab.any():
            continue
        out.append((f"{name}_frame{t:02d}", frame, image_to_unit(frame, image_path), lab))
    if not out:
        raise JaxsegError(f"label volume {label_path} labels no frame of its 4-D image")
    return out


def image_to_unit(volume: Volume, path: str) -> np.ndarray:
    """A volume's intensities scaled to float32 [0, 1] from its own percentiles.

    Args:
      volume: the image volume.
      path: its file, for the message.

    Returns:
      float32 ``(slices, rows, cols)``.
    """
    arr = volume.array.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise JaxsegError(f"NIfTI file {path}: image holds NaN or inf")
    return readers.percentile_to_unit(arr)


def read_label(path: str, num_classes: int, like: Volume, image_path: str) -> np.ndarray:
    """Reads a label volume, checking it against its image.

    Args:
      path: the label file.
      num_classes: the declared classes (labels must lie in ``0..num_classes-1``).
      like: the image volume it belongs to.
      image_path: that image's file, for the message.

    Returns:
      uint8 ``(slices, rows, cols)`` (``(frames, slices, rows, cols)`` for a cine volume).
    """
    lab = read(path)
    if lab.array.shape != like.array.shape:
        raise JaxsegError(f"label volume {path} is {lab.array.shape} (slices, rows, cols) but "
                          f"its image {image_path} is {like.array.shape}")
    arr = lab.array
    if not np.issubdtype(arr.dtype, np.integer):  # labels are often stored as floats
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise JaxsegError(f"label volume {path} holds values that are not whole numbers")
        arr = np.round(arr).astype(np.int64)
    return readers.labels_from_grey(arr, None, path, num_classes)


def write_label(path: str, labels: np.ndarray, like: Volume) -> None:
    """Writes a label volume ``(slices, rows, cols)`` with ``like``'s affine and header.

    Args:
      path: the output file (``.nii.gz``).
      labels: the labels, at ``like``'s shape.
      like: the input volume they were predicted on.
    """
    import nibabel as nib

    header = like.header.copy()
    header.set_data_dtype(np.uint8)
    # A frame of a 4-D input is written as a 3-D volume: nibabel takes the shape from the
    # data, the affine and the rest of the header from the input.
    img = nib.Nifti1Image(np.transpose(labels.astype(np.uint8), (2, 1, 0)), like.affine,
                          header=header)
    img.header.set_slope_inter(1.0, 0.0)  # class indices as stored, never rescaled
    nib.save(img, path)


def layout(root: str) -> str:
    """Which layout a folder holds: ``nnunet``, ``acdc``, ``plain`` or ``paired``.

    See the module doc; ``paired`` is any tree of images with their labels beside them.
    """
    if os.path.exists(os.path.join(root, "dataset.json")) or os.path.isdir(
            os.path.join(root, "imagesTr")):
        return "nnunet"
    if _acdc_patients(root):
        return "acdc"
    if any(os.path.isdir(os.path.join(root, s, "images")) for s in ("", "train", "val", "test")):
        return "plain"
    return "paired"


def label_names(root: str) -> tuple[str, ...] | None:
    """The class names of an nnU-Net ``dataset.json`` in label order, or None without one.

    Both forms are read: nnU-Net v2's ``{"background": 0, "RV": 1}`` and v1's
    ``{"0": "background", "1": "RV"}``. The values must be 0, 1, ... without gaps.
    """
    path = os.path.join(root, "dataset.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            labels = json.load(f)["labels"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise JaxsegError(f"{path}: cannot read its 'labels' ({e})") from None
    try:
        if all(isinstance(v, int) for v in labels.values()):
            by_value = {int(v): str(k) for k, v in labels.items()}
        else:
            by_value = {int(k): str(v) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise JaxsegError(f"{path}: 'labels' {labels} maps neither names to values nor "
                          "values to names (region-based labels are not supported)") from None
    if sorted(by_value) != list(range(len(by_value))):
        raise JaxsegError(f"{path}: label values {sorted(by_value)} must be 0, 1, ... "
                          "without gaps")
    return tuple(by_value[v] for v in range(len(by_value)))


def cases(root: str) -> dict[str, list[tuple[str, str, str | None]]]:
    """Every split's cases in a NIfTI folder: ``{split: [(name, image, label or None)]}``.

    Args:
      root: the folder (any of the module doc's layouts).

    Returns:
      The splits (``train`` always), each a list in natural order; ``label`` is None for
      unlabelled cases.
    """
    root = readers.require_dir(root, "nifti dataset")
    kind = layout(root)
    out = {"nnunet": _nnunet, "acdc": _acdc, "plain": _plain, "paired": _paired}[kind](root)
    if not out.get("train"):
        raise JaxsegError(f"no labelled NIfTI training volumes in {root} (layout {kind!r}; "
                          "see README.md, 'Your own data')")
    return out


def _nnunet(root: str) -> dict:
    image_dir = readers.require_dir(os.path.join(root, "imagesTr"), "nnU-Net imagesTr")
    out = {}
    for split, images, labels in (("train", image_dir, os.path.join(root, "labelsTr")),
                                  ("test", os.path.join(root, "imagesTs"), None)):
        if not os.path.isdir(images):
            continue
        found = []
        for path in files(images):
            name = stem(path)
            if not name.endswith("_0000"):
                if re.search(r"_\d{4}$", name):
                    raise JaxsegError(f"{path}: a second channel; jaxseg reads one channel "
                                      "(_0000) per case")
                raise JaxsegError(f"{path}: nnU-Net image names end in _0000 (the channel)")
            case = name[:-5]
            label = None
            if labels is not None:
                label = _find_label(labels, case)
                if label is None:
                    raise JaxsegError(f"image {path} has no label volume {case}.nii.gz in "
                                      f"{labels}")
            found.append((case, path, label))
        out[split] = found
    return out


def _acdc_patients(root: str) -> dict[str, list[str]]:
    """ACDC patient folders by where they were found (``training``, ``testing`` or the root)."""
    out = {}
    for sub in ("training", "testing", ""):
        folders = [p for p in readers.matching(os.path.join(root, sub, "patient[0-9][0-9][0-9]"))
                   if os.path.isdir(p)]
        if folders:
            out[sub] = folders
    return out


def _acdc(root: str) -> dict:
    out = {"train": [], "val": [], "test": [], "challenge": []}
    for folders in _acdc_patients(root).values():
        for folder in folders:
            patient = os.path.basename(folder)
            number = int(patient[len("patient"):])
            split = ("challenge" if number > 100 else "val" if number in ACDC_VAL
                     else "train" if number in ACDC_TRAIN else "test")
            frames = [p for p in files(folder)
                      if re.fullmatch(rf"{patient}_frame\d+", stem(p))]
            for path in frames:
                label = _find_label(folder, stem(path), suffixes=("_gt",))
                if label is None and split != "challenge":
                    raise JaxsegError(f"ACDC frame {path} has no {stem(path)}_gt.nii.gz beside it")
                out[split].append((stem(path), path, label))
    return {k: v for k, v in out.items() if v}


def _plain(root: str) -> dict:
    out = {}
    for split, images, labels in readers.split_folders(root, "images", "labels",
                                                        "nifti dataset"):
        found = []
        for path in files(images):
            label = _find_label(labels, stem(path)) if labels else None
            if labels and label is None:
                raise JaxsegError(f"image {path} has no label volume in {labels} (looked for "
                                  f"<name>{{{','.join(LABEL_SUFFIXES)}}}.nii[.gz])")
            found.append((stem(path), path, label))
        if not found:
            raise JaxsegError(f"no NIfTI (.nii/.nii.gz) images in {images}")
        out[split] = found
    return out


# Folder names that name a split in a paired tree (M&Ms: Training/, Validation/, Testing/).
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "validation": "val",
                 "test": "test", "testing": "test"}


def _paired(root: str) -> dict:
    """Images with their labels beside them anywhere under ``root``.

    Labels are ``<name>_gt.nii.gz`` (``_seg``, ``_label``, ``_mask``); a top folder named like
    a split (:data:`SPLIT_FOLDERS`) sets the split.
    """
    found = {}
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        top = os.path.relpath(folder, root).split(os.sep)[0].lower()
        split = SPLIT_FOLDERS.get(top, "train")
        paths = sorted(os.path.join(folder, n) for n in names if is_nifti(n))
        stems = {stem(p): p for p in paths}
        for name, path in stems.items():
            if _labels_of(name, stems):
                continue  # a label file
            label = next((stems[name + x] for x in LABEL_SUFFIXES[1:] if name + x in stems),
                         None)
            if label is None and split != "test":
                continue  # an image without labels outside test/ (a cine file, a scout)
            found.setdefault(split, []).append((name, path, label))
    for split, cases_ in found.items():
        names = [c[0] for c in cases_]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise JaxsegError(f"nifti dataset {root}: case names {twice[:3]} occur twice in "
                              f"split {split!r}; rename the files")
        cases_.sort(key=lambda c: readers.natural_key(c[0]))
    return found


def _find_label(folder: str, name: str, suffixes=LABEL_SUFFIXES) -> str | None:
    """The label file of case ``name`` in ``folder`` (``<name><suffix>.nii[.gz]``), or None."""
    for suffix in suffixes:
        for ext in SUFFIXES:
            p = os.path.join(folder, f"{name}{suffix}{ext}")
            if os.path.exists(p):
                return p
    return None


def _labels_of(name: str, names) -> bool:
    """Whether ``name`` is the labels of another of ``names`` (``<image>_gt``, ``_seg``...)."""
    return any(name.endswith(x) and name[:-len(x)] in names for x in LABEL_SUFFIXES[1:])


def is_label_file(path: str) -> bool:
    """Whether a NIfTI file is the labels of an image beside it (``<name>_gt`` and ``<name>``)."""
    return is_nifti(path) and _labels_of(stem(path), {stem(p) for p in files(
        os.path.dirname(path) or ".")})


def find_label_for(image_path: str, masks: str | None) -> str | None:
    """The true labels of a NIfTI input for ``predict``: in ``masks`` or beside it.

    Looked for: ``masks`` itself if it is a file; in the ``masks`` folder the image's name
    (nnU-Net's ``_0000`` dropped) with any of :data:`LABEL_SUFFIXES`; without ``masks``,
    ``<name>_gt`` (``_seg``, ...) beside the image (the ACDC release, M&Ms).
    """
    name = stem(image_path)
    if masks and os.path.isfile(masks):
        return masks
    if masks:
        base = name[:-5] if re.search(r"_0000$", name) else name
        return _find_label(masks, base) or _find_label(masks, name)
    return _find_label(os.path.dirname(image_path), name, suffixes=LABEL_SUFFIXES[1:])

