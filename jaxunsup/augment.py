"""Random affine augmentation of image batches, jit-friendly (bilinear, zero outside).

Deep clustering with data augmentation (Guo et al. 2018, "Deep Embedded Clustering with Data
Augmentation", DEC-DA) trains on digits rotated by up to ±10° and shifted by up to ±10% of the
side, the setting of `random_affine`'s defaults.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def affine(images: jax.Array, angles: jax.Array, shifts: jax.Array) -> jax.Array:
    """Each image rotated by its angle (radians, counter-clockwise as displayed, about the
    image centre) and then shifted by its (rows, cols) pixels; bilinear, 0 outside.

    Args:
        images: [B, H, W, C]. angles: [B]. shifts: [B, 2].

    Returns:
        [B, H, W, C], the same dtype; with angle 0 and integer shifts, exactly the image moved
        by whole pixels with zeros shifted in.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}; add a C axis")
    _, h, w, _ = images.shape
    rows, cols = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    cy, cx = (h - 1) / 2, (w - 1) / 2

    def one(img, angle, shift):  # img [H, W, C]
        # output pixel (r, c) reads the input at (r, c) - centre - shift turned back by the angle
        # (rows grow downwards, so a counter-clockwise turn on screen is clockwise in (r, c))
        y, x = rows - cy - shift[0], cols - cx - shift[1]
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        src_r = cos * y + sin * x + cy
        src_c = -sin * y + cos * x + cx

        def channel(ch):
            return jax.scipy.ndimage.map_coordinates(ch, [src_r, src_c], order=1, cval=0.0)

        return jax.vmap(channel, in_axes=2, out_axes=2)(img)

    return jax.vmap(one)(images, angles.astype(jnp.float32), shifts.astype(jnp.float32)).astype(
        images.dtype
    )


def random_affine(
    images: jax.Array, key: jax.Array, rotation: float = 10.0, shift: float = 0.1
) -> jax.Array:
    """`affine` with angles ~ U(−rotation, rotation) degrees and shifts ~ U(−shift, shift)·side
    pixels per axis, independently per image: [B, H, W, C] → [B, H, W, C]."""
    if images.ndim != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}; add a C axis")
    b, h, w, _ = images.shape
    k_angle, k_shift = jax.random.split(key)
    angles = jax.random.uniform(k_angle, (b,), minval=-rotation, maxval=rotation) * jnp.pi / 180
    scale = jnp.asarray([[h, w]], jnp.float32) * shift  # [1, 2]
    shifts = jax.random.uniform(k_shift, (b, 2), minval=-1.0, maxval=1.0) * scale
    return affine(images, angles, shifts)
