"""The U-Net: options, parameter count independent of input size, traced dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import configs
from jaxseg.errors import JaxsegError
from jaxseg.models import UNet, create_model


def count(variables):
    return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("kw", [
    {}, {"depth": 4, "base_width": 8}, {"norm": "instance", "norm_position": "before"},
    {"norm": "none", "activation": "leaky_relu"}, {"upsample": "bilinear", "initializer": "xavier"},
    {"head": "sigmoid", "num_classes": 2}])
def test_options_and_param_count_independent_of_size(kw):
    model = UNet(**{"base_width": 4, **kw})
    # Level-0 compilation: random initialisers compile slowly on XLA CPU (docs/benchmarks.md).
    init = jax.jit(model.init, compiler_options={"xla_backend_optimization_level": 0})
    small = init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
    large = init(jax.random.key(0), jnp.zeros((1, 96, 64, 1)))
    assert count(small) == count(large)
    out = model.apply(large, jnp.zeros((2, 96, 64, 1)))
    classes = 1 if kw.get("head") == "sigmoid" else kw.get("num_classes", 4)
    assert out.shape == (2, 96, 64, classes)


def test_reference_parameter_count():
    # Base 16, depth 3, 4 classes, batch norm: the cmr96 prototype's size (docs/design.md §6).
    shapes = jax.eval_shape(UNet().init, jax.random.key(0), jnp.zeros((1, 96, 96, 1)))
    assert count(shapes) == 483204


def test_transpose_upsampling_equals_conv_transpose():
    # The 1x1-conv + depth-to-space decoder is exactly a 2x2 stride-2 transposed conv.
    import flax.linen as nn

    from jaxseg.models.unet import Upsample

    x = jax.random.normal(jax.random.key(0), (1, 3, 3, 2))
    up = Upsample(5)
    v = up.init(jax.random.key(1), x)
    kernel, bias = v["params"]["Dense_0"]["kernel"], v["params"]["bias"]
    # Dense kernel (C_in, 2*2*C_out) ordered (dy, dx, c_out) -> ConvTranspose (2, 2, C_in, C_out).
    # (lax.conv_transpose without transpose_kernel applies the kernel spatially flipped.)
    ct_kernel = kernel.reshape(2, 2, 2, 5).transpose(1, 2, 0, 3)[::-1, ::-1]
    ref = nn.ConvTranspose(5, (2, 2), strides=(2, 2), padding="VALID").apply(
        {"params": {"kernel": ct_kernel, "bias": bias}}, x)
    np.testing.assert_allclose(up.apply(v, x), ref, atol=1e-5)


def test_traced_dropout_rates_per_replica():
    model = UNet(base_width=4, depth=2)
    v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 1))

    def run(rate):
        return model.apply(v, x, train=True, dropout_rates=(rate, rate, rate),
                           rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])[0]

    outs = jax.jit(jax.vmap(run), compiler_options={"xla_backend_optimization_level": 0})(
        jnp.array([0.0, 0.5]))
    ref = model.apply(v, x, train=True, mutable=["batch_stats"],
                      rngs={"dropout": jax.random.key(3)})[0]
    np.testing.assert_allclose(outs[0], ref, atol=1e-4)  # rate 0 is no dropout (jit vs eager)
    assert not np.allclose(outs[1], ref, atol=1e-3)


def test_config_errors():
    cfg = configs.default().model
    cfg.norm = "group"
    with pytest.raises(JaxsegError, match="unknown model.norm 'group'"):
        create_model(cfg, 4)
    cfg = configs.default().model
    cfg.head = "sigmoid"
    with pytest.raises(JaxsegError, match="num_classes=2"):
        create_model(cfg, 4)
    with pytest.raises(JaxsegError, match="not divisible"):
        UNet(depth=3).init(jax.random.key(0), jnp.zeros((1, 20, 20, 1)))


def test_bfloat16_compute_keeps_float32_weights_and_logits():
    cfg = configs.default().model
    cfg.base_width, cfg.depth = 4, 2
    f32 = create_model(cfg, 4)
    cfg.dtype = "bfloat16"
    bf16 = create_model(cfg, 4)
    assert (f32.dtype, bf16.dtype) == (jnp.float32, jnp.bfloat16)
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
    variables = jax.jit(f32.init, compiler_options={"xla_backend_optimization_level": 0})(
        jax.random.key(0), x)
    # The same float32 weights drive both; the bfloat16 logits are float32 and close.
    assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    ref, low = f32.apply(variables, x), bf16.apply(variables, x)
    assert low.dtype == jnp.float32
    scale = float(jnp.abs(ref).max())
    assert 0 < float(jnp.abs(low - ref).max()) < 0.05 * scale
    # Its gradients (the master weights' updates) are float32 too.
    grads = jax.grad(lambda v: bf16.apply(v, x).sum())(variables)
    assert {g.dtype for g in jax.tree.leaves(grads["params"])} == {jnp.dtype(jnp.float32)}
    cfg.dtype = "float16"
    with pytest.raises(JaxsegError, match="unknown model.dtype 'float16'"):
        create_model(cfg, 4)
