"""A configurable 2-D U-Net (Ronneberger et al., 2015) in Flax Linen.

Every option the source studies compared is a field: depth, base width, norm
(batch / instance / none) before or after the activation, ReLU or LeakyReLU,
dropout per stage, transposed-conv or bilinear decoders, softmax or sigmoid
heads, He or Xavier init. Dropout rates are *call arguments*, not fields, so
they can be traced per-replica values (Flax's ``nn.Dropout`` checks
``rate == 0`` in Python and so cannot take one; docs/design.md §6).

Linen rather than NNX: the training engine stacks replicas as plain pytrees
(params, batch statistics) with a leading replica axis and runs pure functions
over them; Linen's ``init``/``apply`` are exactly that.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.errors import JaxsegError

NORMS = ("batch", "instance", "none")
ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.01)}
UPSAMPLES = ("transpose", "bilinear")
HEADS = ("softmax", "sigmoid")
INITS = {"he": nn.initializers.he_normal(), "xavier": nn.initializers.xavier_uniform()}
# Computation dtypes (``model.dtype``); parameters, optimizer state, logits and losses stay
# float32 whatever the choice (mixed precision with float32 master weights).
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def dropout(x: jax.Array, rate: jax.Array, rng: jax.Array) -> jax.Array:
    """Inverted dropout whose rate may be a traced scalar.

    Args:
      x: activations.
      rate: the drop probability in [0, 1); a rate of 0 returns ``x`` exactly.
      rng: the PRNG key.

    Returns:
      ``x`` with each element zeroed with probability ``rate`` and the rest scaled
      by ``1 / (1 - rate)``.
    """
    keep = 1.0 - rate
    mask = jax.random.bernoulli(rng, keep, x.shape)
    return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


def stage_dropout(module: nn.Module, x: jax.Array, rate, train: bool) -> jax.Array:
    """One stage's dropout inside ``module``: none when not training or when ``rate`` is None.

    None means no replica of the cohort uses dropout at this stage, so no random op is
    compiled (random ops are costly to compile on XLA CPU).
    """
    if not train or rate is None:
        return x
    return dropout(x, rate, module.make_rng("dropout"))


def check_divisible(x: jax.Array, depth: int) -> None:
    """Refuses images whose sides are not divisible by ``2**depth`` (naming ``model.depth``)."""
    if x.shape[1] % 2**depth or x.shape[2] % 2**depth:
        raise JaxsegError(f"image size {x.shape[1]}x{x.shape[2]} is not divisible by "
                          f"2**depth = {2**depth} (model.depth={depth})")


def max_pool(x: jax.Array, factor: int = 2) -> jax.Array:
    """``factor`` x ``factor`` max pooling with stride ``factor`` of ``(B, H, W, C)`` features.

    Written as a reshape and a max over the two window axes rather than ``nn.max_pool``:
    the gradient of ``reduce_window`` max is lowered on XLA CPU through index-tracking
    reductions over iotas; the gradient of a plain ``max`` is an elementwise mask (6x
    faster, docs/benchmarks.md). Same values; a tie inside a window
    (measure zero for real-valued activations) shares the gradient instead of picking one.
    H and W must be divisible by ``factor``.
    """
    b, h, w, c = x.shape
    with jax.named_scope("max_pool2"):  # names its ops in profiles (benchmarks/step_profile.py)
        return x.reshape(b, h // factor, factor, w // factor, factor, c).max(axis=(2, 4))


def max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2 (:func:`max_pool` with ``factor=2``)."""
    return max_pool(x, 2)


class ConvBlock(nn.Module):
    """``convs`` 3x3 convolutions (two in a U-Net block), each with norm and activation.

    Attributes:
      features: output channels.
      convs: how many convolutions.
      norm: ``batch`` | ``instance`` | ``none``.
      norm_position: ``before`` or ``after`` the activation.
      activation: a key of ``ACTIVATIONS``.
      initializer: a key of ``INITS``.
      dtype: the computation dtype (params stay float32).
    """

    features: int
    norm: str = "batch"
    norm_position: str = "after"
    activation: str = "relu"
    initializer: str = "he"
    dtype: jnp.dtype = jnp.float32
    convs: int = 2

    @nn.compact
    def __call__(self, x, train: bool):
        """Applies the block to ``(B, H, W, C)`` features."""
        act = ACTIVATIONS[self.activation]
        # A bias right before a norm is cancelled by the norm's mean; skip it then.
        use_bias = self.norm == "none" or self.norm_position == "after"
        for _ in range(self.convs):
            x = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=use_bias,
                        kernel_init=INITS[self.initializer], dtype=self.dtype)(x)
            if self.norm_position == "before":
                x = act(self._norm(x, train))
            else:
                x = self._norm(act(x), train)
        return x

    def _norm(self, x, train):
        if self.norm == "batch":
            return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                dtype=self.dtype)(x)
        if self.norm == "instance":
            return nn.InstanceNorm(dtype=self.dtype)(x)
        return x


class Upsample(nn.Module):
    """2x up-sampling to ``features`` channels.

    ``transpose`` is a 2x2 stride-2 transposed convolution. Its windows do not
    overlap, so it is computed exactly as a 1x1 convolution to ``4 * features``
    channels followed by depth-to-space: a plain matmul, which XLA CPU runs far
    faster than its ``ConvTranspose`` lowering (docs/design.md §6). ``bilinear`` resizes and
    then mixes channels with a 1x1 convolution, as in the source studies.

    Attributes:
      features: output channels.
      mode: ``transpose`` | ``bilinear``.
      initializer: a key of ``INITS``.
      dtype: the computation dtype.
    """

    features: int
    mode: str = "transpose"
    initializer: str = "he"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        """Returns ``(B, 2H, 2W, features)``."""
        b, h, w, _ = x.shape
        if self.mode == "bilinear":
            x = jax.image.resize(x, (b, 2 * h, 2 * w, x.shape[-1]), "bilinear")
            return nn.Conv(self.features, (1, 1), kernel_init=INITS[self.initializer],
                           dtype=self.dtype)(x)
        y = nn.Dense(4 * self.features, use_bias=False, kernel_init=INITS[self.initializer],
                     dtype=self.dtype)(x)
        y = y.reshape(b, h, w, 2, 2, self.features)
        y = y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, self.features)
        # One bias per output channel, as a transposed convolution has.
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return y + bias.astype(y.dtype)


class SegmentationNet(nn.Module):
    """The attributes every network shares (``model.activation``, ``head``, ``init``, ``dtype``).

    Attributes:
      num_classes: classes including background; the sigmoid head needs 2.
      activation: ``relu`` | ``leaky_relu``.
      head: ``softmax`` (``num_classes`` logits) | ``sigmoid`` (one logit).
      initializer: ``he`` | ``xavier``.
      dtype: computation dtype (e.g. bfloat16); params and logits stay float32.
    """

    num_classes: int = 4
    activation: str = "relu"
    head: str = "softmax"
    initializer: str = "he"
    dtype: jnp.dtype = jnp.float32

    @property
    def num_outputs(self) -> int:
        """Logits per pixel: one for the sigmoid head, ``num_classes`` for softmax."""
        return 1 if self.head == "sigmoid" else self.num_classes


class UNet(SegmentationNet):
    """U-Net with ``depth`` down-samplings and ``base_width * 2**level`` channels.

    Attributes (besides :class:`SegmentationNet`'s):
      depth: number of 2x max-pool down-samplings (3 and 4 in the studies).
      base_width: channels of the first level (16...64 in the studies).
      norm: ``batch`` | ``instance`` | ``none``.
      norm_position: ``before`` | ``after`` the activation.
      upsample: ``transpose`` | ``bilinear``.
    """

    depth: int = 3
    base_width: int = 16
    norm: str = "batch"
    norm_position: str = "after"
    upsample: str = "transpose"

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rates: Sequence = (None, None, None)):
        """Returns logits ``(B, H, W, num_classes)`` (softmax) or ``(B, H, W, 1)`` (sigmoid).

        Args:
          x: images ``(B, H, W, C)``; H and W divisible by ``2**depth``.
          train: batch statistics and dropout on.
          dropout_rates: ``(encoder, bottleneck, decoder)`` rates, scalars or traced;
            ``None`` leaves that stage without dropout.
        """
        check_divisible(x, self.depth)
        block = dict(norm=self.norm, norm_position=self.norm_position,
                     activation=self.activation, initializer=self.initializer, dtype=self.dtype)
        enc_rate, mid_rate, dec_rate = dropout_rates

        def drop(y, rate):
            return stage_dropout(self, y, rate, train)

        x = x.astype(self.dtype)
        skips = []
        for level in range(self.depth):
            x = ConvBlock(self.base_width * 2**level, **block)(x, train)
            skips.append(x)
            x = drop(max_pool2(x), enc_rate)
        x = drop(ConvBlock(self.base_width * 2**self.depth, **block)(x, train), mid_rate)
        for level in reversed(range(self.depth)):
            width = self.base_width * 2**level
            x = Upsample(width, self.upsample, self.initializer, self.dtype)(x)
            x = ConvBlock(width, **block)(jnp.concatenate([x, skips[level]], -1), train)
            x = drop(x, dec_rate)
        logits = nn.Conv(self.num_outputs, (1, 1), kernel_init=INITS[self.initializer],
                         dtype=self.dtype)(x)
        return logits.astype(jnp.float32)
