"""UNet 3+ (Huang et al., ICASSP 2020): full-scale skip connections and deep supervision.

The encoder is the U-Net's (:class:`jaxseg.models.unet.ConvBlock` of two convolutions per
level, ``base_width * 2**level`` channels, 2x max pooling). Each decoder stage ``i`` is fed
by *every* scale: the shallower encoder stages max-pooled down to its resolution, the
encoder stage of its own resolution, and every deeper decoder stage (the bottleneck being
the deepest) bilinearly up-sampled to it; each of those ``depth + 1`` inputs passes one
3x3 convolution to ``cat_width`` channels (the paper's 64) with norm and activation, they
are concatenated, and one more 3x3 convolution to ``(depth + 1) * cat_width`` channels
(the paper's 320) fuses them. The head is a 3x3 convolution on the shallowest decoder stage.

Deep supervision (the paper's): every deeper decoder stage and the bottleneck also get a
3x3 convolution to logits, bilinearly up-sampled to the full size; in training the model
then returns those side logits too and the loss is taken on each (see
:func:`jaxseg.engine.steps.train_step`). Evaluation, prediction and export use the main
output only. Not implemented: the paper's classification-guided module (an extra
organ-present classifier for images without foreground, trained with its own BCE).

Parameter counts (batch norm after the activation; tests/test_models.py checks them):

- ``depth=3, base_width=16, cat_width=16``, 1-channel input, 4 classes
  (experiments/architectures.py): 516,532 without deep supervision, 525,760 with (the
  U-Net of the same encoder: 483,204);
- the paper's widths (``depth=4, base_width=64, cat_width=64``: 64...1024, 320 per decoder
  stage), 3-channel input, one sigmoid logit, no deep supervision: 26,971,777, the paper's
  26.97M (its Table 1); with 1 channel, 4 classes and deep supervision: 27,050,708.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.unet import (
    INITS,
    ConvBlock,
    SegmentationNet,
    check_divisible,
    max_pool,
    stage_dropout,
)


def upsample_bilinear(x: jax.Array, factor: int) -> jax.Array:
    """Bilinear up-sampling of ``(B, H, W, C)`` features by an integer ``factor``."""
    if factor == 1:
        return x
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, h * factor, w * factor, c), "bilinear")


class UNet3Plus(SegmentationNet):
    """UNet 3+ with ``depth`` down-samplings.

    Attributes (besides :class:`~jaxseg.models.unet.SegmentationNet`'s):
      depth: number of 2x down-samplings (the paper's 4: five scales).
      base_width: channels of the first encoder level (``base_width * 2**level`` below;
        the paper's 64).
      cat_width: channels each scale contributes to a decoder stage (the paper's 64).
      deep_supervision: side outputs from every deeper decoder stage and the bottleneck.
      norm: ``batch`` | ``instance`` | ``none``.
      norm_position: ``before`` | ``after`` the activation.
    """

    depth: int = 4
    base_width: int = 64
    cat_width: int = 64
    deep_supervision: bool = True
    norm: str = "batch"
    norm_position: str = "after"

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rates: Sequence = (None, None, None)):
        """Returns the logits, and in training with deep supervision also the side logits.

        Args:
          x: images ``(B, H, W, C)``; H and W divisible by ``2**depth``.
          train: batch statistics and dropout on.
          dropout_rates: ``(encoder, bottleneck, decoder)`` rates as in the U-Net: after
            each encoder pooling, after the bottleneck, after each decoder stage.

        Returns:
          Logits ``(B, H, W, K)`` (K = 1 for the sigmoid head); in training with
          ``deep_supervision``, ``(logits, sides)`` with ``sides`` a tuple of ``depth``
          full-size logits, shallowest stage first.
        """
        check_divisible(x, self.depth)
        block = dict(norm=self.norm, norm_position=self.norm_position,
                     activation=self.activation, initializer=self.initializer, dtype=self.dtype)
        enc_rate, mid_rate, dec_rate = dropout_rates
        x = x.astype(self.dtype)
        encoder = []
        for level in range(self.depth + 1):
            if level:
                x = stage_dropout(self, max_pool(x, 2), enc_rate, train)
            x = ConvBlock(self.base_width * 2**level, **block)(x, train)
            encoder.append(x)
        decoder = {self.depth: stage_dropout(self, x, mid_rate, train)}

        def branch(y, name):  # one scale's contribution to a decoder stage
            return ConvBlock(self.cat_width, convs=1, name=name, **block)(y, train)

        for i in reversed(range(self.depth)):
            parts = [branch(max_pool(encoder[j], 2 ** (i - j)), f"dec{i}_from_enc{j}")
                     for j in range(i)]
            parts.append(branch(encoder[i], f"dec{i}_from_enc{i}"))
            parts += [branch(upsample_bilinear(decoder[k], 2 ** (k - i)), f"dec{i}_from_dec{k}")
                      for k in range(i + 1, self.depth + 1)]
            y = ConvBlock((self.depth + 1) * self.cat_width, convs=1, name=f"dec{i}_fuse",
                          **block)(jnp.concatenate(parts, -1), train)
            decoder[i] = stage_dropout(self, y, dec_rate, train)

        def head(y, name):
            return nn.Conv(self.num_outputs, (3, 3), padding="SAME",
                           kernel_init=INITS[self.initializer], dtype=self.dtype, name=name)(y)

        logits = head(decoder[0], "head").astype(jnp.float32)
        # The side heads exist in the parameters whenever deep supervision is on (init runs
        # in eval mode); evaluation does not compute them.
        if not self.deep_supervision or not (train or self.is_initializing()):
            return logits
        sides = tuple(upsample_bilinear(head(decoder[k], f"side{k}"), 2**k).astype(jnp.float32)
                      for k in range(1, self.depth + 1))
        return (logits, sides) if train else logits
