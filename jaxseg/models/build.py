"""The ``model`` config: which architecture (``model.name``), its checks, and the Flax module.

Every architecture reads the shared fields (``activation``, ``head``, ``init``, ``dtype``)
and its own; a field another architecture defines must be left at its default, and a
dropout stage the network has no place for must stay 0, so a grid never silently trains a
setting that has no effect (``model.depth=4`` on DeepLabV3 is refused, not ignored).
"""

import os

import numpy as np

from jaxseg import configs
from jaxseg.errors import JaxsegError, check_choice
from jaxseg.models.deeplabv3 import DeepLabV3
from jaxseg.models.unet import ACTIVATIONS, DTYPES, HEADS, INITS, NORMS, UPSAMPLES, UNet
from jaxseg.models.unet3plus import UNet3Plus

ARCHITECTURES = ("unet", "unet3plus", "deeplabv3")
# The fields each architecture reads besides the shared ones (name, activation, head, init,
# dtype, dropout); the dropout stages it has.
FIELDS = {
    "unet": ("depth", "base_width", "norm", "norm_position", "upsample"),
    "unet3plus": ("depth", "base_width", "cat_width", "deep_supervision", "side_weight",
                  "norm", "norm_position"),
    "deeplabv3": ("output_stride", "aspp_rates", "aspp_width", "pretrained"),
}
DROPOUT_STAGES = {"unet": ("encoder", "bottleneck", "decoder"),
                  "unet3plus": ("encoder", "bottleneck", "decoder"),
                  "deeplabv3": ("decoder",)}


def _plain(value):
    """A value as compared with the default (a config read back from JSON has lists)."""
    return tuple(value) if isinstance(value, list | tuple) else value


def check_dropout(cfg, rates: dict) -> None:
    """Refuses dropout at a stage the network has no place for.

    Args:
      cfg: the ``model`` config.
      rates: ``{stage: rates}`` (one per replica, or the config's own).
    """
    for stage, values in rates.items():
        if stage not in DROPOUT_STAGES[cfg.name] and np.any(np.asarray(values) > 0):
            raise JaxsegError(f"model.dropout.{stage} does not apply to model.name={cfg.name!r}:"
                              f" it has dropout only at {list(DROPOUT_STAGES[cfg.name])}")


def validate(cfg, num_classes: int) -> None:
    """Checks the ``model`` config's choices and sizes (raises JaxsegError naming the field).

    Args:
      cfg: the ``model`` config.
      num_classes: classes including background.
    """
    check_choice("model.name", cfg.name, ARCHITECTURES)
    check_choice("model.activation", cfg.activation, tuple(ACTIVATIONS))
    check_choice("model.head", cfg.head, HEADS)
    check_choice("model.init", cfg.init, tuple(INITS))
    check_choice("model.dtype", cfg.get("dtype", "float32"), tuple(DTYPES))
    if cfg.head == "sigmoid" and num_classes != 2:
        raise JaxsegError(f"model.head='sigmoid' is binary and needs data.num_classes=2, "
                          f"not {num_classes}")
    defaults, own = configs.default().model, FIELDS[cfg.name]
    for field in sorted(set().union(*FIELDS.values()) - set(own)):
        if field in cfg and _plain(cfg[field]) != _plain(defaults[field]):
            owners = [a for a in ARCHITECTURES if field in FIELDS[a]]
            raise JaxsegError(f"model.{field}={cfg[field]!r} does not apply to "
                              f"model.name={cfg.name!r} (it is a field of {' and '.join(owners)}); "
                              f"leave it at its default {defaults[field]!r}")
    # The config's own rates; a cohort's per-replica ones: validation.validate.
    check_dropout(cfg, {s: cfg.dropout[s] for s in DROPOUT_STAGES["unet"]})
    if cfg.name in ("unet", "unet3plus"):
        check_choice("model.norm", cfg.norm, NORMS)
        check_choice("model.norm_position", cfg.norm_position, ("before", "after"))
        if cfg.depth < 1 or cfg.base_width < 1:
            raise JaxsegError(f"model.depth ({cfg.depth}) and model.base_width "
                              f"({cfg.base_width}) must be >= 1")
    if cfg.name == "unet":
        check_choice("model.upsample", cfg.upsample, UPSAMPLES)
    elif cfg.name == "unet3plus":
        if cfg.cat_width < 1 or not float(cfg.side_weight) >= 0:
            raise JaxsegError(f"model.cat_width ({cfg.cat_width}) must be >= 1 and "
                              f"model.side_weight ({cfg.side_weight}) >= 0")
    else:
        check_choice("model.output_stride", cfg.output_stride, (8, 16))
        rates = tuple(cfg.aspp_rates)
        if rates and (len(rates) != 3 or min(rates) < 1):
            raise JaxsegError(f"model.aspp_rates={rates}: three atrous rates >= 1, or () for "
                              "the paper's (6, 12, 18) at output stride 16, (12, 24, 36) at 8")
        if cfg.aspp_width < 1:
            raise JaxsegError(f"model.aspp_width ({cfg.aspp_width}) must be >= 1")
        if cfg.pretrained and not os.path.isfile(os.path.expanduser(cfg.pretrained)):
            raise JaxsegError(f"model.pretrained={cfg.pretrained}: no such file (jaxseg convert "
                              "writes one from torchvision's ResNet-18 weights)")


def reads(cfg, key: str) -> bool:
    """Whether the network of the ``model`` config ``cfg`` reads the dotted config ``key``.

    False for a ``model.`` field of another architecture (e.g. ``model.depth`` for
    DeepLabV3): result tables show "-" there rather than a value that had no effect.
    """
    field = key[len("model."):] if key.startswith("model.") else None
    own = FIELDS[cfg.get("name", "unet")]
    return field is None or field not in set().union(*FIELDS.values()) or field in own


def describe(cfg) -> str:
    """A short name of the architecture for plans and logs, e.g. ``unet d3 w16 transpose``."""
    name = cfg.get("name", "unet")
    if name == "unet3plus":
        return (f"unet3plus d{cfg.depth} w{cfg.base_width} cat{cfg.cat_width}"
                + (" deep-sup" if cfg.deep_supervision else ""))
    if name == "deeplabv3":
        rates = tuple(cfg.aspp_rates) or "paper"
        return f"deeplabv3 os{cfg.output_stride} rates {rates}"
    return f"unet d{cfg.depth} w{cfg.base_width} {cfg.upsample}"


def size_multiple(cfg) -> int:
    """What the image sides must be divisible by (``2**depth`` for the U-Nets, 1 otherwise)."""
    return 2 ** int(cfg.depth) if cfg.get("name", "unet") in ("unet", "unet3plus") else 1


def create_model(cfg, num_classes: int, dtype=None):
    """Builds the model a ``model`` config describes, checking every choice.

    Args:
      cfg: the ``model`` config.
      num_classes: classes including background.
      dtype: computation dtype; default ``cfg.dtype`` (float32 for configs written before
        the field existed).

    Returns:
      The Flax module (:class:`UNet`, :class:`UNet3Plus` or :class:`DeepLabV3`).
    """
    validate(cfg, num_classes)
    dtype = DTYPES[cfg.get("dtype", "float32")] if dtype is None else dtype
    shared = dict(num_classes=num_classes, activation=cfg.activation, head=cfg.head,
                  initializer=cfg.init, dtype=dtype)
    name = cfg.get("name", "unet")
    if name == "unet3plus":
        return UNet3Plus(depth=int(cfg.depth), base_width=int(cfg.base_width),
                         cat_width=int(cfg.cat_width),
                         deep_supervision=bool(cfg.deep_supervision), norm=cfg.norm,
                         norm_position=cfg.norm_position, **shared)
    if name == "deeplabv3":
        return DeepLabV3(output_stride=int(cfg.output_stride),
                         aspp_rates=tuple(int(r) for r in cfg.aspp_rates),
                         aspp_width=int(cfg.aspp_width), **shared)
    return UNet(depth=int(cfg.depth), base_width=int(cfg.base_width), norm=cfg.norm,
                norm_position=cfg.norm_position, upsample=cfg.upsample, **shared)
