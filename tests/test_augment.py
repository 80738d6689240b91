"""Random affine augmentation: exact whole-pixel shifts and quarter turns, SciPy's bilinear
warp for general angles, ranges of the random draw."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from jaxunsup import augment


def test_zero_transform_is_the_identity(key):
    x = np.asarray(jax.random.uniform(key, (3, 9, 9, 2)))
    y = augment.affine(jnp.asarray(x), jnp.zeros(3), jnp.zeros((3, 2)))
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_whole_pixel_shift_moves_the_image_and_fills_zeros(key):
    x = np.asarray(jax.random.uniform(key, (1, 7, 8, 1)))
    y = np.asarray(augment.affine(jnp.asarray(x), jnp.zeros(1), jnp.asarray([[2.0, -3.0]])))
    expected = np.zeros_like(x)
    expected[0, 2:, :-3] = x[0, :-2, 3:]  # down 2 rows, left 3 columns
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_quarter_turn_is_rot90_counter_clockwise(key):
    x = np.asarray(jax.random.uniform(key, (1, 9, 9, 3)))
    y = augment.affine(jnp.asarray(x), jnp.asarray([np.pi / 2]), jnp.zeros((1, 2)))
    np.testing.assert_allclose(y[0], np.rot90(x[0], 1, axes=(0, 1)), atol=1e-5)


def test_general_angle_and_shift_match_scipy_bilinear_warp(key):
    x = np.asarray(jax.random.uniform(key, (1, 28, 28, 1)))
    angle, shift = 0.3, np.array([1.7, -2.4])
    y = np.asarray(augment.affine(jnp.asarray(x), jnp.asarray([angle]), jnp.asarray([shift])))
    # scipy: output o reads input at M @ o + offset; the inverse of "turn about c, then shift"
    c = np.array([13.5, 13.5])
    m = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    offset = c - m @ (c + shift)
    # JAX's mode "constant" interpolates towards cval across the edge: SciPy's "grid-constant"
    ref = scipy.ndimage.affine_transform(
        x[0, :, :, 0], m, offset=offset, order=1, mode="grid-constant"
    )
    np.testing.assert_allclose(y[0, :, :, 0], ref, atol=1e-5)


def test_random_affine_draws_within_range(key):
    x = jnp.zeros((64, 28, 28, 1)).at[:, 13:15, 13:15].set(1.0)  # a centred 2×2 square
    y = np.asarray(augment.random_affine(x, key, rotation=10.0, shift=0.1))
    assert y.shape == x.shape
    rows = np.arange(28)[None, :, None]
    cy = (y[..., 0].sum(2, keepdims=True) * rows).sum((1, 2)) / y[..., 0].sum((1, 2))
    offsets = cy - 13.5
    assert np.all(np.abs(offsets) <= 2.8 + 1e-3)  # ±10% of 28 pixels
    assert offsets.std() > 0.8  # images are shifted independently
    same = augment.random_affine(x, key, rotation=10.0, shift=0.1)
    np.testing.assert_array_equal(same, y)  # a function of the key
    assert y.sum((1, 2, 3)) == pytest.approx(np.full(64, 4.0), rel=1e-2)  # nothing leaves the frame
