"""On-device augmentation drawn from per-replica keys: flips, rotation, translation, crop.

Every transform is a pure function of a PRNG key and the batch, so it runs inside
the jitted train step (no host work per batch) and each replica draws its own
augmentation from its own key. Rotation and translation resample the image
bilinearly and the mask by nearest neighbour in one affine map, so a sample is
interpolated once however many transforms apply. Which transforms exist is
static (part of the compiled program); their magnitudes come from the config.
"""

import jax
import jax.numpy as jnp
import ml_collections


def is_enabled(cfg: ml_collections.ConfigDict) -> bool:
    """Whether an ``augment`` config changes anything."""
    return bool(cfg.hflip or cfg.vflip or cfg.rotation or cfg.translation or cfg.crop)


def _affine_sample(key, image, label, cfg):
    """Flips, rotates and translates one ``(H, W, C)`` image and its ``(H, W)`` label."""
    h, w = label.shape
    k_rot, k_tr, k_h, k_v = jax.random.split(key, 4)
    angle = jnp.deg2rad(cfg.rotation) * jax.random.uniform(k_rot, (), minval=-1.0, maxval=1.0)
    shift = cfg.translation * jax.random.uniform(k_tr, (2,), minval=-1.0, maxval=1.0)
    # Flips are a sign on each output axis, folded into the same affine map.
    fy = jnp.where(cfg.vflip & jax.random.bernoulli(k_v), -1.0, 1.0)
    fx = jnp.where(cfg.hflip & jax.random.bernoulli(k_h), -1.0, 1.0)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing="ij")
    # Output pixel p comes from input pixel R^-1 (F (p - c) - t) + c.
    dy, dx = fy * (yy - cy) - shift[0], fx * (xx - cx) - shift[1]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    sy = cos * dy + sin * dx + cy
    sx = -sin * dy + cos * dx + cx
    coords = [sy, sx]
    image = jnp.stack([
        jax.scipy.ndimage.map_coordinates(image[..., ch], coords, order=1, mode="constant")
        for ch in range(image.shape[-1])], axis=-1)
    # Nearest neighbour keeps labels integral; outside the image is background.
    label = jax.scipy.ndimage.map_coordinates(label, coords, order=0, mode="constant", cval=0)
    return image, label


def _flip_sample(key, image, label, cfg):
    """Flips only: exact index reversal, no resampling."""
    k_h, k_v = jax.random.split(key)
    if cfg.hflip:
        do = jax.random.bernoulli(k_h)
        image = jnp.where(do, image[:, ::-1], image)
        label = jnp.where(do, label[:, ::-1], label)
    if cfg.vflip:
        do = jax.random.bernoulli(k_v)
        image = jnp.where(do, image[::-1], image)
        label = jnp.where(do, label[::-1], label)
    return image, label


def _crop_sample(key, image, label, size):
    h, w = label.shape
    oy = jax.random.randint(key, (), 0, h - size + 1)
    ox = jax.random.randint(jax.random.fold_in(key, 1), (), 0, w - size + 1)
    image = jax.lax.dynamic_slice(image, (oy, ox, 0), (size, size, image.shape[-1]))
    label = jax.lax.dynamic_slice(label, (oy, ox), (size, size))
    return image, label


def augment_batch(key: jax.Array, images: jax.Array, labels: jax.Array,
                  cfg: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
    """Augments a batch, each sample with its own key derived from ``key``.

    Args:
      key: the replica's key for this step.
      images: ``(B, H, W, C)`` float images.
      labels: ``(B, H, W)`` int labels.
      cfg: the ``augment`` config (static).

    Returns:
      The augmented ``(images, labels)``; with ``cfg.crop`` they are ``crop x crop``.
    """
    if not is_enabled(cfg):
        return images, labels
    keys = jax.random.split(key, images.shape[0])

    def one(k, image, label):
        k_geo, k_crop = jax.random.split(k)
        if cfg.rotation or cfg.translation:
            image, label = _affine_sample(k_geo, image, label, cfg)
        elif cfg.hflip or cfg.vflip:
            image, label = _flip_sample(k_geo, image, label, cfg)
        if cfg.crop:
            image, label = _crop_sample(k_crop, image, label, int(cfg.crop))
        return image, label

    return jax.vmap(one)(keys, images, labels)
