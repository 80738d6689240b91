"""Stacked autoencoder (post 000 §2): shapes, parameter count, loss, training, end to end."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import autoencoder, checkpoint, data, training


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist("train", source="embedded"), data.load_mnist("test", source="embedded")


def _state(key, **kw):
    cfg = autoencoder.StackedConfig(**kw)
    return autoencoder.create_state(key, cfg, jnp.zeros((1, 28, 28, 1)))


def test_parameter_count_and_shapes(key):
    state = _state(key)
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    # 784·128+128 + 128·32+32 + 32·10+10 + 10·32+32 + 32·128+128 + 128·784+784 (the post's model)
    assert n_params == 210_650
    x = jax.random.uniform(key, (5, 28, 28, 1))
    y = jax.jit(state.apply_fn)(state.params, x)
    assert y.shape == (5, 28, 28, 1)
    assert bool(jnp.all((y > 0) & (y < 1)))
    codes = autoencoder.encode(state, np.asarray(x))
    assert codes.shape == (5, 10) and np.all(codes >= 0)  # ReLU after the code layer


def test_loss_closed_form_with_zero_weights(key):
    state = _state(key)
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    x = jax.random.uniform(key, (4, 28, 28, 1))
    loss, _ = autoencoder.loss_fn(zeros, state.apply_fn, x, None)
    # every output is sigmoid(0) = 0.5
    np.testing.assert_allclose(loss, np.mean((0.5 - np.float64(x)) ** 2), rtol=1e-5)


def test_loss_decreases_and_step_compiles_once(key, mnist, compile_counter):
    state = _state(key, lr=1e-3)
    batch = jnp.asarray(mnist[0].images[:50])
    state, m0 = autoencoder.train_step(state, batch, key)
    with compile_counter:
        for _ in range(30):
            state, m = autoencoder.train_step(state, batch, key)
    assert compile_counter.count == 0
    assert float(m["loss"]) < 0.7 * float(m0["loss"])


def test_run_end_to_end(tmp_path, mnist):
    train, test = mnist
    small = (
        train._replace(images=train.images[:500], labels=train.labels[:500]),
        test._replace(images=test.images[:100], labels=test.labels[:100]),
    )
    cfg = autoencoder.StackedConfig(epochs=3, lr=1e-3, checkpoint_every=2)
    results = autoencoder.run(cfg, tmp_path, data=small)
    assert len(results["train_loss"]) == 3
    assert results["train_loss"][-1] < results["train_loss"][0]
    assert 0 < results["test_mse"] < 0.12
    for name in ("config.json", "metrics.jsonl", "results.json", *results["figures"]):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3
    assert checkpoint.latest_step(tmp_path / "checkpoints") == 3
    restored, epoch = training.restore_latest(tmp_path, _state(jax.random.key(1)))
    recon, mse = autoencoder.reconstruct(restored, test.images[:100])
    np.testing.assert_allclose(mse.mean(), results["test_mse"], rtol=1e-5)
    # the library API: restore from the workdir alone; decode(encode(x)) is the reconstruction
    state, cfg2 = autoencoder.restore(tmp_path)
    assert cfg2 == cfg
    codes = autoencoder.encode(state, test.images[:100])
    np.testing.assert_allclose(autoencoder.decode(state, codes), recon, atol=1e-6)
    # latent clustering: post 004's k-means on the test codes and on the raw pixels
    for what in ("latent", "pixels"):
        assert 0.1 < results["clustering"][what]["acc"] <= 1
    assert {"clusters.png", "latent_tsne.png"} <= set(results["figures"])
    assert any("k-means" in row["metric"] for row in results["table"])


def test_window_means():
    assert autoencoder.window_means([1.0, 3.0, 5.0, 7.0, 9.0], 2) == [2.0, 6.0]


@pytest.mark.parametrize(
    "kw, match",
    [({"lr": -1.0}, "lr"), ({"batch_size": 0}, "batch_size"), ({"hidden": ()}, "hidden")],
)
def test_bad_config_is_rejected_before_training(tmp_path, mnist, kw, match):
    with pytest.raises(ValueError, match=match):
        autoencoder.run(autoencoder.StackedConfig(**kw), tmp_path, data=mnist)


def test_bad_images_are_rejected(tmp_path, mnist):
    train, test = mnist
    bad = train._replace(images=train.images[:10, :, :20])
    with pytest.raises(ValueError, match="train images"):
        autoencoder.run(autoencoder.StackedConfig(), tmp_path, data=(bad, test))
    short = test._replace(labels=test.labels[:5])
    with pytest.raises(ValueError, match="test labels"):
        autoencoder.run(autoencoder.StackedConfig(), tmp_path, data=(train, short))
    assert not (tmp_path / "checkpoints").exists()


def test_restore_without_a_run_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        autoencoder.restore(tmp_path)
