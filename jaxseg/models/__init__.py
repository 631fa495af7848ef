"""Segmentation models."""

from jaxseg.models.unet import UNet, create_model, validate

__all__ = ["UNet", "create_model", "validate"]
