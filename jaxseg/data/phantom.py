"""Synthetic short-axis cardiac MR images with exact labels (the built-in default data).

Each image shows a body cross-section with the heart near its centre: a bright
left-ventricle (LV) blood pool inside a dark myocardium (MYO) ring, a bright
right-ventricle (RV) crescent wrapped around the septum, darker lungs, a smooth
bias field and Gaussian noise. Labels follow the cmr96/ACDC convention
(0 background, 1 RV, 2 MYO, 3 LV), so every model and loss that runs on real
data runs on this too, with no download.
"""

import numpy as np


def _ellipse(yy, xx, cy, cx, ry, rx, angle=0.0):
    """Returns the normalised radius of every pixel w.r.t. a rotated ellipse (<1 inside)."""
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = yy - cy, xx - cx
    u = (c * dx + s * dy) / rx
    v = (-s * dx + c * dy) / ry
    return np.sqrt(u * u + v * v)


def phantom_image(rng: np.random.Generator, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Draws one synthetic short-axis slice.

    Args:
      rng: the random generator (the image is a pure function of its state).
      size: the image side in pixels.

    Returns:
      ``(image, label)``: float32 ``(size, size)`` in [0, 1] and uint8 labels in {0,1,2,3}.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    s = size / 96.0  # all geometry below is written for 96x96 and scaled
    cy = size / 2 + rng.uniform(-6, 6) * s
    cx = size / 2 + rng.uniform(-6, 6) * s
    r_lv = rng.uniform(8, 14) * s
    wall = rng.uniform(4, 7) * s
    squash = rng.uniform(0.85, 1.15)
    tilt = rng.uniform(-0.5, 0.5)

    lv_r = _ellipse(yy, xx, cy, cx, r_lv * squash, r_lv / squash, tilt)
    epi_r = _ellipse(yy, xx, cy, cx, (r_lv + wall) * squash, (r_lv + wall) / squash, tilt)
    # RV: a larger ellipse shifted toward the patient's right (image left) minus the
    # epicardium, which leaves the crescent shape seen on short-axis cine.
    rv_dir = np.pi + rng.uniform(-0.5, 0.5)
    rv_off = (r_lv + wall) * rng.uniform(0.7, 1.0)
    rv_cy, rv_cx = cy + rv_off * np.sin(rv_dir), cx + rv_off * np.cos(rv_dir)
    rv_size = (r_lv + wall) * rng.uniform(0.9, 1.3)
    rv_r = _ellipse(yy, xx, rv_cy, rv_cx, rv_size * 1.1, rv_size * 0.8, rv_dir + tilt)
    body_r = _ellipse(yy, xx, size / 2, size / 2, size * 0.46, size * 0.49)
    lung_l = _ellipse(yy, xx, size * 0.45, size * 0.16, size * 0.2, size * 0.1)
    lung_r = _ellipse(yy, xx, size * 0.45, size * 0.84, size * 0.2, size * 0.1)

    label = np.zeros((size, size), np.uint8)
    label[(rv_r < 1) & (epi_r >= 1)] = 1
    label[(epi_r < 1) & (lv_r >= 1)] = 2
    label[lv_r < 1] = 3

    image = np.where(body_r < 1, rng.uniform(0.35, 0.5), 0.02)
    image = np.where((lung_l < 1) | (lung_r < 1), rng.uniform(0.05, 0.12), image)
    # Fat rim around the heart: bright, like epicardial fat on bSSFP cine.
    fat = (_ellipse(yy, xx, cy, cx, (r_lv + wall + 3 * s) * squash,
                    (r_lv + wall + 3 * s) / squash, tilt) < 1) & (label == 0)
    image = np.where(fat, rng.uniform(0.6, 0.75), image)
    blood = rng.uniform(0.75, 0.95)
    image = np.where(label == 1, blood * rng.uniform(0.85, 1.0), image)
    image = np.where(label == 2, rng.uniform(0.2, 0.32), image)
    image = np.where(label == 3, blood, image)
    # Papillary muscles: small dark blobs inside the LV that stay labelled LV.
    for _ in range(2):
        a = rng.uniform(0, 2 * np.pi)
        py, px = cy + 0.6 * r_lv * np.sin(a), cx + 0.6 * r_lv * np.cos(a)
        blob = _ellipse(yy, xx, py, px, 1.5 * s, 1.5 * s) < 1
        image = np.where(blob & (label == 3), image * 0.6, image)

    # Smooth multiplicative bias field (coil sensitivity) and noise.
    gy, gx = rng.normal(0, 0.25, 2)
    bias = 1.0 + gy * (yy / size - 0.5) + gx * (xx / size - 0.5)
    image = image * bias + rng.normal(0, rng.uniform(0.02, 0.06), image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32), label


def phantom_split(seed: int, count: int, size: int = 96):
    """Draws ``count`` images deterministically from ``seed``.

    Args:
      seed: the seed; the same seed always gives the same images.
      count: how many images.
      size: the image side in pixels.

    Returns:
      A list of ``(image, label)`` pairs.
    """
    rng = np.random.default_rng(seed)
    return [phantom_image(rng, size) for _ in range(count)]


def write_folder(root: str, pairs, grey_levels, class_map=None) -> str:
    """Writes image/mask pairs as a ``folder`` dataset (``images/``, ``masks/`` PNGs).

    Args:
      root: the folder to create.
      pairs: ``(image in [0, 1], labels)`` pairs.
      grey_levels: the grey value written for each output class.
      class_map: optional ``{input label: output class}`` (unlisted labels become 0).

    Returns:
      ``root``.
    """
    import os

    from PIL import Image

    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "masks"), exist_ok=True)
    for i, (image, label) in enumerate(pairs):
        if class_map is not None:
            mapped = np.zeros_like(label)
            for src, dst in class_map.items():
                mapped[label == src] = dst
            label = mapped
        grey = np.asarray(grey_levels, np.uint8)[label]
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(
            os.path.join(root, "images", f"img{i:04d}.png"))
        Image.fromarray(grey).save(os.path.join(root, "masks", f"img{i:04d}.png"))
    return root
