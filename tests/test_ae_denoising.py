"""Denoising AE (post 000 §3): the noise, the post's bug behind seed_compat, end to end."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import ae_denoising, autoencoder, data


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist("train", source="embedded"), data.load_mnist("test", source="embedded")


@pytest.fixture(scope="module")
def state():
    cfg = ae_denoising.DenoisingConfig()
    return ae_denoising.create_state(jax.random.key(0), cfg, jnp.zeros((1, 28, 28, 1)))


def test_noise_is_gaussian_with_the_posts_std(key):
    noise = np.asarray(ae_denoising.add_noise(key, jnp.zeros((200_000,)), 0.5))
    assert abs(noise.mean()) < 0.005 and abs(noise.std() - 0.5) < 0.005
    assert noise.min() < -1.5 and noise.max() > 1.5  # unclipped, as torch.normal


def test_losses_feed_noisy_or_clean_inputs(state, mnist, key):
    x = jnp.asarray(mnist[1].images[:8])
    params = jax.tree.map(lambda p: 4 * p, state.params)  # an input-sensitive network
    plain, _ = autoencoder.loss_fn(params, state.apply_fn, x, None)
    compat, _ = ae_denoising.loss_fn(params, state.apply_fn, x, key, seed_compat=True)
    np.testing.assert_allclose(compat, plain, rtol=1e-6)  # the post's bug: a plain AE
    noisy_x = x + 0.5 * jax.random.normal(key, x.shape)
    expected = jnp.mean((jax.jit(state.apply_fn)(params, noisy_x) - x) ** 2)
    denoise, _ = ae_denoising.loss_fn(params, state.apply_fn, x, key)
    np.testing.assert_allclose(denoise, expected, rtol=1e-6)
    assert abs(float(denoise) - float(plain)) > 1e-3 * float(plain)
    zeros = jax.tree.map(jnp.zeros_like, state.params)  # sigmoid(0) = 0.5 whatever goes in
    loss, _ = ae_denoising.loss_fn(zeros, state.apply_fn, x, key)
    np.testing.assert_allclose(loss, np.mean((0.5 - np.asarray(x)) ** 2), rtol=1e-6)


def test_step_per_setting_compiles_once(state, mnist, key, compile_counter):
    assert ae_denoising.make_train_step(0.5, False) is ae_denoising.train_step
    assert ae_denoising.make_train_step(0.3, True) is not ae_denoising.train_step
    batch = jnp.asarray(mnist[0].images[:50])
    s = jax.tree.map(jnp.copy, state)
    s, m0 = ae_denoising.train_step(s, batch, key)
    with compile_counter:
        for _ in range(10):
            s, m = ae_denoising.train_step(s, batch, key)
    assert compile_counter.count == 0 and int(s.step) == 11


def test_run_end_to_end_with_the_plain_ae_baseline(tmp_path, mnist):
    train, test = mnist
    cfg = ae_denoising.DenoisingConfig(epochs=2, lr=1e-3, n_train=500, n_test=100)
    results = ae_denoising.run(cfg, tmp_path, data=mnist)
    assert results["test_mse"] < results["test_mse_noisy"] < 0.2  # clean inputs are easier
    metrics = [r["metric"] for r in results["table"]]
    assert metrics[:3] == [
        "test MSE, noisy inputs",
        "plain stacked AE: test MSE, noisy inputs",
        "plain stacked AE: test MSE",
    ]
    assert results["figures"][0] == "denoising.png"
    for name in ("config.json", "metrics.jsonl", "baseline/metrics.jsonl", *results["figures"]):
        assert (tmp_path / name).stat().st_size > 0
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"test_mse", "test_mse_noisy"} <= set(rows[-1])
    assert rows[-1]["test_mse_noisy"] < rows[0]["test_mse_noisy"]
    restored, cfg2 = ae_denoising.restore(tmp_path)
    assert cfg2 == cfg
    key_test = jax.random.split(jax.random.key(cfg.seed), 3)[2]  # run()'s test-noise key
    noisy = np.asarray(ae_denoising.add_noise(key_test, jnp.asarray(test.images[:100]), 0.5))
    _, mse = ae_denoising.denoise(restored, noisy, test.images[:100])
    np.testing.assert_allclose(mse.mean(), results["test_mse_noisy"], rtol=1e-5)


@pytest.mark.slow
def test_quick_preset_denoiser_beats_the_plain_ae_on_noisy_inputs(tmp_path):
    from jaxunsup.registry import EXPERIMENTS

    exp = EXPERIMENTS["ae-denoising"]
    results = exp.run(exp.make_config("quick", source="embedded"), tmp_path)
    assert results["test_mse_noisy"] < results["baseline"]["test_mse_noisy"]


@pytest.mark.parametrize(
    "kw, match",
    [({"noise_std": 0.0}, "noise_std"), ({"lr": -1e-3}, "lr"), ({"hidden": ()}, "hidden")],
)
def test_bad_config_is_rejected_before_training(tmp_path, mnist, kw, match):
    with pytest.raises(ValueError, match=match):
        ae_denoising.run(ae_denoising.DenoisingConfig(**kw), tmp_path, data=mnist)
    assert not (tmp_path / "checkpoints").exists()
