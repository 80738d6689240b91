"""DCGAN (post 000 §5.2): parameter counts, every layer's output shape (torch's formulas), no
biases, output ranges, and the CLI end to end."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import cli, dcgan, gan


def _conv_out(n, k, s, p=0):  # torch.nn.Conv2d
    return (n + 2 * p - k) // s + 1


def _convt_out(n, k, s, p=0):  # torch.nn.ConvTranspose2d
    return (n - 1) * s - 2 * p + k


def test_parameter_counts_and_no_biases(key):
    state = dcgan.create_state(key, dcgan.DCGANConfig())
    g, d = state.g.params["params"], state.d.params["params"]
    # ConvT weights [in, out, k, k]: 128·256·9 + 256·128·9 + 128·64·9 + 64·1·4
    assert sum(x.size for x in jax.tree.leaves(g)) == 663_808
    # Conv weights [out, in, k, k]: 128·1·9 + 256·128·9 + 256·256·9 + 1·256·9
    assert sum(x.size for x in jax.tree.leaves(d)) == 888_192
    assert sorted(g) == ["conv_0", "conv_2", "conv_4", "conv_6"]  # torch's Sequential indices
    assert sorted(d) == ["conv_0", "conv_3", "conv_6", "conv_9"]
    assert all(list(layer) == ["kernel"] for layer in [*g.values(), *d.values()])  # bias=False


def test_use_bias_adds_torchs_bias_to_every_layer(key):
    """`use_bias=True` (a named option; the post's layers have none): one bias per output
    channel on each of the 8 layers, drawn from torch's U(±1/sqrt(fan_in)), and G's last bias
    alone sets the background: with every kernel zero, G draws tanh(bias) at every pixel."""
    state = dcgan.create_state(key, dcgan.DCGANConfig(use_bias=True))
    g, d = state.g.params["params"], state.d.params["params"]
    assert sum(x.size for x in jax.tree.leaves(g)) == 663_808 + 256 + 128 + 64 + 1
    assert sum(x.size for x in jax.tree.leaves(d)) == 888_192 + 128 + 256 + 256 + 1
    # torch's fan_in: ConvTranspose2d(128, 64, 3) counts out·k·k = 576; Conv2d(1, 128, 3) 9
    assert 0 < float(jnp.abs(g["conv_4"]["bias"]).max()) <= 1 / np.sqrt(64 * 9)
    assert 0.1 < float(jnp.abs(d["conv_0"]["bias"]).max()) <= 1 / 3
    zeroed = jax.tree.map(jnp.zeros_like, state.g.params)
    zeroed["params"]["conv_6"]["bias"] = jnp.array([-2.0])
    out = state.g.apply_fn(zeroed, jax.random.normal(key, (3, 128)))
    np.testing.assert_allclose(out, np.full((3, 28, 28, 1), np.tanh(-2.0)), rtol=1e-6)


def test_every_layer_shape_matches_torch(key):
    g_sizes, n = [], 1
    for k, s, p in ((3, 1, 0), (3, 2, 0), (3, 2, 0), (2, 2, 1)):
        n = _convt_out(n, k, s, p)
        g_sizes.append(n)
    d_sizes, n = [], 28
    for k, s, p in ((3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 2, 0)):
        n = _conv_out(n, k, s, p)
        d_sizes.append(n)
    assert g_sizes == [3, 7, 15, 28] and d_sizes == [14, 7, 4, 1]

    def shapes(model, x, names):
        params = jax.eval_shape(model.init, key, x)
        _, inter = jax.eval_shape(
            lambda p, x: model.apply(p, x, capture_intermediates=True), params, x
        )
        return [inter["intermediates"][n]["__call__"][0].shape for n in names]

    g = shapes(dcgan.Generator(), jnp.zeros((2, 128)), ["conv_0", "conv_2", "conv_4", "conv_6"])
    assert g == [(2, n, n, c) for n, c in zip(g_sizes, (256, 128, 64, 1), strict=True)]
    d = shapes(
        dcgan.Discriminator(), jnp.zeros((2, 28, 28, 1)), ["conv_0", "conv_3", "conv_6", "conv_9"]
    )
    assert d == [(2, n, n, c) for n, c in zip(d_sizes, (128, 256, 256, 1), strict=True)]


def test_outputs_in_range(key):
    state = dcgan.create_state(key, dcgan.DCGANConfig())
    images = gan.generate(state.g, 3 * np.asarray(jax.random.normal(key, (4, 128))))
    assert images.shape == (4, 28, 28, 1) and np.abs(images).max() <= 1.0
    assert np.std(images) > 0
    logits = jax.jit(state.d.apply_fn)(state.d.params, images)
    assert logits.shape == (4, 1) and np.all(np.isfinite(logits))


def test_cli_end_to_end(tmp_path):
    args = ["run", "dcgan", "--workdir", str(tmp_path), "--n-train", "40", "--epochs", "1",
            "--batch-size", "20", "--eval-samples", "100", "--epoch-eval-samples", "0",
            "--classifier-epochs", "1", "--source", "embedded"]  # fmt: skip
    assert cli.main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiment"] == "dcgan" and results["steps_per_epoch"] == 2
    assert np.isfinite(results["scores"]["fid"]) and results["fid_curve"] == [None]
    assert all((tmp_path / f).is_file() for f in results["figures"])
    assert (tmp_path / "samples" / "epoch_001.png").is_file()


def test_patch_convolutions_equal_xla_convolutions(key):
    """The matmul forms (`patch_conv`, the CPU default) and XLA's convolutions compute
    the same networks with the same parameters, forward and backward."""
    state = dcgan.create_state(key, dcgan.DCGANConfig())
    z = jax.random.normal(key, (3, 128))
    g_fast, g_xla = dcgan.Generator(128, "matmul"), dcgan.Generator(128, "xla")
    x = g_fast.apply(state.g.params, z)
    np.testing.assert_allclose(x, g_xla.apply(state.g.params, z), atol=1e-5)
    d_fast, d_xla = dcgan.Discriminator(conv_impl="matmul"), dcgan.Discriminator(conv_impl="xla")
    np.testing.assert_allclose(
        d_fast.apply(state.d.params, x), d_xla.apply(state.d.params, x), atol=1e-5
    )

    def d_loss(p, model):
        return jnp.sum(model.apply(p, x) ** 2)

    grads_fast = jax.grad(d_loss)(state.d.params, d_fast)
    grads_xla = jax.grad(d_loss)(state.d.params, d_xla)
    for a, b in zip(jax.tree.leaves(grads_fast), jax.tree.leaves(grads_xla), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_quick_preset_draws_recognisable_digits(tmp_path):
    """`reproduce --quick`'s dcgan run (biases, β1 0.5, label smoothing, a higher lr): samples
    the feature classifier spreads over the digits, label entropy ≥ 1.5 nats (ln 10 = 2.303;
    the post's bias-free recipe draws one grey blob, entropy ≈ 0)."""
    from jaxunsup.registry import EXPERIMENTS

    exp = EXPERIMENTS["dcgan"]
    cfg = exp.make_config("quick", source="embedded")
    assert cfg.use_bias and cfg.epochs * (cfg.n_train // cfg.batch_size) <= 1000
    scores = exp.run(cfg, tmp_path)["scores"]
    assert scores["label_entropy"] >= 1.5, scores
