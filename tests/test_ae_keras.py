"""Post 004's Keras autoencoders: preprocessing, Keras init, shapes, Adam ε, CLI end to end."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from jaxunsup import ae_keras, cli, data


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist("train", source="embedded"), data.load_mnist("test", source="embedded")


def _state(cfg):
    return ae_keras.create_state(jax.random.key(0), cfg, jnp.zeros((1, 28, 28, 1)))


class LaxKerasCNN(nn.Module):
    """Post 004 §2 from flax's own layers (XLA convolutions, SAME as Keras pads)."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Conv(10, (5, 5), padding="SAME", name="e_conv")(x))
        h = nn.max_pool(h, (5, 5), strides=(1, 1), padding="VALID").reshape(len(x), -1)
        h = nn.Dense(196, name="e_latent")(h).reshape(len(x), 14, 14, 1)
        convt = nn.ConvTranspose(10, (4, 4), (2, 2), "SAME", transpose_kernel=True, name="d_conv_t")
        return nn.Conv(1, (4, 4), padding="SAME", name="x_output")(nn.relu(convt(h)))


def test_standardize_per_image_is_the_posts_standard_scaler_on_the_transpose(mnist):
    x = mnist[0].images[:50]
    flat = x.reshape(50, -1).astype(np.float64) * 255  # the post's raw 0..255 pixels
    expected = StandardScaler().fit_transform(flat.T).T
    ours = ae_keras.standardize_per_image(x)
    assert ours.shape == x.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours.reshape(50, -1), expected, atol=1e-5)
    np.testing.assert_array_equal(ae_keras.standardize_per_image(np.ones((1, 28, 28, 1))), 0)


def test_mlp_parameter_counts_shapes_and_keras_init():
    state = _state(ae_keras.KerasMLPConfig())
    n = sum(x.size for x in jax.tree.leaves(state.params))
    assert n == (784 * 256 + 256) + (256 * 100 + 100) + (100 * 256 + 256) + (256 * 784 + 784)
    variant = _state(ae_keras.KerasMLPConfig(linear_latent=True))
    assert sum(x.size for x in jax.tree.leaves(variant.params)) == n + 100 * 100 + 100
    p = state.params["params"]
    assert all(np.all(p[name]["bias"] == 0) for name in p)  # Keras: zero biases
    w = np.asarray(p["encoder_1"]["kernel"])  # Glorot-uniform: U(±sqrt(6 / (784 + 256)))
    limit = np.sqrt(6 / (784 + 256))
    assert np.abs(w).max() <= limit and abs(w.std() - limit / np.sqrt(3)) < 0.01 * limit
    x = jax.random.normal(jax.random.key(1), (3, 28, 28, 1))
    assert jax.jit(state.apply_fn)(state.params, x).shape == (3, 28, 28, 1)
    codes = ae_keras.encode(state, np.asarray(x))
    assert codes.shape == (3, 100) and np.all(codes >= 0)  # the ReLU latent
    assert np.any(ae_keras.encode(variant, np.asarray(x)) < 0)  # the linear latent


def test_cnn_parameter_count_and_the_xla_reference(mnist):
    state = _state(ae_keras.KerasCNNConfig())
    n = sum(x.size for x in jax.tree.leaves(state.params))
    assert n == (25 * 10 + 10) + (24 * 24 * 10 * 196 + 196) + (16 * 10 + 10) + (16 * 10 + 1)
    x = mnist[1].images[:3]
    y = jax.jit(state.apply_fn)(state.params, x)
    np.testing.assert_allclose(y, jax.jit(LaxKerasCNN().apply)(state.params, x), atol=1e-5)
    codes = ae_keras.encode(state, x)
    assert codes.shape == (3, 196)
    np.testing.assert_allclose(ae_keras.decode(state, codes), y, atol=1e-5)


def test_cnn_bias_after_the_pool_gives_the_references_loss_and_gradients(mnist):
    """Ours adds the first conv's bias and ReLU after the max pool (they commute with it):
    with nonzero biases, some channels mostly negative, loss and every gradient match
    flax's ReLU-then-pool model."""
    params = _state(ae_keras.KerasCNNConfig()).params
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(3), len(leaves))
    leaves = [v + 0.1 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys, strict=True)]
    params = jax.tree.unflatten(tree, leaves)
    bias = params["params"]["e_conv"]["bias"]
    params["params"]["e_conv"]["bias"] = bias.at[:4].set(jnp.array([-0.6, -0.3, 0.2, 0.5]))
    x = mnist[1].images[:4]

    def loss(model):
        return jax.jit(jax.value_and_grad(lambda p: jnp.mean((model.apply(p, x) - x) ** 2)))

    (value, grads), (ref_value, ref_grads) = (
        loss(ae_keras.KerasCNNAE())(params),
        loss(LaxKerasCNN())(params),
    )
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)


def test_adam_uses_keras_epsilon(mnist):
    """One step from zero moments: Δ = −lr·g / (|g| + ε) with ε = 1e-7."""
    cfg = ae_keras.KerasMLPConfig()
    state = _state(cfg)
    batch = jnp.asarray(ae_keras.standardize_per_image(mnist[0].images[:300]))
    grads = jax.grad(lambda p: ae_keras.loss_fn(p, state.apply_fn, batch, None)[0])(state.params)
    new, _ = ae_keras.train_step(state, batch, jax.random.key(0))
    g = np.asarray(grads["params"]["decoder_2"]["bias"], np.float64)
    delta = np.asarray(new.params["params"]["decoder_2"]["bias"], np.float64)  # biases start at 0
    np.testing.assert_allclose(delta, -cfg.lr * g / (np.abs(g) + 1e-7), rtol=1e-4, atol=1e-9)
    torch_default = -cfg.lr * g / (np.abs(g) + 1e-8)  # optax's and torch's default ε
    assert not np.allclose(delta, torch_default, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("name", ["ae-keras-mlp", "ae-keras-cnn"])
def test_cli_end_to_end_and_restore(tmp_path, capsys, name):
    args = ["--source", "embedded", "--n-train", "600", "--n-test", "100", "--epochs", "2"]
    assert cli.main(["run", name, "--workdir", str(tmp_path), *args]) == 0
    assert "k-means on test latents" in capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps_per_epoch"] == 2 and len(results["train_loss"]) == 2
    for fig in results["figures"]:
        assert (tmp_path / fig).stat().st_size > 0
    cls = ae_keras.KerasMLPConfig if name == "ae-keras-mlp" else ae_keras.KerasCNNConfig
    state, cfg = ae_keras.restore(tmp_path, cls)
    assert cfg.n_train == 600
    test = data.load_mnist("test", source="embedded").images[:100]
    inputs = ae_keras.standardize_per_image(test) if name == "ae-keras-mlp" else test
    np.testing.assert_allclose(
        ae_keras.reconstruct(state, inputs)[1].mean(), results["test_mse"], rtol=1e-5
    )


def test_bad_settings_are_rejected_before_training(tmp_path, mnist):
    with pytest.raises(ValueError, match="batch_size"):
        ae_keras.run_mlp(ae_keras.KerasMLPConfig(n_train=100), tmp_path, data=mnist)
    with pytest.raises(ValueError, match="filters"):
        ae_keras.run_cnn(ae_keras.KerasCNNConfig(filters=0), tmp_path, data=mnist)
    with pytest.raises(ValueError, match="lr"):
        ae_keras.run_cnn(ae_keras.KerasCNNConfig(lr=0.0), tmp_path, data=mnist)
    assert not (tmp_path / "checkpoints").exists()
