"""DeepLabV3 (Chen et al., 2017, "Rethinking Atrous Convolution") on a ResNet-18 backbone.

A dilated ResNet-18 (:mod:`jaxseg.models.resnet`) gives features at 1/``output_stride`` of
the input; atrous spatial pyramid pooling (ASPP) looks at them at several rates: one 1x1
convolution, three 3x3 convolutions dilated by ``aspp_rates``, and image pooling (global
average, 1x1 convolution, broadcast back), each to ``aspp_width`` channels with batch norm
and activation. Their concatenation passes a 1x1 convolution (``aspp_width``, batch norm)
and a final 1x1 convolution to logits, bilinearly up-sampled to the input size: the paper's
head (torchvision's ``DeepLabHead`` adds a 3x3 convolution before the logits; the paper does
not). ``model.dropout.decoder`` is a dropout after the ASPP projection (torchvision's 0.5 is
there); the other dropout stages have no place in this network and are refused.

The paper's rates (6, 12, 18) at output stride 16 (doubled at 8) were chosen for 513x513
crops, a 33x33 feature map; on a 96x96 image at output stride 16 the map is 6x6 and those
rates leave only each filter's centre tap inside it (the degeneration to 1x1 filters the
paper describes), so ``aspp_rates`` is a field and the study scales it to the image
(experiments/architectures.py). The paper's multi-grid rates apply to ResNet-101's third
block of the last stage; ResNet-18's stages have two blocks and do not use them.

Parameter counts (1-channel input, 4 classes; tests/test_models.py checks them): 15,303,108
at any output stride and rates, of which the backbone has 11,170,240 (torchvision's
``resnet18`` without its classifier has 11,176,512: its first convolution takes 3 channels).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.resnet import ResNet18, batch_norm, conv
from jaxseg.models.unet import ACTIVATIONS, INITS, SegmentationNet, stage_dropout

PAPER_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


class DeepLabV3(SegmentationNet):
    """DeepLabV3: dilated ResNet-18, ASPP, bilinear up-sampling of the logits.

    Attributes (besides :class:`~jaxseg.models.unet.SegmentationNet`'s):
      output_stride: 16 or 8 (the backbone's last one or two stages dilated).
      aspp_rates: the three atrous rates; empty for the paper's (6, 12, 18) at output
        stride 16 and (12, 24, 36) at 8.
      aspp_width: channels of every ASPP branch and of the projection (the paper's 256).
    """

    output_stride: int = 16
    aspp_rates: Sequence[int] = ()
    aspp_width: int = 256

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rates: Sequence = (None, None, None)):
        """Returns logits ``(B, H, W, num_classes)`` (softmax) or ``(B, H, W, 1)`` (sigmoid).

        Args:
          x: images ``(B, H, W, C)``.
          train: batch statistics and dropout on.
          dropout_rates: ``(encoder, bottleneck, decoder)``; only ``decoder`` (after the
            ASPP projection) is used (config validation refuses the others).
        """
        b, h, w, _ = x.shape
        act = ACTIVATIONS[self.activation]
        kw = dict(initializer=self.initializer, dtype=self.dtype)
        f = ResNet18(self.output_stride, self.activation, self.initializer, self.dtype,
                     name="backbone")(x.astype(self.dtype), train)
        rates = tuple(self.aspp_rates) or PAPER_RATES[self.output_stride]

        def branch(y, kernel, rate, name):
            y = conv(self.aspp_width, kernel, 1, rate, name=f"{name}_conv", **kw)(y)
            return act(batch_norm(train, self.dtype, f"{name}_bn")(y))

        parts = [branch(f, 1, 1, "aspp0")]
        parts += [branch(f, 3, r, f"aspp{i}") for i, r in enumerate(rates, 1)]
        pooled = branch(f.mean(axis=(1, 2), keepdims=True), 1, 1, "aspp_pool")
        parts.append(jnp.broadcast_to(pooled, (*f.shape[:3], self.aspp_width)))
        y = branch(jnp.concatenate(parts, -1), 1, 1, "aspp_project")
        y = stage_dropout(self, y, dropout_rates[2], train)
        outputs = self.num_outputs
        logits = nn.Conv(outputs, (1, 1), kernel_init=INITS[self.initializer], dtype=self.dtype,
                         name="classifier")(y)
        logits = jax.image.resize(logits, (b, h, w, outputs), "bilinear")
        return logits.astype(jnp.float32)
