"""patch_conv: the loop-friendly convolutions (`layers`' "matmul" impl) equal XLA's (and so
torch's, see test_layers and parity/)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import layers, patch_conv

CONV_CASES = [  # (H, W, C, O, k, stride, padding)
    (9, 8, 1, 16, 3, 2, ((1, 0), (2, 1))),  # asymmetric explicit padding
    (12, 11, 10, 1, 4, 1, "SAME"),  # even kernel: Keras/XLA pad the high side more
    (12, 10, 1, 10, 5, 1, "SAME"),  # one channel, 25 taps: the banded product (Keras's conv)
    (11, 9, 1, 3, 4, 2, ((1, 2), (0, 1))),  # banded with strides and asymmetric padding
]
TRANSPOSE_CASES = [  # (H, W, I, O, k, stride, padding)
    (6, 5, 8, 4, 3, 2, "VALID"),
    (13, 13, 16, 1, 3, 2, ((2, 3), (2, 3))),  # torch's output_padding=1
    (7, 7, 1, 10, 4, 2, "SAME"),  # Keras's Conv2DTranspose(10, 4, strides=2, "same"): banded
    (6, 7, 1, 3, 4, 2, ((2, 3), (1, 4))),  # banded by row phases, asymmetric padding
    (4, 4, 1, 3, 4, 5, "VALID"),  # banded, stride > kernel: phases without taps
    (7, 7, 8, 8, 3, 2, ((2, 2), (2, 2))),  # as the VAE's ConvTranspose2d(64, 64, 3, 2): phases
    (5, 4, 6, 3, 2, 3, "VALID"),  # stride > kernel: an output phase without taps
]


def _value_and_grads(module, params, x):
    @jax.jit
    def f(params, x):
        out = module.apply(params, x)
        return out, jax.grad(lambda p, x: jnp.sum(jnp.sin(module.apply(p, x))), (0, 1))(params, x)

    return f(params, x)


def _params(key, kernel_shape, out_channels):
    k1, k2 = jax.random.split(key)
    bias = jax.random.normal(k2, (out_channels,))
    return {"params": {"kernel": jax.random.normal(k1, kernel_shape), "bias": bias}}


def _check(ours, ref, params, x):
    for a, b in zip(
        jax.tree.leaves(_value_and_grads(ours, params, x)),
        jax.tree.leaves(_value_and_grads(ref, params, x)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["matmul", "xla"])
@pytest.mark.parametrize("h, w, c, o, k, s, pad", CONV_CASES)
def test_conv_matches_flax_conv_and_its_gradients(key, impl, h, w, c, o, k, s, pad):
    x = jax.random.normal(key, (2, h, w, c))
    ref = nn.Conv(o, (k, k), strides=(s, s), padding=pad)
    params = _params(key, (k, k, c, o), o)
    _check(layers.Conv(o, (k, k), (s, s), pad, impl=impl), ref, params, x)


@pytest.mark.parametrize("impl", ["matmul", "xla"])
@pytest.mark.parametrize("h, w, i, o, k, s, pad", TRANSPOSE_CASES)
def test_conv_transpose_matches_flax_and_its_gradients(key, impl, h, w, i, o, k, s, pad):
    x = jax.random.normal(key, (2, h, w, i))
    ref = nn.ConvTranspose(o, (k, k), strides=(s, s), padding=pad, transpose_kernel=True)
    params = _params(key, (k, k, o, i), o)  # [kh, kw, out, in]
    _check(layers.ConvTranspose(o, (k, k), (s, s), pad, impl=impl), ref, params, x)


TORCH_CASES = [  # (transposed, in, out, k, stride, padding, output_padding, input size)
    (False, 16, 8, 3, 2, 1, 0, 13),  # im2col (the VAE's encoder, DCGAN's discriminator)
    (False, 3, 2, 4, 1, 0, 0, 9),  # more inputs than outputs: shifted taps (the VAE's last)
    (True, 16, 1, 3, 2, 0, 1, 13),  # the conv AE's last layer, 13 → 28: by phases
    (True, 3, 4, 3, 2, 0, 0, 7),  # the VAE's ConvTranspose2d(in, out, 3, 2): by phases
    (True, 3, 4, 2, 3, 0, 0, 4),  # stride > kernel: an output phase without taps
    (True, 1, 8, 3, 1, 1, 0, 6),  # few inputs, stride 1: im2col of the padded input
]


@pytest.mark.parametrize("transposed, i, o, k, s, p, op, size", TORCH_CASES)
def test_torch_factories_agree_across_impls(key, transposed, i, o, k, s, p, op, size):
    """`layers.conv` / `layers.conv_transpose` with impl="matmul" and impl="xla": the same
    names, init draws and function (torch-tested, test_layers; torch itself in parity/)."""
    x = jax.random.normal(key, (2, size, size, i))
    if transposed:
        ours = layers.conv_transpose(i, o, k, s, p, op, impl="matmul")
        ref = layers.conv_transpose(i, o, k, s, p, op, impl="xla")
        out_size = (size - 1) * s - 2 * p + k + op  # torch's ConvTranspose2d
    else:
        ours = layers.conv(i, o, k, s, p, impl="matmul")
        ref = layers.conv(i, o, k, s, p, impl="xla")
        out_size = (size + 2 * p - k) // s + 1
    p_ours, p_ref = jax.jit(ours.init)(key, x), jax.jit(ref.init)(key, x)
    assert jax.tree.structure(p_ours) == jax.tree.structure(p_ref)
    for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_ref), strict=True):
        np.testing.assert_array_equal(a, b)
    y = jax.jit(ours.apply)(p_ref, x)
    np.testing.assert_allclose(y, jax.jit(ref.apply)(p_ref, x), atol=1e-5)
    assert y.shape == (2, out_size, out_size, o)


def test_max_pool_matches_flax(key):
    x = jax.random.normal(key, (2, 12, 11, 3))

    def ours(x):
        return patch_conv.max_pool(x, (5, 4))

    def ref(x):
        return nn.max_pool(x, (5, 4), strides=(1, 1), padding="VALID")

    np.testing.assert_array_equal(ours(x), ref(x))
    g = jax.jit(jax.grad(lambda x: jnp.sum(ours(x) ** 2)))(x)
    g_ref = jax.jit(jax.grad(lambda x: jnp.sum(ref(x) ** 2)))(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-6)  # no ties in normal draws
    # ties (ReLU zeros): one position per window gets the gradient, as in XLA and torch
    z = jnp.zeros((1, 6, 6, 1))
    g = jax.grad(lambda x: jnp.sum(ours(x)))(z)
    assert float(g.sum()) == 6.0 and int(jnp.count_nonzero(g)) <= 6  # 2 × 3 windows


def _np_max_1d(x, k, axis, g):
    """NumPy: max over windows of k along `axis` and the input gradient that routes each
    window's g to its first maximum (written as a loop over windows)."""
    x = np.moveaxis(x, axis, -1)
    lead = x.shape[:-1]
    n = x.shape[-1] - k + 1
    out = np.empty((*lead, n), x.dtype)
    grad = np.zeros_like(x).reshape(-1, x.shape[-1])
    g = None if g is None else np.moveaxis(g, axis, -1).reshape(-1, n)
    rows = np.arange(grad.shape[0])
    for j in range(n):
        window = x[..., j : j + k]
        out[..., j] = window.max(-1)
        if g is not None:
            first = window.argmax(-1).reshape(-1)  # NumPy's argmax is the first maximum
            np.add.at(grad, (rows, j + first), g[:, j])
    return np.moveaxis(out, -1, axis), np.moveaxis(grad.reshape(x.shape), -1, axis)


def _np_max_pool_grad(x, window, g):
    rows, _ = _np_max_1d(x, window[0], 1, None)
    _, g_rows = _np_max_1d(rows, window[1], 2, g)
    return _np_max_1d(x, window[0], 1, g_rows)[1]


def test_max_pool_gradient_with_ties_matches_numpy_first_max():
    """Many ties (three values only): the gradient of each separable pass goes to the first
    maximum of each window, and windows that share it add up (a NumPy loop as reference)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, 9, 8, 3)).astype(np.float32)
    g = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    window = (4, 3)
    _, vjp = jax.vjp(lambda a: patch_conv.max_pool(a, window), jnp.asarray(x))
    np.testing.assert_allclose(vjp(jnp.asarray(g))[0], _np_max_pool_grad(x, window, g), atol=1e-6)


def test_channel_mismatch_and_bad_padding_raise(key):
    with pytest.raises(ValueError, match="channels"):
        patch_conv.conv2d(jnp.zeros((1, 8, 8, 3)), jnp.zeros((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="channels"):
        patch_conv.conv_transpose2d(jnp.zeros((1, 8, 8, 3)), jnp.zeros((3, 3, 4, 2)))
    with pytest.raises(ValueError, match="output_padding"):
        layers.conv_transpose(4, 4, 3, stride=1, output_padding=1)


def test_max_pool_nan_wins_its_windows_as_in_xla():
    """A NaN is the maximum of every window holding it (XLA's and torch's pooling)."""
    x = np.arange(2 * 7 * 6 * 2, dtype=np.float32).reshape(2, 7, 6, 2) % 5
    x[0, 3, 2, 1] = np.nan
    ours = patch_conv.max_pool(jnp.asarray(x), (3, 2))
    ref = nn.max_pool(jnp.asarray(x), (3, 2), strides=(1, 1), padding="VALID")
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    assert int(np.isnan(ours).sum()) == 3 * 2  # the windows that cover (3, 2)
    np.testing.assert_array_equal(ours, ref)  # NaNs compare equal here


def _banded_path_equals_the_general_one(monkeypatch, name, f, *args):
    """f(*args) calls patch_conv's `name` (spied) and gives the values and gradients it gives
    with the banded paths switched off."""
    calls = []
    banded = getattr(patch_conv, name)
    monkeypatch.setattr(patch_conv, name, lambda *a: calls.append(1) or banded(*a))
    argnums = tuple(range(len(args)))
    value, grads = jax.value_and_grad(f, argnums)(*args)
    assert calls
    threshold = patch_conv._BANDED_MIN_TAPS
    monkeypatch.setattr(patch_conv, "_BANDED_MIN_TAPS", 10**9)  # im2col / the dilated input
    ref_value, ref_grads = jax.value_and_grad(f, argnums)(*args)
    monkeypatch.setattr(patch_conv, "_BANDED_MIN_TAPS", threshold)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for a, b in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    return calls


def test_one_channel_convs_with_many_taps_take_the_banded_product(key, monkeypatch):
    """The 5×5 one-channel conv runs `_banded_conv` and equals the im2col path (values and
    gradients); a 3×3 one stays with im2col."""
    x = jax.random.normal(key, (3, 14, 13, 1))
    kernel = jax.random.normal(jax.random.key(7), (5, 5, 1, 6))

    def f(x, kernel):
        return jnp.sum(jnp.sin(patch_conv.conv2d(x, kernel, (1, 2), "SAME")))

    calls = _banded_path_equals_the_general_one(monkeypatch, "_banded_conv", f, x, kernel)
    calls.clear()
    patch_conv.conv2d(x, kernel[1:4, 1:4], (2, 2), "SAME")
    assert not calls


def test_one_channel_transposed_convs_take_banded_row_phases(key, monkeypatch):
    """Keras's 4×4 stride-2 transposed conv on one channel runs `_banded_transpose` and
    equals the dilated-input route (values and gradients)."""
    x = jax.random.normal(key, (3, 7, 6, 1))
    kernel = jax.random.normal(jax.random.key(8), (4, 4, 5, 1))

    def f(x, kernel):
        return jnp.sum(jnp.sin(patch_conv.conv_transpose2d(x, kernel, (2, 2), "SAME")))

    _banded_path_equals_the_general_one(monkeypatch, "_banded_transpose", f, x, kernel)


@pytest.mark.parametrize(
    "kernel_hw, strides, pad",
    [((3, 5), (2, 3), "VALID"), ((4, 2), (3, 1), ((1, 2), (0, 3))), ((2, 3), (3, 2), "SAME")],
)
def test_phases_route_with_rectangular_kernels_and_unequal_strides(key, kernel_hw, strides, pad):
    """The by-phase route (its rows and columns overlap-added separately) equals
    `lax.conv_transpose`, values and gradients, when kernel sides and strides differ."""
    kx, kk = jax.random.split(key)
    x = jax.random.normal(kx, (2, 5, 6, 8))
    kernel = jax.random.normal(kk, (*kernel_hw, 4, 8))  # [kh, kw, O, I]: I > O, the phases

    def value_and_grads(fn):
        loss = lambda x, k: jnp.sum(jnp.sin(fn(x, k)))  # noqa: E731
        return fn(x, kernel), *jax.grad(loss, (0, 1))(x, kernel)

    ours = value_and_grads(lambda x, k: patch_conv.conv_transpose2d(x, k, strides, pad))
    ref = value_and_grads(
        lambda x, k: jax.lax.conv_transpose(
            x, k, strides, pad, dimension_numbers=("NHWC", "HWIO", "NHWC"), transpose_kernel=True
        )
    )
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
