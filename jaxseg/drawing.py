"""Drawing segmentations: one colour per structure, label overlays on grey images, PNGs.

Used by ``jaxseg predict`` (overlay PNGs) and ``jaxseg report`` (mask panels); the colours
follow the structure's name, so RV, MYO and LV look the same in every data set.
"""

import numpy as np

# Overlay colours per class (class 0, background, is not drawn): RV red, MYO green, LV blue.
COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230]], np.uint8)
# A structure keeps its colour whatever its index: a 3-class LGE-style set (bg, MYO, blood)
# draws the myocardium green as the 4-class sets do, not in the RV's red.
NAMED = {"rv": 1, "myo": 2, "lv": 3, "blood": 3, "scar": 4}


def class_colours(class_names) -> np.ndarray:
    """The overlay colour of each class, by name where the structure is known.

    Args:
      class_names: the dataset's class names, background first.

    Returns:
      uint8 ``(len(class_names), 3)``: RV red, MYO green, LV (or blood pool) blue, scar
      orange; other classes take the unused colours of :data:`COLOURS` in order.
    """
    picks = [NAMED.get(str(n).lower()) for n in class_names]
    picks[0] = 0
    spare = iter(i for i in range(1, len(COLOURS)) if i not in picks)
    return COLOURS[[p if p is not None else next(spare, 1) for p in picks]]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45,
            colours: np.ndarray = COLOURS) -> np.ndarray:
    """An RGB picture of a grey image with its labels in colour.

    Args:
      image: ``(H, W)`` float in [0, 1].
      labels: ``(H, W)`` class indices.
      alpha: the opacity of the colours.
      colours: uint8 ``(C, 3)``, one colour per class (:func:`class_colours`).

    Returns:
      uint8 ``(H, W, 3)``.
    """
    grey = np.repeat((np.clip(image, 0, 1) * 255)[..., None], 3, -1)
    colour = colours[labels % len(colours)].astype(np.float32)
    a = np.where(labels[..., None] > 0, alpha, 0.0)
    return (grey * (1 - a) + colour * a).round().astype(np.uint8)


def save_png(path: str, arr: np.ndarray) -> None:
    """Writes a uint8 ``(H, W)`` or ``(H, W, 3)`` array as a PNG."""
    from PIL import Image

    Image.fromarray(arr).save(path)
