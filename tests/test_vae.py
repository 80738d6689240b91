"""ConvVAE of post 003: architecture rules, losses in closed form, IWAE, training, end to end."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from jaxunsup import checkpoint, cli, data, training, vae, vae_model


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist("train", source="embedded"), data.load_mnist("test", source="embedded")


def _shapes(cfg, size):
    """Parameter shapes and output shapes without compiling anything (eval_shape)."""
    model = vae.make_model(cfg, size)
    x = jax.ShapeDtypeStruct((3, size, size, cfg.channels[0]), jnp.float32)
    eps = jax.ShapeDtypeStruct((3, cfg.latent_dim), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x, eps)
    out = jax.eval_shape(model.apply, params, x, eps)
    return params, out


def test_post_configuration_parameter_count_and_layer_names():
    params, (xhat, mean, logvar) = _shapes(vae.Config(), 28)
    # enc: Conv(1,32) 320 + Conv(32,64) 18,496 + Linear(3136,4) 12,548;
    # dec: Linear(2,3136) 9,408 + ConvT(64,64) 36,928 + ConvT(64,32) 18,464 + Conv(32,1,4×4) 513
    assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)) == 96_677
    names = set(params["params"])
    assert names == {"seq_enc_0", "seq_enc_2", "seq_enc_5", "seq_dec_0", "seq_dec_3",
                     "seq_dec_5", "seq_dec_7"}  # fmt: skip
    assert params["params"]["seq_dec_7"]["kernel"].shape == (4, 4, 32, 1)  # the post's 4×4 Conv
    assert xhat.shape == (3, 28, 28, 1) and mean.shape == logvar.shape == (3, 2)


@pytest.mark.parametrize(
    "size, channels, k, s, expected",
    [
        (28, (1, 32, 64), 3, 2, (7, 31, "conv", 4)),  # the post: 28→14→7, 7→15→31, Conv 4×4
        (32, (1, 16, 32, 64), 3, 2, (4, 39, "conv", 8)),  # 32→16→8→4, 4→9→19→39
        (28, (1, 8, 16), 3, 4, (2, 27, "deconv", 2)),  # 28→7→2, 2→7→27 < 28: final ConvT
    ],
)
def test_architecture_follows_the_post_rules(size, channels, k, s, expected):
    assert vae.architecture(size, channels, k, s) == expected
    cfg = vae.Config(channels=channels, kernel_size=k, stride=s, latent_dim=3)
    params, (xhat, mean, _) = _shapes(cfg, size)
    assert xhat.shape == (3, size, size, channels[0]) and mean.shape == (3, 3)
    enc, last = expected[0], f"seq_dec_{3 + 2 * (len(channels) - 1)}"
    assert params["params"]["seq_dec_0"]["kernel"].shape == (3, enc * enc * channels[-1])
    assert params["params"][last]["kernel"].shape[:2] == (expected[3], expected[3])


def test_channel_list_is_not_mutated():
    channels = [1, 32, 64]
    vae.architecture(28, channels)
    _shapes(vae.Config(channels=channels), 28)
    assert channels == [1, 32, 64]  # the post's `channels.reverse()` mutated its argument


def test_too_small_input_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        vae.architecture(4, (1, 8, 16), kernel_size=7)  # 4 → 0
    with pytest.raises(ValueError, match="channels"):
        vae.architecture(28, (1,))


def test_patch_conv_path_equals_layers_path(key):
    """The post's model computes the same function and gradients with conv_impl="matmul"
    (`patch_conv`'s forms) and "xla" (XLA's convolutions); the parameters agree."""
    fast = vae.make_model(vae.Config(conv_impl="matmul"), 28)
    ref = vae.make_model(vae.Config(conv_impl="xla"), 28)
    x = jax.random.uniform(key, (4, 28, 28, 1))
    eps = jax.random.normal(key, (4, 2))
    shapes = jax.eval_shape(fast.init, key, x, eps)
    assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(
        jnp.shape, jax.eval_shape(ref.init, key, x, eps)
    )
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: rng.uniform(-0.2, 0.2, p.shape).astype(np.float32), shapes)

    @jax.jit
    def outputs_and_grads(params, x, eps):
        fns = (fast.apply, ref.apply)
        grads = [jax.grad(lambda p, f=f: vae.loss_from_eps(p, f, x, eps)[0])(params) for f in fns]
        return [f(params, x, eps) for f in fns], grads

    (ours, theirs), (g_ours, g_theirs) = outputs_and_grads(params, x, eps)
    for a, b in zip(ours, theirs, strict=True):  # xhat, mean, logvar
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_theirs), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_kl_divergence_closed_form():
    z = jnp.zeros((3, 4))
    np.testing.assert_array_equal(vae.kl_divergence(z, z), np.zeros(3))
    rng = np.random.default_rng(0)
    mean, logvar = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    # KL(N(μ, σ²) || N(0, 1)) = ½ Σ (σ² + μ² − 1 − ln σ²)
    expected = 0.5 * np.sum(np.exp(logvar) + mean**2 - 1.0 - logvar, axis=1)
    got = vae.kl_divergence(jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bernoulli_nll_matches_the_posts_formula_and_stays_finite():
    rng = np.random.default_rng(1)
    logits = rng.uniform(-6, 6, size=(4, 5, 5, 1))
    x = rng.uniform(0, 1, size=logits.shape)
    p = 1.0 / (1.0 + np.exp(-logits))
    post = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))  # BCE(sigmoid(l))
    got = vae.bernoulli_nll(jnp.asarray(logits, jnp.float32), jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got, post, rtol=1e-5)
    # saturated logits: torch's BCELoss(sigmoid) would hit log(0) and clamp; ours is exact
    sat = jnp.array([[1e4, -1e4, 100.0, -100.0]])
    got = vae.bernoulli_nll(sat, jnp.array([[0.0, 1.0, 1.0, 0.0]]))
    np.testing.assert_allclose(got, [2e4], rtol=1e-6)
    # its gradient is sigmoid(l) − x, also at 0 (where max and |·| have kinks) and saturated
    ls = jnp.array([[0.0, 0.0, 3.0, -3.0, 1e4, -1e4]])
    xs = jnp.array([[0.0, 1.0, 0.25, 0.75, 0.0, 1.0]])
    grad = jax.grad(lambda v: jnp.sum(vae.bernoulli_nll(v, xs)))(ls)
    np.testing.assert_allclose(grad, special.expit(np.asarray(ls)) - xs, atol=1e-7)


def test_manifold_latents_are_normal_quantiles():
    z = vae.manifold_latents(20)
    q = stats.norm.ppf(np.linspace(0.05, 0.95, 20))
    assert z.shape == (400, 2)
    np.testing.assert_allclose(z[:20, 0], q, rtol=1e-6)  # z₁ grows along a row
    np.testing.assert_allclose(z[::20, 1], q[::-1], rtol=1e-6)  # z₂ falls down the rows


TINY = ["--epochs", "1", "--channels", "1,8", "--iwae-samples", "10", "--iwae-images", "20",
        "--source", "embedded"]  # fmt: skip


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`jaxunsup run vae-z2` end to end, with a one-conv ConvVAE (1, 8) for one epoch."""
    workdir = tmp_path_factory.mktemp("vae-z2")
    assert cli.main(["run", "vae-z2", "--workdir", str(workdir), *TINY]) == 0
    return workdir, json.loads((workdir / "results.json").read_text())


@pytest.fixture(scope="module")
def tiny(cli_run):
    """The trained state, restored from the CLI run's checkpoint."""
    cfg = vae.Config(channels=(1, 8))
    target = vae.create_state(jax.random.key(9), cfg, jnp.zeros((1, 28, 28, 1)))
    state, epoch = training.restore_latest(cli_run[0], target)
    assert epoch == 1
    return state


def test_cli_end_to_end(cli_run, tiny, mnist):
    workdir, results = cli_run
    assert results["experiment"] == "vae-z2" and results["n_train"] == 4000
    assert json.loads((workdir / "config.json").read_text())["channels"] == [1, 8]
    figures = ["loss.png", "latent.png", "manifold.png", "samples.png", "reconstructions.png"]
    assert results["figures"] == figures
    for name in ("metrics.jsonl", *figures):
        assert (workdir / name).stat().st_size > 0
    assert results["test_loss"] < results["train_loss"][0] < 550  # BCE of p = ½ is 543 nats
    assert results["test_nll_iwae"] < results["test_loss_on_iwae_images"]
    assert checkpoint.latest_step(workdir / "checkpoints") == 1
    # the restored checkpoint reproduces the reported test loss (same per-image noise)
    key_eval = jax.random.split(jax.random.key(0), 5)[2]
    test_loss = -vae.elbo(tiny, mnist[1].images, key_eval).mean()
    np.testing.assert_allclose(test_loss, results["test_loss"], rtol=1e-5)


def test_iwae_with_one_sample_is_the_sampled_negative_elbo(tiny, mnist):
    x = mnist[1].images[:6]
    key = jax.random.key(3)
    nll = vae.iwae_nll(tiny, x, key, k=1)
    eps = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, i), (1, 2)))[0]
                    for i in range(len(x))])  # fmt: skip  # [6, 2]: image i's noise
    mean, logvar = (np.asarray(a, np.float64) for a in vae.encode(tiny, x))
    sd = np.exp(0.5 * logvar)
    z = mean + sd * eps  # [6, 2]
    probs = np.asarray(vae.decode(tiny, z), np.float64)  # [6, 28, 28, 1]
    xx = np.asarray(x, np.float64)
    bce = -np.sum(xx * np.log(probs) + (1 - xx) * np.log1p(-probs), axis=(1, 2, 3))
    log_q = stats.norm.logpdf(z, mean, sd).sum(1)
    log_p = stats.norm.logpdf(z).sum(1)
    np.testing.assert_allclose(nll, bce + log_q - log_p, rtol=1e-4)


def test_iwae_bound_is_tighter_than_the_elbo(tiny, mnist):
    x = mnist[1].images
    neg_elbo = -vae.elbo(tiny, x, jax.random.key(4))[:100]
    nll_100 = vae.iwae_nll(tiny, x[:100], jax.random.key(5), k=100)
    se = np.std(neg_elbo) / np.sqrt(len(neg_elbo))
    assert nll_100.mean() < neg_elbo.mean() - 2 * se  # tighter by more than the noise
    # E[−log w] over z ~ q (one-sample bound, sampled KL) equals the analytic-KL −ELBO
    eps = jax.random.normal(jax.random.key(6), (100, 100, 2))
    log_w = jax.jit(vae.log_importance_weights, static_argnums=1)(
        tiny.params, tiny.apply_fn, jnp.asarray(x[:100]), eps
    )
    mc = -np.asarray(log_w).mean(1)  # [100], each a 100-sample average
    diff = mc - neg_elbo  # paired per image: only the Monte-Carlo noise is left
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff))


def test_loss_decreases_and_step_compiles_once(tiny, mnist, compile_counter):
    state = jax.tree.map(jnp.array, tiny)  # a copy: the step donates its input state
    start = int(state.step)
    batch = jnp.asarray(mnist[0].images[:100])
    key = jax.random.key(0)
    state, m0 = vae.train_step(state, batch, key)
    with compile_counter:
        for _ in range(15):
            state, m = vae.train_step(state, batch, key)
    assert compile_counter.count == 0
    assert float(m["loss"]) < 0.9 * float(m0["loss"]) and int(state.step) == start + 16


def test_micro_batched_step_equals_the_whole_batch_step(tiny, mnist):
    """`train_step` (gradients over micro-batches of 20) gives the step a whole-batch
    gradient gives: same ε, loss, metrics and parameters after one Adam step."""
    batch, key = jnp.asarray(mnist[0].images[:100]), jax.random.key(3)
    whole = functools.partial(training.gradient_step, loss_fn=vae.loss_fn)
    copy = functools.partial(jax.tree.map, jnp.array)  # the steps donate their input state
    ours, m_ours = vae.train_step(copy(tiny), batch, key, micro_batch=20)
    ref, m_ref = whole(copy(tiny), batch, key)
    for name in ("loss", "bce", "kl"):
        np.testing.assert_allclose(m_ours[name], m_ref[name], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(ours.params), jax.tree.leaves(ref.params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # a batch of 7 (prime): no micro-batches, the whole-batch computation
    small = batch[:7]
    ours, _ = vae.train_step(copy(tiny), small, key, micro_batch=20)
    ref, _ = whole(copy(tiny), small, key)
    for a, b in zip(jax.tree.leaves(ours.params), jax.tree.leaves(ref.params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_evaluation_in_parts_equals_one_pass(tiny, mnist, monkeypatch):
    """The importance weights and the ELBO terms computed in 20-row parts (`vae.in_parts`,
    the CPU default: a `lax.map` over the parts) equal one pass over all rows: each sample is
    scored against its own image, in order."""
    x = jnp.asarray(mnist[1].images[:40])
    eps = jax.random.normal(jax.random.key(7), (40, 5, 2))  # 200 decoder rows
    elbo_terms = functools.partial(vae.negative_elbo_terms, tiny.params, tiny.apply_fn)

    def run():  # new functions each time: jax caches traces by function
        def weights():
            return vae.log_importance_weights(tiny.params, tiny.apply_fn, x, eps)

        def terms():
            return vae.in_parts(elbo_terms, x, eps[:, 0])

        scans = [  # a lax.map at the top: the parts
            any(e.primitive.name == "scan" for e in jax.make_jaxpr(f)().eqns)
            for f in (weights, terms)
        ]
        return scans, jax.jit(weights)(), jax.jit(terms)()

    monkeypatch.setattr(vae_model, "default_micro_batch", lambda batch: 20)
    scans, w_parts, t_parts = run()
    assert scans == [True, True]  # 10 and 2 parts
    monkeypatch.setattr(vae_model, "default_micro_batch", lambda batch: batch)
    scans, w_whole, t_whole = run()
    assert scans == [False, False]
    np.testing.assert_allclose(w_parts, w_whole, rtol=1e-5)
    for a, b in zip(t_parts, t_whole, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    # NumPy reference: sample j of image i scored against image i
    mean, logvar = (np.asarray(a, np.float64) for a in vae.encode(tiny, x))
    sd = np.exp(0.5 * logvar)[:, None]  # [40, 1, 2]
    z = mean[:, None] + sd * np.asarray(eps, np.float64)  # [40, 5, 2]
    probs = np.asarray(vae.decode(tiny, z.reshape(200, 2)), np.float64).reshape(40, 5, -1)
    xx = np.asarray(x, np.float64).reshape(40, 1, -1)
    log_px = np.sum(xx * np.log(probs) + (1 - xx) * np.log1p(-probs), axis=-1)
    log_q = stats.norm.logpdf(z, mean[:, None], sd).sum(-1)
    ref = log_px + stats.norm.logpdf(z).sum(-1) - log_q  # [40, 5]
    np.testing.assert_allclose(w_whole, ref, rtol=1e-4)


# The quick presets' criteria (a demo whose models visibly work). Bounds with room for other
# draws: 20 epochs at seed 0 gave −ELBO 165.8 (z=2) and 138.8 (z=4); after 6 epochs the z=2
# manifold was grey blobs at FD ≈ 600 in the project's classifier features, after 25, FD ≈ 320.
@pytest.mark.slow
@pytest.mark.parametrize("name, bound", [("vae-z2", 170.0), ("vae-z4", 150.0)])
def test_quick_preset_reaches_its_bound_and_draws_digits(tmp_path, mnist, name, bound):
    from jaxunsup import fid
    from jaxunsup.registry import EXPERIMENTS

    exp = EXPERIMENTS[name]
    cfg = exp.make_config("quick", source="embedded")
    results = exp.run(cfg, tmp_path / "run", data=mnist)
    assert results["test_loss"] <= bound
    assert results["test_nll_iwae"] < results["test_loss_on_iwae_images"]
    target = vae.create_state(jax.random.key(9), cfg, jnp.zeros((1, 28, 28, 1)))
    state, _ = training.restore_latest(tmp_path / "run", target)
    if cfg.latent_dim == 2:  # the manifold figure's 400 digits
        images = vae.decode(state, vae.manifold_latents(20))
    else:
        images = vae.sample(state, jax.random.key(1), 400)
    clf = fid.load_or_train_classifier(tmp_path / "classifier", *mnist)
    reference = fid.gaussian_stats(fid.predict(clf.params, mnist[1].images)[1])
    assert fid.score(clf, images, reference)["fid"] < 450  # digits, not blobs


def test_default_micro_batch_splits_on_cpu_only(monkeypatch):
    """20-row micro-batches on CPU (cache-sized); one whole-batch computation elsewhere."""
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert vae.default_micro_batch(100) == vae.MICRO_BATCH == 20
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert vae.default_micro_batch(100) == 100
    assert training.micro_batch_size(100, vae.default_micro_batch(100)) == 100


def test_decoder_jacobian_by_forward_and_reverse_mode(tiny):
    """d pixels / d z (latent geometry: a pull-back metric, a tangent space) by forward mode
    and by reverse mode agree and match central differences: no layer on the decoder's path
    is reverse-only (a custom VJP would make `jacfwd` raise)."""
    z = jnp.array([[0.3, -0.7]])

    def pixels(z):
        return tiny.apply_fn(tiny.params, z, method="decode").reshape(-1)  # [784]

    forward, reverse = jax.jacfwd(pixels)(z)[:, 0], jax.jacrev(pixels)(z)[:, 0]  # [784, 2]
    np.testing.assert_allclose(forward, reverse, rtol=1e-4, atol=1e-6)
    h = 1e-3  # small: a wider step crosses ReLU kinks
    for i in range(2):
        step = h * jnp.eye(2)[i][None]
        central = (pixels(z + step) - pixels(z - step)) / (2 * h)
        np.testing.assert_allclose(forward[:, i], central, atol=2e-3)
    assert float(jnp.max(jnp.abs(forward))) > 1e-3  # the decoder depends on z at all


def test_sample_is_deterministic_per_key(tiny):
    images = vae.sample(tiny, jax.random.key(7), 100)
    assert images.shape == (100, 28, 28, 1) and np.all((images > 0) & (images < 1))
    np.testing.assert_array_equal(images, vae.sample(tiny, jax.random.key(7), 100))
    assert not np.array_equal(images, vae.sample(tiny, jax.random.key(8), 100))


@pytest.mark.parametrize(
    "kw, match",
    [({"lr": -1.0}, "lr"), ({"batch_size": 0}, "batch_size"), ({"latent_dim": 0}, "latent_dim"),
     ({"iwae_images": 0}, "iwae_images"), ({"channels": (3, 8)}, "channels"),
     ({"micro_batch": 0}, "micro_batch"),
     ({"channels": (1,)}, "channels")],
)  # fmt: skip
def test_bad_config_is_rejected_before_training(tmp_path, mnist, kw, match):
    with pytest.raises(ValueError, match=match):
        vae.run(vae.Config(**kw), tmp_path, data=mnist)


@pytest.mark.parametrize(
    "transform, match",
    [(lambda x: x[:, :, :20], "square"), (lambda x: np.where(x > 0.5, np.nan, x), "NaN"),
     (lambda x: x * 255.0, r"\[0, 1\]"), (lambda x: np.repeat(x, 3, axis=3), "channels")],
)  # fmt: skip
def test_bad_images_are_rejected(tmp_path, mnist, transform, match):
    train, test = mnist
    bad = train._replace(images=transform(train.images[:10]))
    with pytest.raises(ValueError, match=match):
        vae.run(vae.Config(), tmp_path, data=(bad, test))
