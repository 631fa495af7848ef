"""Readers for the image and mask files the builders ingest, with errors naming the file.

Everything a user can get wrong in a data folder (a missing folder, an unreadable
or corrupt image, a mask whose size differs from its image, labels outside the
declared classes) raises :class:`jaxseg.errors.JaxsegError` with the file's path.
"""

import glob
import hashlib
import os
import re
from collections.abc import Sequence

import numpy as np

from jaxseg.errors import JaxsegError


def fingerprint(folder: str) -> str:
    """A digest of a folder's contents: every file's relative path, size and modification time.

    Why not hashes of the bytes: reading every file on every launch costs (a few GB for a
    large set), while any edit, addition or deletion changes a name, size or modification
    time. What it misses: a file replaced by one of the same size with its old modification
    time restored (``cp -p``, ``rsync -t`` of an older copy).

    Args:
      folder: the data folder.

    Returns:
      A hex digest (16 characters).
    """
    entries = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            st = os.stat(path)
            entries.append(f"{os.path.relpath(path, folder)}\t{st.st_size}\t{st.st_mtime_ns}")
    return hashlib.sha1("\n".join(entries).encode()).hexdigest()[:16]


def require_dir(path: str, what: str) -> str:
    """Returns ``path`` if it is a directory, else raises a JaxsegError naming it.

    Args:
      path: the folder.
      what: what the folder should hold, for the message.

    Returns:
      The absolute path.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise JaxsegError(f"{what}: data folder not found: {path} (see README.md, 'Your own data')")
    return path


def split_folders(root: str, images: str, labels: str, what: str):
    """A user folder's splits, each with its image folder and its label folder, if any.

    The splits are the ``train/``, ``val/``, ``test/`` sub-folders, or without them the
    folder itself as ``train``.

    Args:
      root: the data folder.
      images: the image sub-folder's name (``images``), required in every split.
      labels: the label sub-folder's name (``masks``, ``labels``); a split without one is
        unlabelled.
      what: the data set's kind, for the message.

    Returns:
      ``[(split, image folder, label folder or None)]``.
    """
    bases = {s: os.path.join(root, s) for s in ("train", "val", "test")
             if os.path.isdir(os.path.join(root, s))} or {"train": root}
    out = []
    for split, base in bases.items():
        image_dir = require_dir(os.path.join(base, images), f"{what}, split {split}")
        label_dir = os.path.join(base, labels)
        out.append((split, image_dir, label_dir if os.path.isdir(label_dir) else None))
    return out


def natural_key(path: str):
    """Sorts file names in natural order (``img2`` before ``img10``), by their base name."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", os.path.basename(path))]


def png_files(folder: str) -> list[str]:
    """The PNG files of a folder in natural order (``img2`` before ``img10``)."""
    return matching(os.path.join(folder, "*.png"))


def matching(pattern: str) -> list[str]:
    """The files a glob pattern matches, in natural order (``img2`` before ``img10``)."""
    return sorted(glob.glob(pattern), key=natural_key)


DICOM_SUFFIXES = (".dcm", ".dicom")


def image_files(folder: str) -> list[str]:
    """A folder's 2-D images: its PNGs, or else its DICOM files, in natural order."""
    return png_files(folder) or [p for p in matching(os.path.join(folder, "*"))
                                 if os.path.isfile(p) and is_dicom(p)]


def is_dicom(path: str) -> bool:
    """Whether a file is DICOM: by its suffix (``.dcm``), or by its content.

    Scanner exports often name slices without a suffix (``IM0001``): such a file is DICOM
    when the ``DICM`` mark follows its 128-byte preamble.
    """
    if path.lower().endswith(DICOM_SUFFIXES):
        return True
    if os.path.splitext(path)[1] or not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"


def read_dicom(path: str) -> np.ndarray:
    """Reads one DICOM slice (pydicom, the ``dicom`` extra) as float32 modality values.

    The stored values go through the modality LUT (``RescaleSlope``/``RescaleIntercept``),
    so every slice of a series is on one scale; :func:`read_image` then scales each slice to
    [0, 1] from its :data:`WIDE_PERCENTILES`, as for 16-bit PNGs.

    Args:
      path: the ``.dcm`` file.

    Returns:
      A 2-D float32 array.
    """
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut
    except ImportError:
        raise JaxsegError(f"{path}: reading DICOM needs pydicom: pip install "
                          "'jaxseg[dicom]'") from None
    try:
        ds = pydicom.dcmread(path)
        arr = apply_modality_lut(ds.pixel_array, ds)
    except FileNotFoundError:
        raise JaxsegError(f"image file not found: {path}") from None
    except Exception as e:  # pydicom raises many types for a broken or pixel-less file
        raise JaxsegError(f"unreadable DICOM file {path}: {type(e).__name__}: {e}") from None
    arr = np.asarray(arr, np.float32)
    if arr.ndim != 2:
        raise JaxsegError(f"DICOM file {path} holds pixel data of shape {arr.shape}; expected "
                          "one 2-D grey slice (multi-frame and colour files are not read)")
    return arr


def read_image(path: str) -> np.ndarray:
    """A PNG or DICOM image as float32 in [0, 1] (see :func:`image_to_unit`).

    DICOM slices are always scaled from their percentiles (MRI has no fixed range).
    """
    dicom = is_dicom(path)
    return to_unit(read_dicom(path) if dicom else read_png(path), dicom)


def to_unit(raw: np.ndarray, dicom: bool) -> np.ndarray:
    """A read image in [0, 1]: DICOM from its percentiles, others by :func:`image_to_unit`."""
    return percentile_to_unit(raw) if dicom else image_to_unit(raw)


def find_mask(mask_dir: str, image_path: str) -> str | None:
    """The mask of an image in ``mask_dir``: ``<stem>_mask.png`` or ``<stem>.png`` (or None)."""
    stem = os.path.splitext(os.path.basename(image_path))[0]
    for name in (f"{stem}_mask.png", f"{stem}.png"):
        p = os.path.join(mask_dir, name)
        if os.path.exists(p):
            return p
    return None


def read_png(path: str) -> np.ndarray:
    """Reads an 8- or 16-bit PNG (or any PIL-readable image) as a 2-D grey array.

    Args:
      path: the image file.

    Returns:
      A 2-D array (uint8 or uint16). RGB images are converted to grey levels;
      RGB masks are refused by :func:`read_mask`.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA", "P", "LA"):
                im = im.convert("L")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise JaxsegError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise JaxsegError(f"unreadable image {path}: {e}") from None
    if arr.ndim != 2:
        raise JaxsegError(f"image {path} has shape {arr.shape}; expected a 2-D grey image")
    return arr


# Integer images wider than 8 bits (16-bit PNG, DICOM pixel data) have no fixed intensity
# range in MRI: a file's values may span 0..800 or 0..30000. They are scaled per image from
# these percentiles to [0, 1], clipped, the usual robust rescaling of MR intensities.
WIDE_PERCENTILES = (0.5, 99.5)


def image_to_unit(arr: np.ndarray) -> np.ndarray:
    """Scales an image to float32 in [0, 1].

    8-bit (and boolean) images by their range (``/ 255``); wider integer images per image
    from their :data:`WIDE_PERCENTILES` to 0 and 1, clipped (a constant image becomes 0);
    float images are kept as they are.
    """
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if np.issubdtype(arr.dtype, np.integer):
        return percentile_to_unit(arr)
    return arr.astype(np.float32)


def percentile_to_unit(arr: np.ndarray) -> np.ndarray:
    """``arr`` scaled from its :data:`WIDE_PERCENTILES` to 0 and 1, clipped (float32).

    A constant array becomes 0.
    """
    lo, hi = (float(v) for v in np.percentile(arr, WIDE_PERCENTILES))
    if hi <= lo:
        return np.zeros(arr.shape, np.float32)
    return np.clip((arr.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def labels_from_grey(mask: np.ndarray, grey_levels: Sequence[int] | None, path: str,
                     num_classes: int) -> np.ndarray:
    """Maps a mask's grey levels to class indices and checks them.

    Args:
      mask: the raw mask.
      grey_levels: ``grey_levels[c]`` is the grey value of class ``c`` (e.g. 0/128/255);
        ``None`` means the mask already holds class indices.
      path: the file, for the message.
      num_classes: the number of declared classes.

    Returns:
      uint8 labels in ``[0, num_classes)``.
    """
    values = np.unique(mask)
    if grey_levels is None:
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise JaxsegError(
                f"mask {path} holds labels {bad.tolist()} outside the declared classes "
                f"0..{num_classes - 1}")
        return mask.astype(np.uint8)
    lut = {int(g): c for c, g in enumerate(grey_levels)}
    bad = [int(v) for v in values if int(v) not in lut]
    if bad:
        raise JaxsegError(
            f"mask {path} holds grey levels {bad} that are not in the declared mapping "
            f"{list(grey_levels)}")
    out = np.zeros(mask.shape, np.uint8)
    for g, c in lut.items():
        out[mask == g] = c
    return out


def read_mask(path: str, num_classes: int, grey_levels: Sequence[int] | None = None,
              image_shape: tuple[int, ...] | None = None, image_path: str = "") -> np.ndarray:
    """Reads a label mask, checking its size against its image and its labels.

    Args:
      path: the mask file.
      num_classes: the number of declared classes.
      grey_levels: the grey level of each class, or None for masks holding class indices.
      image_shape: the shape of the image the mask belongs to, if known.
      image_path: that image's path, for the message.

    Returns:
      uint8 labels.
    """
    mask = read_png(path)
    if image_shape is not None and mask.shape != tuple(image_shape):
        raise JaxsegError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
            f"{image_shape[1]}x{image_shape[0]}")
    return labels_from_grey(mask, grey_levels, path, num_classes)


def read_h5(path: str, num_classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Reads an SSL4MIS-layout HDF5 file with datasets ``image`` and ``label``.

    Args:
      path: the ``.h5`` file (a slice ``(H, W)`` or a volume ``(S, H, W)``).
      num_classes: the number of declared classes.

    Returns:
      ``(image float32, label uint8)`` of the same shape.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            image = np.asarray(f["image"], np.float32)
            label = np.asarray(f["label"]) if "label" in f else None
    except FileNotFoundError:
        raise JaxsegError(f"HDF5 file not found: {path}") from None
    except KeyError:
        raise JaxsegError(f"HDF5 file {path} has no 'image' dataset") from None
    except OSError as e:
        raise JaxsegError(f"unreadable HDF5 file {path}: {e}") from None
    if label is None:
        raise JaxsegError(f"HDF5 file {path} has no 'label' dataset")
    if label.shape != image.shape:
        raise JaxsegError(f"HDF5 file {path}: label shape {label.shape} != image shape "
                          f"{image.shape}")
    if not np.all(np.isfinite(image)):
        raise JaxsegError(f"HDF5 file {path}: image holds NaN or inf")
    return image, labels_from_grey(label, None, path, num_classes)
