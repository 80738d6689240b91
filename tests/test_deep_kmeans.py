"""Deep K-Means (post 000 §7): assignment, gradients, schedules, compile-once, end to end."""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import augment, cli, data, deep_kmeans, metrics


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist("train", source="embedded"), data.load_mnist("test", source="embedded")


def _state(key, **kw):
    cfg = deep_kmeans.Config(**kw)
    return deep_kmeans.create_state(key, cfg, jnp.zeros((1, 28, 28, 1)))


def test_parameter_count_and_shapes(key):
    state = _state(key)
    params = state.params["params"]
    n_params = sum(x.size for x in jax.tree.leaves(params))
    # encoder 160 + 4,640 + 18,496 + 10,250; decoder 11,264 + 18,464 + 4,624 + 145; centroids 100
    assert n_params == 33_546 + 34_497 + 100
    c = np.asarray(params["centroids"])
    assert c.shape == (10, 10) and c.min() >= 0 and c.max() < 1  # torch.rand: U[0, 1)
    z, recon = state.apply_fn(state.params, jax.random.uniform(key, (3, 28, 28, 1)))
    assert z.shape == (3, 10) and recon.shape == (3, 28, 28, 1)
    assert np.all(np.asarray(z) >= 0)  # the post's ReLU after the code layer


def test_linear_code_and_output_bias(key, mnist):
    images = mnist[0].images[:200]
    bias = deep_kmeans.mean_logit(images)
    p = float(images.mean())
    np.testing.assert_allclose(1 / (1 + math.exp(-bias)), p, rtol=1e-6)
    cfg = deep_kmeans.Config(code_relu=False)
    state = deep_kmeans.create_state(key, cfg, jnp.zeros((1, 28, 28, 1)), output_bias=bias)
    np.testing.assert_allclose(state.params["params"]["decoder_7"]["bias"], [bias], rtol=1e-6)
    z, _ = state.apply_fn(state.params, jnp.asarray(images))
    assert np.asarray(z).min() < 0  # no ReLU: no unit is dead at init


def test_assignment_equals_brute_force(key):
    kz, kc = jax.random.split(key)
    z = np.asarray(jax.random.normal(kz, (257, 10)))
    c = np.asarray(jax.random.normal(kc, (7, 10)))
    # the post's per-sample loop: argmin over k of sum((z_m - c_k)^2)
    expected = [int(np.argmin(((z[m][None, :] - c) ** 2).sum(1))) for m in range(len(z))]
    np.testing.assert_array_equal(deep_kmeans.assign(jnp.asarray(z), jnp.asarray(c)), expected)


def test_clustering_gradients_reach_only_assigned_centroids(key):
    kz, kc = jax.random.split(key)
    z = jax.random.normal(kz, (6, 4))
    c = jax.random.normal(kc, (5, 4)) * 3.0
    idx = np.asarray(deep_kmeans.assign(z, c))
    grad_c = np.asarray(jax.grad(lambda c: deep_kmeans.hard_clustering_loss(z, c)[0])(c))
    # d/dc_k mean((z - c_a)^2) = -2/(B·D) Σ_{i: a_i = k} (z_i - c_k)
    expected = np.zeros_like(grad_c)
    for i, k in enumerate(idx):
        expected[k] -= 2.0 / z.size * (np.asarray(z[i]) - np.asarray(c[k]))
    np.testing.assert_allclose(grad_c, expected, atol=1e-6)
    unassigned = sorted(set(range(5)) - set(idx.tolist()))
    assert unassigned and np.all(grad_c[unassigned] == 0)
    assert np.all(np.abs(grad_c[sorted(set(idx.tolist()))]).sum(1) > 0)
    grad_z = jax.grad(lambda z: deep_kmeans.hard_clustering_loss(z, c)[0])(z)
    np.testing.assert_allclose(grad_z, 2.0 / z.size * (z - c[idx]), atol=1e-6)


def test_alpha_schedule_values():
    schedule = deep_kmeans.alpha_schedule(1e-3, 50, 200)
    got = [float(schedule(e)) for e in (0, 50, 125, 200, 299)]
    np.testing.assert_allclose(got, [1e-3 / 150, 1e-3 / 150, 5e-4, 1e-3, 1e-3], rtol=1e-6)
    # the post's loop, transcribed
    for epoch in range(0, 300, 7):
        if 50 < epoch < 200:
            alpha = 1e-3 * (epoch - 50) / 150
        elif epoch >= 200:
            alpha = 1e-3
        else:
            alpha = 1e-3 / 150
        np.testing.assert_allclose(float(jax.jit(schedule)(epoch)), alpha, rtol=1e-6)


def test_beta_schedule_is_fards_annealing():
    values = deep_kmeans.beta_values(0.1, 40)
    expected = [0.1]
    for i in range(1, 40):
        expected.append(2 ** (1 / np.log(i + 1) ** 2) * expected[-1])
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    schedule = deep_kmeans.beta_schedule(0.1, 5, 40)
    np.testing.assert_allclose([float(schedule(e)) for e in (0, 4, 5, 199, 299)],
                               [expected[0], expected[0], expected[1], expected[39],
                                expected[39]], rtol=1e-6)  # fmt: skip


def test_soft_loss_limits(key):
    kz, kc = jax.random.split(key)
    z = jax.random.normal(kz, (8, 4))
    c = jax.random.normal(kc, (3, 4))
    hard, _ = deep_kmeans.hard_clustering_loss(z, c)
    sharp, idx = deep_kmeans.soft_clustering_loss(z, c, 1e4)
    np.testing.assert_allclose(sharp, hard, rtol=1e-5)
    np.testing.assert_array_equal(idx, deep_kmeans.assign(z, c))
    flat, _ = deep_kmeans.soft_clustering_loss(z, c, 0.0)  # uniform weights
    d2 = ((np.asarray(z)[:, None, :] - np.asarray(c)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(flat, d2.mean() / 4, rtol=1e-5)


def _dec_numpy(z, c, z_target):
    """DEC (Xie et al. 2016, eqs. 1-3) in float64 NumPy: q, p and KL(P||Q) averaged over rows."""

    def q_of(z):
        k = 1.0 / (1.0 + ((z[:, None, :] - c[None]) ** 2).sum(-1))
        return k / k.sum(1, keepdims=True)

    q, qt = q_of(z), q_of(z_target)
    p = qt**2 / qt.sum(0)
    p /= p.sum(1, keepdims=True)
    return q, p, (p * np.log(p / q)).sum(1).mean()


def test_dec_assignment_target_and_kl_match_the_paper(key):
    kz, kc, kt = jax.random.split(key, 3)
    z = np.asarray(jax.random.normal(kz, (9, 4)), np.float64)
    c = np.asarray(jax.random.normal(kc, (3, 4)), np.float64) * 2.0
    zt = z + 0.3 * np.asarray(jax.random.normal(kt, (9, 4)))
    q, p, kl = _dec_numpy(z, c, zt)
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    np.testing.assert_allclose(np.exp(deep_kmeans.student_t(f32(z), f32(c))), q, rtol=1e-5)
    np.testing.assert_allclose(deep_kmeans.dec_target(f32(_dec_numpy(zt, c, zt)[0])), p, rtol=1e-5)
    loss, idx = deep_kmeans.dec_clustering_loss(f32(z), f32(c), f32(zt))
    np.testing.assert_allclose(loss, kl, rtol=1e-4)
    np.testing.assert_array_equal(idx, deep_kmeans.assign(f32(z), f32(c)))  # argmax q = nearest


def test_dec_gradients_are_the_papers(key):
    """Xie et al. eq. 4-5 with P held fixed, per row divided by B (the loss is a batch mean):
    dL/dz_i = 2 Σ_j (1+‖z_i−μ_j‖²)⁻¹ (p_ij − q_ij)(z_i − μ_j), dL/dμ_j = −2 Σ_i (same)."""
    kz, kc = jax.random.split(key)
    z = np.asarray(jax.random.normal(kz, (7, 3)), np.float64)
    c = np.asarray(jax.random.normal(kc, (4, 3)), np.float64)
    q, p, _ = _dec_numpy(z, c, z)
    diff = z[:, None, :] - c[None]  # [B, K, D]
    w = ((p - q) / (1.0 + (diff**2).sum(-1)))[..., None]  # [B, K, 1]
    grad_z_ref = 2 * (w * diff).sum(1) / len(z)
    grad_c_ref = -2 * (w * diff).sum(0) / len(z)
    zj, cj = jnp.asarray(z, jnp.float32), jnp.asarray(c, jnp.float32)
    # the target comes from z itself, through a stop-gradient: P is a constant
    gz, gc = jax.grad(lambda z, c: deep_kmeans.dec_clustering_loss(z, c, z)[0], (0, 1))(zj, cj)
    np.testing.assert_allclose(gz, grad_z_ref, atol=1e-6)
    np.testing.assert_allclose(gc, grad_c_ref, atol=1e-6)


def test_dec_loss_weights_and_clean_target(key, mnist):
    state = _state(key, code_relu=False)
    batch = jnp.asarray(mnist[0].images[:16])
    params, apply = state.params, state.apply_fn
    z, recon = apply(params, batch)
    rec = float(jnp.mean((recon - batch) ** 2))
    kl, _ = deep_kmeans.dec_clustering_loss(z, params["params"]["centroids"], z)
    loss, aux = deep_kmeans.loss_fn(params, apply, batch, key, alpha=0.5, assignment="dec",
                                    rec_weight=0.25)  # fmt: skip
    np.testing.assert_allclose(loss, 0.25 * rec + 0.5 * float(kl), rtol=1e-5)
    # augmented: the model sees a warped batch; DEC's target comes from the clean one
    loss_aug, aux_aug = deep_kmeans.loss_fn(params, apply, batch, key, alpha=1.0,
                                            assignment="dec", augment=True)  # fmt: skip
    warped = augment.random_affine(batch, key)
    zw, recon_w = apply(params, warped)
    z_clean = apply(params, batch, method="encode")
    kl_aug, _ = deep_kmeans.dec_clustering_loss(zw, params["params"]["centroids"], z_clean)
    np.testing.assert_allclose(aux_aug["rec"], jnp.mean((recon_w - warped) ** 2), rtol=1e-5)
    np.testing.assert_allclose(aux_aug["clu"], kl_aug, rtol=1e-5)
    assert not np.allclose(aux_aug["rec"], aux["rec"])


def test_manifold_centroids_recover_separated_groups():
    """Ten groups on curved 10-d shells (the t-SNE map separates them): each centroid is the
    mean of one whole group."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 10)) * 8
    t = rng.uniform(0, 2 * np.pi, size=(600, 1))
    arc = np.concatenate([np.cos(t), np.sin(t), np.zeros((600, 8))], 1)  # a ring per group
    y = np.repeat(np.arange(10), 60)
    z = (centres[y] + arc + 0.05 * rng.normal(size=(600, 10))).astype(np.float32)
    got = deep_kmeans.manifold_centroids(z, 10, seed=0)
    means = np.stack([z[y == k].mean(0) for k in range(10)])
    order = [int(np.argmin(((means - g) ** 2).sum(1))) for g in got]
    assert sorted(order) == list(range(10))
    np.testing.assert_allclose(got, means[order], atol=1e-5)


def test_manifold_centroids_fill_an_empty_cluster_with_a_latent(monkeypatch):
    """A k-means result that leaves cluster 2 empty: its centroid is one of the latents (a
    NaN mean would poison training); the others are their clusters' means."""
    from jaxunsup import kmeans

    class TwoOfThree:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self, emb):
            self.labels_ = np.arange(len(emb)) % 2  # clusters 0 and 1 only
            return self

    monkeypatch.setattr(kmeans, "KMeans", TwoOfThree)
    z = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    got = deep_kmeans.manifold_centroids(z, 3, seed=0)
    np.testing.assert_allclose(got[:2], [z[0::2].mean(0), z[1::2].mean(0)], rtol=1e-6)
    assert np.isfinite(got).all()
    assert np.any(np.all(z == got[2], axis=1))


def test_cluster_acc_of_a_permuted_labelling_is_one():
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3, 3])
    perm = np.array([2, 3, 0, 1])
    assert metrics.cluster_acc(y, perm[y]) == 1.0
    assert metrics.cluster_acc(y, np.zeros_like(y)) == pytest.approx(3 / 9)


def test_step_compiles_once_and_follows_the_epoch(key, mnist, compile_counter):
    cfg = deep_kmeans.Config(t1=1, t2=3, assignment="soft", beta_epochs=2)
    state = deep_kmeans.create_seed_states(cfg, jnp.zeros((1, 28, 28, 1)))
    step = functools.partial(
        deep_kmeans.seeds_step,
        step=functools.partial(deep_kmeans.train_step, cfg=cfg, steps_per_epoch=2),
    )
    batch = jnp.asarray(mnist[0].images[:16])[:, None]  # [B, S=1, 28, 28, 1]
    state, m = step(state, batch, key)
    alphas, betas = [float(m["alpha"])], [float(m["beta"])]
    with compile_counter:
        for _ in range(7):
            state, m = step(state, batch, key)
            alphas.append(float(m["alpha"]))
            betas.append(float(m["beta"]))
    assert compile_counter.count == 0
    epochs = np.arange(8) // 2
    alpha = deep_kmeans.alpha_schedule(cfg.lam, 1, 3)
    np.testing.assert_allclose(alphas, [float(alpha(e)) for e in epochs], rtol=1e-6)
    beta = deep_kmeans.beta_values(cfg.beta0, cfg.beta_values)
    np.testing.assert_allclose(betas, beta[epochs // 2], rtol=1e-6)


def test_loss_decreases(key, mnist):
    images = mnist[0].images[:64]
    cfg = deep_kmeans.Config(code_relu=False, t1=0, t2=1)
    bias = deep_kmeans.mean_logit(images)
    state = deep_kmeans.create_state(key, cfg, jnp.zeros((1, 28, 28, 1)), output_bias=bias)
    step = functools.partial(deep_kmeans.train_step, cfg=cfg, steps_per_epoch=1)
    batch = jnp.asarray(images)
    state, m0 = step(state, batch, key)
    for _ in range(40):
        state, m = step(state, batch, key)
    assert float(m["rec"]) < 0.8 * float(m0["rec"]) and float(m["loss"]) < float(m0["loss"])


def test_seed_states_are_the_per_seed_states(key):
    cfg = deep_kmeans.Config(n_seeds=3, seed=5, code_relu=False)
    example = jnp.zeros((1, 28, 28, 1))
    stacked = deep_kmeans.create_seed_states(cfg, example, output_bias=-1.7)
    assert int(jnp.sum(stacked.step)) == 0
    for s in range(3):
        alone = deep_kmeans.create_state(jax.random.key(5 + s), cfg, example, output_bias=-1.7)
        ours = jax.tree.map(lambda a, s=s: a[s], stacked.params)
        jax.tree.map(
            functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7), ours, alone.params
        )


def test_kmeans_centroids_match_scikit_learn(key, mnist):
    from sklearn.cluster import KMeans

    images = mnist[0].images[:400]
    cfg = deep_kmeans.Config(n_seeds=2, code_relu=False)
    state = deep_kmeans.create_seed_states(cfg, jnp.asarray(images[:1]))
    centres = deep_kmeans.kmeans_centroids(state, images, cfg)  # [S, K, D]
    z, _ = deep_kmeans.encode_assign(state, images)  # [N, S, D]
    assert centres.shape == (2, 10, 10)
    for s in range(2):
        d2 = ((z[:, s, None, :] - centres[s][None]) ** 2).sum(-1)  # [N, K]
        ours = d2.min(1).sum()
        ref = KMeans(10, n_init=10, random_state=0).fit(z[:, s]).inertia_
        assert ours <= 1.01 * ref  # as good a k-means optimum as scikit-learn's
        assert len(np.unique(d2.argmin(1))) == 10


def test_quick_preset_finds_real_clusters(tmp_path, mnist):
    """The quick run gives real clusters (it once put every digit in one cluster, accuracy 0.11,
    after 14 pretraining steps). Seed 0 gives 0.67 / NMI 0.60, near scikit-learn's k-means on
    the raw pixels (0.60); other draws give 0.57-0.69, so the bounds leave room for that."""
    cfg = deep_kmeans.Config(**deep_kmeans.QUICK)
    results = deep_kmeans.run(cfg, tmp_path, data=mnist)
    train, _ = deep_kmeans.split_for_protocol(*mnist, cfg)
    state, _ = deep_kmeans.restore(tmp_path)
    _, clusters = deep_kmeans.encode_assign(state, train.images)
    assert len(np.unique(clusters[:, 0])) == 10
    acc = metrics.cluster_acc(train.labels, clusters[:, 0])
    assert acc == pytest.approx(results["final"]["acc"][0])  # the restored model, re-scored
    assert acc > 0.45 and results["final"]["nmi"][0] > 0.4


def test_seed_data_and_protocols(mnist):
    cfg = deep_kmeans.Config(n_seeds=3, protocol="all", n_train=50, n_test=30, batch_size=64)
    train, test = deep_kmeans.split_for_protocol(*mnist, cfg)
    assert train is test and len(train.images) == 80
    np.testing.assert_array_equal(train.labels[50:], mnist[1].labels[:30])
    x = deep_kmeans.seed_data(train.images, cfg)
    assert x.shape == (80, 3, 28, 28, 1)
    np.testing.assert_array_equal(x[:, 0], train.images)  # seed 0 sees the data as it is
    assert not np.array_equal(x[:, 1], x[:, 0])
    flat = train.images.reshape(80, -1)
    # every other seed sees the same images, in another order
    np.testing.assert_array_equal(np.sort(x[:, 1].reshape(80, -1), 0), np.sort(flat, 0))


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"lr": -1.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"t1": 200, "t2": 50}, "t1 < t2"),
        ({"assignment": "fuzzy"}, "assignment"),
        ({"init": "tsne"}, "init"),
        ({"rec_weight": -1.0}, "rec_weight"),
        ({"rec_weight": float("inf")}, "rec_weight"),
        ({"lam": float("nan")}, "lam"),
        ({"n_train": 20}, "batch_size=128"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, mnist, overrides, match):
    with pytest.raises(ValueError, match=match):
        deep_kmeans.run(deep_kmeans.Config(**overrides), tmp_path, data=mnist)


def test_bad_images_are_a_clear_error(tmp_path, mnist):
    train, test = mnist
    bad = train._replace(images=train.images[:200].copy(), labels=train.labels[:200])
    bad.images[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        deep_kmeans.run(deep_kmeans.Config(), tmp_path, data=(bad, test))
    rgb = train._replace(images=np.zeros((200, 28, 28, 3), np.float32), labels=train.labels[:200])
    with pytest.raises(ValueError, match="shape"):
        deep_kmeans.run(deep_kmeans.Config(), tmp_path, data=(rgb, test))


def test_cli_dec_recipe_end_to_end(tmp_path, capsys):
    """The best recipe's options (augmented pretraining, t-SNE centroids, DEC) run together."""
    args = ["run", "deep-kmeans", "--workdir", str(tmp_path), "--source", "embedded",
            "--protocol", "all", "--n-train", "96", "--n-test", "32", "--batch-size", "32",
            "--init", "pretrain-tsne", "--augment", "--assignment", "dec", "--rec-weight", "0",
            "--lam", "1", "--t1", "0", "--t2", "1", "--pretrain-epochs", "1", "--epochs", "2",
            "--no-code-relu", "--output-bias", "mean", "--eval-every", "1",
            "--tsne-points", "30"]  # fmt: skip
    assert cli.main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "pretrain" / "checkpoints").exists()
    assert results["curves"]["epoch"] == [0, 1, 2] and 0 < results["final"]["acc"][0] <= 1
    history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["alpha"] == 1.0 for r in history)


def test_cli_end_to_end(tmp_path, capsys):
    args = ["run", "deep-kmeans", "--workdir", str(tmp_path), "--source", "embedded",
            "--protocol", "all", "--n-train", "96", "--n-test", "32", "--batch-size", "32",
            "--init", "pretrain-kmeans", "--pretrain-epochs", "1", "--epochs", "2",
            "--assignment", "soft", "--no-code-relu", "--output-bias", "mean",
            "--n-seeds", "2", "--eval-every", "1", "--tsne-points", "30"]  # fmt: skip
    assert cli.main(args) == 0
    assert "cluster acc" in capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    for name in results["figures"]:
        assert (tmp_path / name).exists()
    assert len(results["figures"]) == 5
    assert results["seeds"] == [0, 1] and results["n_scored"] == 128
    assert len(results["curves"]["acc"]) == 2 and results["curves"]["epoch"] == [0, 1, 2]
    assert all(0 < a <= 1 for a in results["final"]["acc"])
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "pretrain" / "metrics.jsonl").exists()
    state, cfg = deep_kmeans.restore(tmp_path)
    assert cfg.n_seeds == 2 and state.params["params"]["centroids"].shape == (2, 10, 10)
    # the restored models assign the scored images as the run reported
    all_images = np.concatenate(
        [data.load_mnist(s, source="embedded").images[:n] for s, n in (("train", 96), ("test", 32))]
    )
    labels = np.concatenate(
        [data.load_mnist(s, source="embedded").labels[:n] for s, n in (("train", 96), ("test", 32))]
    )
    _, clusters = deep_kmeans.encode_assign(state, all_images)
    acc = deep_kmeans.scores(labels, clusters)["acc"]
    np.testing.assert_allclose(acc, results["final"]["acc"], rtol=1e-6)
