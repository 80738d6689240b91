"""Post 001's GAN and its variants: parameter counts, LayerNorm's eps, the three updates per
image (D real, D fake, G) against a hand-written SGD version, and the CLI end to end."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import cli, data, gan, gan_simple


def _n(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
    "name, n_d, n_g",
    [
        ("mse-sgd", 784 * 200 + 200 + 200 + 1, 1 * 200 + 200 + 200 * 784 + 784),
        ("leaky-layernorm", 157_201 + 400, 157_984 + 400),  # LayerNorm(200): scale and bias
        ("randn", 157_601, 100 * 200 + 200 + 400 + 200 * 784 + 784),
    ],
)
def test_parameter_counts(key, name, n_d, n_g):
    state = gan_simple.create_state(key, gan_simple.VARIANTS[name])
    assert (_n(state.d.params), _n(state.g.params)) == (n_d, n_g)


def test_layernorm_uses_torch_eps(key):
    model = gan_simple.Discriminator(leaky_layernorm=True)
    params = model.init(key, jnp.zeros((1, 28, 28, 1)))
    x = jax.random.uniform(key, (3, 28, 28, 1))
    _, inter = model.apply(params, x, capture_intermediates=True)
    layer = jax.tree.map(np.asarray, params["params"]["model_0"])
    h = np.asarray(x).reshape(3, 784) @ layer["kernel"] + layer["bias"]  # [3, 200]
    h = np.where(h > 0, h, 0.02 * h)
    mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    expected = (h - mean) / np.sqrt(var + 1e-5)  # scale 1, bias 0 at init, as torch
    np.testing.assert_allclose(inter["intermediates"]["model_2"]["__call__"][0], expected,
                               atol=2e-5)  # fmt: skip


def test_step_is_d_real_then_d_fake_then_g_with_sgd(key):
    """Three SGD updates per image, each on the previous one's result (post 001's loop)."""
    variant = gan_simple.VARIANTS["mse-sgd"]
    state = gan_simple.create_state(key, variant)
    spec = gan_simple.spec_of(variant)
    real = jnp.asarray(data.load_mnist("test", source="embedded").images[:1])
    k_zd, k_zg, _, _ = gan.step_keys(key, 0)
    g, d = state.g, state.d

    @jax.jit
    def expected(g_p, d_p):
        def d_loss(p, x, t):
            return jnp.mean((jax.nn.sigmoid(d.apply_fn(p, x)) - t) ** 2)

        def sgd(p, grads):
            return jax.tree.map(lambda a, b: a - 0.01 * b, p, grads)

        fake = g.apply_fn(g_p, gan.noise(k_zd, 1, spec))
        d1 = sgd(d_p, jax.grad(d_loss)(d_p, real, 1.0))
        d2 = sgd(d1, jax.grad(d_loss)(d1, fake, 0.0))
        g_grads = jax.grad(lambda p: d_loss(d2, g.apply_fn(p, gan.noise(k_zg, 1, spec)), 1.0))(g_p)
        return sgd(g_p, g_grads), d2, d1

    g_new, d_new, d_after_real = expected(g.params, d.params)
    out, _ = gan_simple.train_step_for(variant)(jax.tree.map(jnp.copy, state), real, key)
    for ours, ref in ((out.g.params, g_new), (out.d.params, d_new)):
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-7)
    # the fake update really is a second step: one summed step would differ
    assert not np.allclose(jax.tree.leaves(d_new)[0], jax.tree.leaves(d_after_real)[0])


def test_unknown_variant_is_a_clear_error(tmp_path, capsys):
    args = ["run", "gan-mnist-simple", "--workdir", str(tmp_path), "--variants", "bce,wgan"]
    assert cli.main(args) == 2
    assert "variants must be a non-empty subset" in capsys.readouterr().err


def test_cli_end_to_end_two_variants(tmp_path):
    args = ["run", "gan-mnist-simple", "--workdir", str(tmp_path), "--variants", "mse-sgd,randn",
            "--n-train", "100", "--eval-samples", "100", "--epoch-eval-samples", "50",
            "--classifier-epochs", "1", "--source", "embedded"]  # fmt: skip
    assert cli.main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["variants"]) == ["mse-sgd", "randn"]
    metrics = [r["metric"] for r in results["table"]]
    assert metrics[0].startswith("D check") and metrics[1].startswith("mse-sgd")
    assert metrics[2].startswith("randn") and "accuracy" in metrics[3]
    assert 0 <= results["d_check"]["d_noise"] <= 1
    for fig in results["figures"]:
        assert (tmp_path / fig).is_file(), fig
    for name in ("mse-sgd", "randn"):
        sub = json.loads((tmp_path / name / "results.json").read_text())
        assert sub["steps_per_epoch"] == 100  # batch 1: the post's one image per step
        assert (tmp_path / name / "samples.gif").is_file()
    assert not (tmp_path / "randn" / "classifier_params").exists()  # shared, trained once
    assert (tmp_path / "classifier_params").is_dir()
