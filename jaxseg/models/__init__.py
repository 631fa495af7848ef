"""Segmentation models: the U-Net, UNet 3+ and DeepLabV3 (``model.name``)."""

from jaxseg.models.build import (
    ARCHITECTURES,
    check_dropout,
    create_model,
    describe,
    reads,
    size_multiple,
    validate,
)
from jaxseg.models.deeplabv3 import DeepLabV3
from jaxseg.models.unet import UNet
from jaxseg.models.unet3plus import UNet3Plus

__all__ = ["ARCHITECTURES", "DeepLabV3", "UNet", "UNet3Plus", "check_dropout", "create_model",
           "describe", "reads", "size_multiple", "validate"]
