"""Segmentation models."""

from jaxseg.models.unet import UNet, create_model

__all__ = ["UNet", "create_model"]
