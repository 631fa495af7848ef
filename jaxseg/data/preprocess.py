"""Host-side pre-processing applied once when a dataset is loaded: scaling, CLAHE, size fit.

These run in NumPy before the data moves to the device, so they cost nothing per
epoch; anything random (augmentation) happens on the device instead
(:mod:`jaxseg.data.augment`).
"""

import numpy as np

from jaxseg.errors import check_choice

SCALINGS = ("none", "minmax", "percentile")
FITS = ("crop", "resize")


def scale(image: np.ndarray, mode: str) -> np.ndarray:
    """Rescales one image to [0, 1].

    Args:
      image: float image, already in [0, 1] by its file's range.
      mode: ``none`` (keep), ``minmax`` (per image min to 0, max to 1) or
        ``percentile`` (per image 1st/99th percentiles to 0/1, clipped; robust to
        the few very bright pixels MR images often have).

    Returns:
      The scaled float32 image.
    """
    check_choice("data.scaling", mode, SCALINGS)
    if mode == "none":
        return image.astype(np.float32)
    if mode == "minmax":
        lo, hi = float(image.min()), float(image.max())
    else:
        lo, hi = (float(v) for v in np.percentile(image, [1, 99]))
    if hi <= lo:
        return np.zeros_like(image, np.float32)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def clahe(image: np.ndarray, clip_limit: float, tiles: int) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (scikit-image's implementation).

    Args:
      image: float image in [0, 1].
      clip_limit: the normalised clip limit (0.01 is scikit-image's default).
      tiles: tiles per side; the kernel is ``image_size / tiles``.

    Returns:
      The equalised float32 image in [0, 1].
    """
    from skimage import exposure

    kernel = (max(image.shape[0] // tiles, 2), max(image.shape[1] // tiles, 2))
    return exposure.equalize_adapthist(np.clip(image, 0, 1), kernel_size=kernel,
                                       clip_limit=clip_limit).astype(np.float32)


def fit(arr: np.ndarray, size, mode: str, labels: bool = False) -> np.ndarray:
    """Fits the last two axes of ``arr`` to ``size`` by ``data.fit``'s rule.

    ``crop``: :func:`crop_or_pad` (centre crop and/or zero pad; the scale is kept).
    ``resize``: scaled to the size (scikit-image's ``resize``), linearly for images (with
    anti-aliasing when shrinking), by nearest neighbour for label maps. Either way, fitting
    the output back to the input's shape is how predictions return to an input's size.

    Args:
      arr: an array ``(..., H, W)``.
      size: the output side, or ``(height, width)``.
      mode: ``crop`` or ``resize``.
      labels: whether ``arr`` holds labels (never interpolated).

    Returns:
      An array ``(..., height, width)`` of ``arr``'s dtype.
    """
    check_choice("data.fit", mode, FITS)
    shape = _shape(size)
    if mode == "crop" or tuple(arr.shape[-2:]) == shape:
        return crop_or_pad(arr, shape)
    from skimage.transform import resize

    shrink = shape[0] < arr.shape[-2] or shape[1] < arr.shape[-1]
    out = resize(arr, arr.shape[:-2] + shape, order=0 if labels else 1, mode="edge",
                 preserve_range=True, anti_aliasing=shrink and not labels)
    return out.astype(arr.dtype)


def crop_or_pad(arr: np.ndarray, size, fill=0) -> np.ndarray:
    """Centre-crops and/or zero-pads the last two axes of ``arr`` to ``size``.

    Going back, ``crop_or_pad(crop_or_pad(a, s), a.shape)`` restores ``a`` where the crop
    kept it (and ``fill`` elsewhere): predictions are put back at an input's size this way.

    Args:
      arr: an array ``(..., H, W)``.
      size: the output side, or ``(height, width)``.
      fill: the pad value.

    Returns:
      An array ``(..., height, width)``; the centre of the input stays at the centre.
    """
    (sy, sx), (dy, dx), (ch, cw) = _centred(arr.shape[-2:], size)
    out = np.full(arr.shape[:-2] + _shape(size), fill, arr.dtype)
    out[..., dy:dy + ch, dx:dx + cw] = arr[..., sy:sy + ch, sx:sx + cw]
    return out


def kept_region(shape, size, mode: str) -> tuple[int, int, int, int]:
    """Where an image of ``shape`` lies after :func:`fit` to ``size``: the rest is padding.

    Args:
      shape: the input's ``(height, width)``.
      size: the output side, or ``(height, width)``.
      mode: ``data.fit`` (``crop`` pads a smaller input with zeros; ``resize`` fills all).

    Returns:
      ``(top, bottom, left, right)`` in the output, bottom and right exclusive.
    """
    oh, ow = _shape(size)
    if mode == "resize":
        return 0, oh, 0, ow
    _, (dy, dx), (ch, cw) = _centred(tuple(shape)[-2:], size)
    return dy, dy + ch, dx, dx + cw


def _shape(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)[-2:]


def _centred(shape, size):
    """Offsets into the source (crop) and the destination (pad), and the common extent."""
    (h, w), (oh, ow) = shape, _shape(size)
    return ((max((h - oh) // 2, 0), max((w - ow) // 2, 0)),
            (max((oh - h) // 2, 0), max((ow - w) // 2, 0)), (min(h, oh), min(w, ow)))
