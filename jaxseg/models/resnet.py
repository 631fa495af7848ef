"""ResNet-18 (He et al., 2016) as a dilated segmentation backbone, laid out as torchvision's.

The module and parameter names follow torchvision's ``resnet18`` state dict (``conv1``,
``bn1``, ``layer1_0.conv1``... for ``layer1.0.conv1``), and the paddings are PyTorch's
explicit ones (not XLA's ``SAME``, which pads strided convolutions asymmetrically), so that
ImageNet weights converted by :mod:`jaxseg.models.pretrained` compute what they compute in
torchvision.

Dilation replaces the strides of the last stages for output strides 16 and 8 (Chen et al.,
2017): every 3x3 convolution of a dilated stage gets its dilation (2 for layer4 at output
stride 16; 2 for layer3 and 4 for layer4 at 8), as segmentation_models_pytorch does for its
ResNet-18/34 encoders (torchvision refuses dilation in the basic block).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.unet import ACTIVATIONS, INITS

STAGES = (64, 128, 256, 512)  # channels of layer1...layer4
BLOCKS = (2, 2, 2, 2)  # basic blocks per stage (ResNet-18)


def conv(features: int, kernel: int, stride: int = 1, dilation: int = 1, *,
         initializer: str, dtype, name: str) -> nn.Conv:
    """A bias-free convolution with PyTorch's symmetric padding ``dilation * (k - 1) // 2``."""
    pad = dilation * (kernel - 1) // 2
    return nn.Conv(features, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
                   kernel_dilation=dilation, use_bias=False, kernel_init=INITS[initializer],
                   dtype=dtype, name=name)


def batch_norm(train: bool, dtype, name: str) -> nn.BatchNorm:
    """Batch norm with PyTorch's defaults (momentum 0.1 there is 0.9 here, epsilon 1e-5)."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        dtype=dtype, name=name)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection.

    Attributes:
      features: output channels.
      stride: of the first convolution (and of the projection).
      dilation: of both 3x3 convolutions.
      project: whether the shortcut is a 1x1 convolution + batch norm (``downsample``).
      activation: a key of ``ACTIVATIONS``.
      initializer: a key of ``INITS``.
      dtype: the computation dtype.
    """

    features: int
    stride: int = 1
    dilation: int = 1
    project: bool = False
    activation: str = "relu"
    initializer: str = "he"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        """Applies the block to ``(B, H, W, C)`` features."""
        act, kw = ACTIVATIONS[self.activation], dict(initializer=self.initializer,
                                                     dtype=self.dtype)
        y = conv(self.features, 3, self.stride, self.dilation, name="conv1", **kw)(x)
        y = act(batch_norm(train, self.dtype, "bn1")(y))
        y = conv(self.features, 3, 1, self.dilation, name="conv2", **kw)(y)
        y = batch_norm(train, self.dtype, "bn2")(y)
        if self.project:
            x = conv(self.features, 1, self.stride, name="downsample_conv", **kw)(x)
            x = batch_norm(train, self.dtype, "downsample_bn")(x)
        return act(y + x)


class ResNet18(nn.Module):
    """ResNet-18 features at 1/``output_stride`` of the input (no pooling head, no classifier).

    Attributes:
      output_stride: 32 (the classification network), 16 or 8 (dilated last stages).
      activation: ``relu`` | ``leaky_relu``.
      initializer: ``he`` | ``xavier``.
      dtype: the computation dtype.
    """

    output_stride: int = 16
    activation: str = "relu"
    initializer: str = "he"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False) -> jax.Array:
        """Returns ``(B, H / output_stride, W / output_stride, 512)`` (rounded up)."""
        kw = dict(activation=self.activation, initializer=self.initializer, dtype=self.dtype)
        x = conv(64, 7, 2, name="conv1", initializer=self.initializer, dtype=self.dtype)(x)
        x = ACTIVATIONS[self.activation](batch_norm(train, self.dtype, "bn1")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        # Stages 3 and 4 trade their stride 2 for dilation to reach the output stride.
        dilations = {32: (1, 1, 1, 1), 16: (1, 1, 1, 2), 8: (1, 1, 2, 4)}[self.output_stride]
        channels = 64
        for stage, (features, blocks, dilation) in enumerate(
                zip(STAGES, BLOCKS, dilations, strict=True), 1):
            step = 1 if stage == 1 or dilation > 1 else 2
            for b in range(blocks):
                x = BasicBlock(features, stride=step if b == 0 else 1, dilation=dilation,
                               project=b == 0 and (step != 1 or channels != features),
                               name=f"layer{stage}_{b}", **kw)(x, train)
            channels = features
        return x
