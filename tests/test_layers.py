"""Torch-style initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxunsup import layers


def test_dense_init_matches_torch_linear_distribution(key):
    params = layers.dense(400, 300).init(key, jnp.zeros((1, 400)))["params"]
    torch.manual_seed(0)
    ref = torch.nn.Linear(400, 300)
    for ours, theirs in ((params["kernel"], ref.weight), (params["bias"], ref.bias)):
        ours, theirs = np.asarray(ours), theirs.detach().numpy()
        bound = 1 / np.sqrt(400)
        assert np.abs(ours).max() <= bound
        assert ours.std() == np.float32(ours.std())  # float32
        np.testing.assert_allclose(ours.std(), theirs.std(), rtol=0.1)
        np.testing.assert_allclose(ours.std(), bound / np.sqrt(3), rtol=0.1)
    assert params["kernel"].shape == (400, 300)


def test_uniform_bounds(key):
    x = layers.uniform(0.25)(key, (10_000,))
    assert float(jnp.min(x)) >= -0.25 and float(jnp.max(x)) <= 0.25
    assert abs(float(jnp.mean(x))) < 0.01
    assert jax.numpy.asarray(x).dtype == jnp.float32


def _torch_to_flax_kernel(w: torch.Tensor) -> np.ndarray:
    return w.detach().numpy().transpose(2, 3, 1, 0)


def _run(layer, torch_layer, x_nchw):
    params = {"kernel": _torch_to_flax_kernel(torch_layer.weight)}
    if torch_layer.bias is not None:
        params["bias"] = torch_layer.bias.detach().numpy()
    with jax.default_matmul_precision("highest"):
        ours = layer.apply({"params": params}, jnp.asarray(x_nchw.numpy().transpose(0, 2, 3, 1)))
    theirs = torch_layer(x_nchw).detach().numpy().transpose(0, 2, 3, 1)
    return np.asarray(ours), theirs


@pytest.mark.parametrize(
    "cin, cout, k, s, p, hw",
    [(1, 16, 3, 2, 0, 28), (16, 32, 3, 2, 0, 13), (1, 128, 3, 2, 1, 28), (256, 1, 3, 2, 0, 4),
     (3, 8, 4, 1, 1, 9)],
)  # fmt: skip
@pytest.mark.parametrize("impl", layers.IMPLS)
def test_conv_matches_torch(cin, cout, k, s, p, hw, impl):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(cin, cout, k, stride=s, padding=p)
    x = torch.randn(2, cin, hw, hw)
    ours, theirs = _run(layers.conv(cin, cout, k, s, p, impl=impl), ref, x)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    "cin, cout, k, s, p, op, hw, out_hw",
    [
        (64, 32, 3, 1, 0, 0, 4, 6),  # post 000 §4 conv AE decoder
        (32, 16, 3, 2, 0, 0, 6, 13),
        (16, 1, 3, 2, 0, 1, 13, 28),  # the output_padding=1 trap
        (128, 256, 3, 1, 0, 0, 1, 3),  # post 000 §5.2 DCGAN generator
        (256, 128, 3, 2, 0, 0, 3, 7),
        (128, 64, 3, 2, 0, 0, 7, 15),
        (64, 1, 2, 2, 1, 0, 15, 28),  # k=2, s=2, p=1
        (64, 64, 3, 2, 1, 1, 7, 14),  # post 003 VAE decoder
    ],
)
@pytest.mark.parametrize("impl", layers.IMPLS)
def test_conv_transpose_matches_torch(cin, cout, k, s, p, op, hw, out_hw, impl):
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op)
    x = torch.randn(2, cin, hw, hw)
    ours, theirs = _run(layers.conv_transpose(cin, cout, k, s, p, op, impl=impl), ref, x)
    assert ours.shape == theirs.shape == (2, out_hw, out_hw, cout)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_conv_transpose_init_uses_torch_fan_in(key):
    layer = layers.conv_transpose(64, 32, 3, 2)
    params = layer.init(key, jnp.zeros((1, 4, 4, 64)))["params"]
    assert params["kernel"].shape == (3, 3, 32, 64)  # [kh, kw, out, in]
    assert float(jnp.abs(params["kernel"]).max()) <= 1 / np.sqrt(32 * 9)
    assert float(jnp.abs(params["kernel"]).max()) > 0.9 / np.sqrt(32 * 9)


def test_conv_no_bias_has_only_kernel(key):
    params = layers.conv(1, 4, 3, use_bias=False).init(key, jnp.zeros((1, 8, 8, 1)))["params"]
    assert set(params) == {"kernel"}
