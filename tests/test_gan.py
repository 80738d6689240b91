"""MLP GAN (post 000 §5.1) and the shared GAN machinery: counts, losses, the D-then-G step,
dropout keys, compilation, latent tools, input checks and the CLI end to end."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxunsup import checkpoint, cli, data, gan


def _n(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))


@pytest.fixture(scope="module")
def real():
    return jnp.asarray(data.load_mnist("train", source="embedded").images[:16] * 2 - 1)


def test_parameter_counts_shapes_and_ranges(key):
    state = gan.create_state(key, gan.GANConfig())
    # the post's Linear layers: 128·256+256 + 256·512+512 + 512·1024+1024 + 1024·784+784
    assert _n(state.g.params) == 1_493_520
    # 784·1024+1024 + 1024·512+512 + 512·256+256 + 256·1+1
    assert _n(state.d.params) == 1_460_225
    z = 3 * jax.random.normal(key, (5, 128))
    images = state.g.apply_fn(state.g.params, z)
    assert images.shape == (5, 28, 28, 1)
    assert float(jnp.abs(images).max()) <= 1.0  # Tanh
    assert state.d.apply_fn(state.d.params, images).shape == (5, 1)


def test_bce_closed_form_and_clamp():
    p = np.array([0.2, 0.5, 0.9], np.float32)
    t = np.array([1.0, 0.0, 0.3], np.float32)
    expected = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    np.testing.assert_allclose(gan.bce(p, t), expected, rtol=1e-6)
    logits = np.log(p / (1 - p))
    np.testing.assert_allclose(gan.bce_with_logits(logits, t), expected, rtol=1e-5)
    # torch clamps each log at -100: a certain mistake costs 100, not inf
    assert float(gan.bce(0.0, 1.0)) == 100.0 and float(gan.bce(1.0, 0.0)) == 100.0
    assert float(gan.bce_with_logits(-300.0, 1.0)) == 100.0
    assert float(gan.bce_with_logits(300.0, 1.0)) == 0.0
    # from logits stays exact where float32's sigmoid has saturated to 1
    np.testing.assert_allclose(gan.bce_with_logits(30.0, 0.0), 30.0, rtol=1e-6)
    np.testing.assert_allclose(gan.gan_loss(jnp.zeros(3), 1.0, "mse"), 0.25)


def _deterministic_state(key):
    return gan.create_gan_state(
        key, gan.Generator(), gan.Discriminator(dropout=0.0),
        optax.adam(2e-4), optax.adam(2e-4), 128,
    )  # fmt: skip


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


def _adam_step(params, grads, lr=2e-4):
    tx = optax.adam(lr)
    updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates)


def test_step_is_d_update_then_g_update_through_the_new_d(key, real):
    """Hand-written D step on detached fakes, then G step through the updated D: the jitted
    step matches it, so each half moves only its own network."""
    state = _deterministic_state(key)
    spec = gan.StepSpec(128)
    k_zd, k_zg, _, _ = gan.step_keys(key, 0)
    n, g, d = real.shape[0], state.g, state.d
    fake = g.apply_fn(g.params, gan.noise(k_zd, n, spec))

    def d_loss(p):
        return gan.bce_with_logits(d.apply_fn(p, real), 1.0) + gan.bce_with_logits(
            d.apply_fn(p, fake), 0.0
        )

    d_new = _adam_step(d.params, jax.grad(d_loss)(d.params))

    def g_loss(p):
        return gan.bce_with_logits(d.apply_fn(d_new, g.apply_fn(p, gan.noise(k_zg, n, spec))), 1.0)

    g_new = _adam_step(g.params, jax.grad(g_loss)(g.params))
    out, metrics = gan.train_step(_copy(state), real, key)
    for ours, expected, before in (
        (out.d.params, d_new, d.params),
        (out.g.params, g_new, g.params),
    ):
        leaves = [jax.tree.leaves(t) for t in (ours, expected, before)]
        for a, b, c in zip(*leaves, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)  # Adam: lr·g/(|g| + 1e-8), g ≈ 0
            assert not np.allclose(a, c)  # every layer of both nets moved
    np.testing.assert_allclose(metrics["d_loss"], d_loss(d.params), rtol=1e-5)
    assert int(out.step) == 1 and int(out.d.step) == 1


def test_dropout_masks_follow_the_step_key(key, real):
    state = gan.create_state(key, gan.GANConfig())
    a = gan.train_step(_copy(state), real, key)[1]["d_loss"]
    b = gan.train_step(_copy(state), real, key)[1]["d_loss"]
    later = state._replace(g=state.g.replace(step=jnp.ones((), jnp.int32)))
    c = gan.train_step(_copy(later), real, key)[1]["d_loss"]
    # same state and key: the same masks (and noise); another step number: new ones
    assert float(a) == float(b) and float(a) != float(c)
    no_dropout = gan.create_gan_state(
        key, gan.Generator(), gan.Discriminator(dropout=0.0), optax.adam(2e-4),
        optax.adam(2e-4), 128,
    )  # fmt: skip
    d0 = gan.train_step(_copy(no_dropout), real, key)[1]["d_loss"]
    assert float(d0) != float(a)  # dropout is active in the step


def test_step_compiles_once(key, real, compile_counter):
    state = gan.train_step(gan.create_state(key, gan.GANConfig()), real, key)[0]
    with compile_counter:
        for _ in range(3):
            state, metrics = gan.train_step(state, real, key)
    assert compile_counter.count == 0
    assert np.isfinite(float(metrics["loss"]))


def test_latent_tools(key):
    state = gan.create_state(key, gan.GANConfig())
    z = np.asarray(jax.random.normal(key, (2, 128)))
    line = gan.interpolate(state.g, z[0], z[1], steps=12)
    ends = gan.generate(state.g, np.stack([z[0], (z[0] + z[1]) / 2, z[1]]))
    assert line.shape == (12, 28, 28, 1)
    np.testing.assert_allclose(line[0], ends[0], atol=1e-6)
    np.testing.assert_allclose(line[-1], ends[2], atol=1e-6)
    mid = gan.interpolate(state.g, z[0], z[1], steps=3)[1]
    np.testing.assert_allclose(mid, ends[1], atol=1e-6)
    arith = gan.seed_arithmetic(state.g, z[:1], z[1:])
    assert list(arith) == ["A", "B", "A+B", "A−B"]
    np.testing.assert_allclose(arith["A+B"], gan.generate(state.g, z[:1] + z[1:]), atol=1e-6)
    np.testing.assert_allclose(arith["A−B"], gan.generate(state.g, z[:1] - z[1:]), atol=1e-6)


def test_adam_b1_reaches_both_optimisers(key):
    """Two Adam steps on gradients 1 then -2: the second update in closed form
    (m̂ = (β1(1-β1)·1 + (1-β1)(-2)) / (1-β1²), v̂ likewise with β2 = 0.999)."""
    b2, lr = 0.999, 2e-4

    def second_update(b1):
        m = (b1 * (1 - b1) - 2 * (1 - b1)) / (1 - b1**2)
        v = (b2 * (1 - b2) + 4 * (1 - b2)) / (1 - b2**2)
        return -lr * m / (np.sqrt(v) + 1e-8)

    for b1 in (0.9, 0.5):  # 0.9: the post's (torch's default)
        state = gan.create_state(key, gan.GANConfig(adam_b1=b1))
        for tx in (state.g.tx, state.d.tx):
            opt = tx.init(jnp.zeros(()))
            _, opt = tx.update(jnp.ones(()), opt)
            update, _ = tx.update(-2 * jnp.ones(()), opt)
            np.testing.assert_allclose(update, second_update(b1), rtol=1e-4)
    assert not np.isclose(second_update(0.9), second_update(0.5), rtol=0.1)


def test_label_smoothing_is_d_real_target_only(key, real):
    """One-sided smoothing s: D's loss is BCE(real, 1 - s) + BCE(fake, 0), checked in NumPy
    on D's logits; G's loss keeps target 1 (its value from the updated D, recomputed)."""
    state = _deterministic_state(key)
    cfg = gan.GANConfig(label_smoothing=0.1)
    spec = gan.step_spec(cfg)
    assert spec.real_label == 0.9 and gan.step_spec(gan.GANConfig()).real_label == 1.0
    k_zd, k_zg, _, _ = gan.step_keys(key, 0)
    n, g, d = real.shape[0], state.g, state.d
    fake = g.apply_fn(g.params, gan.noise(k_zd, n, spec))

    def bce(logits, t):
        p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
        return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))

    expected = bce(d.apply_fn(d.params, real), 0.9) + bce(d.apply_fn(d.params, fake), 0.0)
    out, metrics = gan.step_for(spec)(_copy(state), real, key)
    np.testing.assert_allclose(metrics["d_loss"], expected, rtol=1e-5)
    z = gan.noise(k_zg, n, spec)
    g_expected = bce(out.d.apply_fn(out.d.params, g.apply_fn(g.params, z)), 1.0)
    np.testing.assert_allclose(metrics["g_loss"], g_expected, rtol=1e-5)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"adam_b1": 1.0}, "adam_b1 must be in [0, 1)"),
        ({"label_smoothing": -0.1}, "label_smoothing must be in [0, 1)"),
        ({"lr": -1e-3}, "lr must be a positive number"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"eval_samples": 3}, "eval_samples must be"),
        ({"dataset": "cifar"}, "dataset must be"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, override, message, compile_counter):
    cfg = gan.GANConfig(**override, source="embedded")
    with compile_counter, pytest.raises(ValueError, match=re.escape(message)):
        gan.run(cfg, tmp_path)
    assert compile_counter.count == 0


def test_bad_images_are_a_clear_error(tmp_path, compile_counter):
    train = data.load_mnist("test", source="embedded")
    nan = train.images[:20].copy()
    nan[3, 4, 5, 0] = np.nan
    cases = [
        (train._replace(images=nan, labels=train.labels[:20]), "NaN"),
        (train._replace(images=np.zeros((20, 28, 28, 3), np.float32)), "per-image shape"),
    ]
    with compile_counter:
        for bad, message in cases:
            with pytest.raises(ValueError, match=message):
                gan.run(gan.GANConfig(), tmp_path, data=(bad, train))
    assert compile_counter.count == 0


def _cli_args(workdir, epochs: int) -> list[str]:
    return ["run", "gan-mlp", "--workdir", str(workdir), "--n-train", "200", "--epochs",
            str(epochs), "--batch-size", "50", "--eval-samples", "100", "--epoch-eval-samples",
            "50", "--classifier-epochs", "1", "--source", "embedded"]  # fmt: skip


def test_cli_end_to_end_and_resume(tmp_path, capsys):
    assert cli.main(_cli_args(tmp_path, 2)) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert "MNIST" in results["data"]  # no FashionMNIST here: the run says what it used
    assert len(results["fid_curve"]) == 2 and all(np.isfinite(results["fid_curve"]))
    assert 0 <= results["scores"]["label_entropy"] <= np.log(10) + 1e-9
    for fig in results["figures"]:
        assert (tmp_path / fig).is_file(), fig
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_001.png", "epoch_002.png"
    ]  # fmt: skip
    state, meta = checkpoint.restore(
        tmp_path / "checkpoints", gan.create_state(jax.random.key(1), gan.GANConfig())
    )
    assert isinstance(state, gan.GANState) and meta["epoch"] == 2 and int(state.step) == 8
    assert cli.main(_cli_args(tmp_path, 3)) == 0  # resumes after epoch 2, reuses the classifier
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]
    assert len(json.loads((tmp_path / "results.json").read_text())["fid_curve"]) == 3
    assert "results:" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_preset_draws_every_digit(tmp_path):
    """`reproduce --quick`'s gan-mlp run: samples the feature classifier spreads over the ten
    digits (label entropy ≥ 2.0 nats of ln 10 = 2.303) with FD ≤ 250."""
    from jaxunsup.registry import EXPERIMENTS

    exp = EXPERIMENTS["gan-mlp"]
    scores = exp.run(exp.make_config("quick", source="embedded"), tmp_path)["scores"]
    assert scores["label_entropy"] >= 2.0 and scores["fid"] <= 250, scores
