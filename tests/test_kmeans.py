"""k-means: scikit-learn's answers from the same init, the post's replay, policies, API, inputs.

Shapes and static options are shared between tests on purpose: each distinct combination
compiles the core once (about a second on a 2-core CPU).
"""

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from jaxunsup import kmeans as km
from jaxunsup.kmeans import KMeans

N, D, K, CHUNK = 600, 8, 5, 128  # 600 = 4·128 + 88: the last chunk overlaps the one before
assert K * (D + 1) > km._SMALL  # these shapes take the segment-sum path; the 2-D tests the other


def blobs(seed, n=N, d=D, k=K, std=2.0):
    x, y = make_blobs(n, d, centers=k, cluster_std=std, random_state=seed)
    return x.astype(np.float32), y


def first_rows_init(x, seed, k=K):
    return x[np.random.default_rng(seed).choice(len(x), k, replace=False)]


def post_loop_numpy(x, centroids, max_iteration):
    """Post 000 §1's `kmeans`, transcribed to NumPy (torch.rand replaced by `centroids`)."""
    c = centroids.copy()
    for update in range(max_iteration):
        y_assign = np.array([np.argmin(np.sum((x[m] - c) ** 2, axis=1)) for m in range(len(x))])
        if update != max_iteration - 1:
            for i in range(len(c)):
                idx = np.where(y_assign == i)[0]
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore", RuntimeWarning)  # mean of nothing: NaN
                    c[i] = np.mean(x[idx], axis=0)
    return y_assign, c


def test_hand_computed_four_points():
    x = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], np.float32)
    m = KMeans(2, init=np.array([[0, 0], [10, 0]])).fit(x)
    np.testing.assert_allclose(m.cluster_centers_, [[0, 0.5], [10, 0.5]])
    np.testing.assert_array_equal(m.labels_, [0, 0, 1, 1])
    assert m.inertia_ == pytest.approx(4 * 0.25)
    assert m.n_iter_ == 2  # sweep 1 moves the centres, sweep 2 changes no label
    np.testing.assert_allclose(m.transform(x[:1]), [[0.5, np.hypot(10, 0.5)]], rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_lloyd_from_same_init(seed, weighted):
    x, _ = blobs(seed, std=3.0)  # overlapping blobs: several sweeps before convergence
    init = first_rows_init(x, seed)
    w = np.random.default_rng(seed).uniform(0.1, 3.0, N) if weighted else None
    ref = SkKMeans(K, init=init, n_init=1, algorithm="lloyd").fit(x, sample_weight=w)
    ours = KMeans(K, init=init, chunk_size=CHUNK).fit(x, sample_weight=w)
    assert adjusted_rand_score(ref.labels_, ours.labels_) == 1.0
    np.testing.assert_array_equal(ref.labels_, ours.labels_)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert ours.n_iter_ == ref.n_iter_


def test_streams_and_chunks_do_not_change_the_answer():
    x, _ = blobs(1, std=3.0)
    init = first_rows_init(x, 1)
    ref = SkKMeans(K, init=init, n_init=1, algorithm="lloyd").fit(x)
    r = km.kmeans(0, x, K, init=init, chunk_size=64, streams=3)  # 3 x 200 rows, 200 = 3·64 + 8
    np.testing.assert_array_equal(np.asarray(r.labels), ref.labels_)
    assert float(r.inertia) == pytest.approx(ref.inertia_, rel=1e-4)
    assert int(r.n_iter) == ref.n_iter_


def test_kmeans_plusplus_no_worse_than_sklearn_on_average():
    x, _ = blobs(7, std=1.5)
    seeds = range(12)
    ours = [KMeans(K, chunk_size=CHUNK, random_state=s).fit(x).inertia_ for s in seeds]
    ref = [SkKMeans(K, n_init=1, random_state=s).fit(x).inertia_ for s in seeds]
    # Both are random; 2% covers the spread of a 12-seed mean (measured: ours is ~equal).
    assert np.mean(ours) <= 1.02 * np.mean(ref)


def test_inits():
    x, _ = blobs(3)
    key = jax.random.key(1)
    rows = {tuple(r) for r in x.tolist()}
    for init in ("k-means++", "random"):
        c = np.asarray(km.init_centers(key, x, K, init))
        assert c.shape == (K, D) and {tuple(r) for r in c.tolist()} <= rows
        assert len({tuple(r) for r in c.tolist()}) == K  # distinct points
    u = np.asarray(km.init_centers(key, x, K, "uniform"))
    assert u.shape == (K, D) and (u >= 0).all() and (u < 1).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_seed_compat_equals_the_post_loop(seed):
    x, _ = blobs(seed)
    init = np.random.default_rng(seed).uniform(size=(K, D)).astype(np.float32) * 4
    y_ref, c_ref = post_loop_numpy(x, init, 5)
    m = KMeans(K, init=init, max_iter=5, seed_compat=True, chunk_size=CHUNK).fit(x)
    np.testing.assert_array_equal(m.labels_, y_ref)
    np.testing.assert_allclose(m.cluster_centers_, c_ref, rtol=1e-5, atol=1e-5)
    assert m.n_iter_ == 5


def test_seed_compat_nan_on_empty_cluster_as_the_post():
    x, _ = blobs(0)
    init = first_rows_init(x, 0)
    init[-1] = 1e4  # never the nearest: empty after the first assignment
    y_ref, c_ref = post_loop_numpy(x, init, 5)
    with pytest.warns(ConvergenceWarning):
        m = KMeans(K, init=init, max_iter=5, seed_compat=True, chunk_size=CHUNK).fit(x)
    assert np.isnan(c_ref).any() and np.isnan(m.cluster_centers_).any()
    np.testing.assert_array_equal(m.labels_, y_ref)  # NaN centroids win argmin, as in torch
    np.testing.assert_allclose(m.cluster_centers_, c_ref, rtol=1e-5, atol=1e-5)
    assert np.isnan(m.inertia_)


def far_init():
    x, _ = blobs(0)
    init = first_rows_init(x, 0)
    init[2] = 1e3  # cluster 2 is empty after the first assignment
    return x, init


def test_empty_relocate_matches_sklearn():
    x, init = far_init()
    ref = SkKMeans(K, init=init, n_init=1, algorithm="lloyd").fit(x)
    ours = KMeans(K, init=init, chunk_size=CHUNK).fit(x)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)
    assert np.bincount(ours.labels_, minlength=K).min() > 0


def test_empty_keep_leaves_the_centre():
    x, init = far_init()
    with pytest.warns(ConvergenceWarning, match="distinct clusters"):
        m = KMeans(K, init=init, empty="keep", chunk_size=CHUNK).fit(x)
    np.testing.assert_array_equal(m.cluster_centers_[2], init[2])
    assert 2 not in m.labels_ and np.isfinite(m.inertia_)


def test_empty_nan_as_the_post():
    x, init = far_init()
    with pytest.warns(ConvergenceWarning):
        m = KMeans(K, init=init, empty="nan", max_iter=3, chunk_size=CHUNK).fit(x)
    assert np.isnan(m.cluster_centers_[2]).all()
    assert np.isnan(m.inertia_)


def test_n_init_keeps_lowest_inertia():
    x, _ = blobs(5, k=8, std=2.5)
    key = jax.random.key(4)
    best = km.kmeans(key, x, K, init="random", n_init=4, chunk_size=CHUNK)
    singles = [
        float(km.kmeans(k, x, K, init="random", chunk_size=CHUNK).inertia)
        for k in jax.random.split(key, 4)
    ]
    assert len(set(np.round(singles, 2))) > 1  # the restarts really differ
    assert float(best.inertia) == pytest.approx(min(singles), rel=1e-5)


def test_sample_weight_equals_repetition():
    x, _ = blobs(2, n=N // 2)
    reps = np.random.default_rng(0).permutation(np.repeat([1, 2, 3], N // 6))  # sums to N
    init = x[:K]
    a = KMeans(K, init=init, chunk_size=CHUNK).fit(x, sample_weight=reps)
    b = KMeans(K, init=init, chunk_size=CHUNK).fit(np.repeat(x, reps, axis=0))
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-5, atol=1e-5)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-5)
    np.testing.assert_array_equal(np.repeat(a.labels_, reps), b.labels_)


def test_estimator_api():
    x, _ = blobs(1)
    m = KMeans(K, random_state=0, chunk_size=CHUNK)
    assert m.fit(x) is m
    np.testing.assert_array_equal(m.predict(x), m.labels_)
    np.testing.assert_array_equal(clone(m).fit_predict(x), m.labels_)
    assert m.score(x) == pytest.approx(-m.inertia_, rel=1e-5)
    dist = m.transform(x)
    ref = np.linalg.norm(x[:, None, :] - m.cluster_centers_[None, :, :], axis=2)
    np.testing.assert_allclose(dist, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(dist.argmin(1), m.labels_)
    assert clone(m).get_params() == m.get_params()
    assert m.set_params(n_clusters=3).n_clusters == 3
    assert not hasattr(clone(m), "cluster_centers_")


def test_runs_inside_jit():
    x, _ = blobs(0)
    init = first_rows_init(x, 0)
    fit = jax.jit(lambda x: km.kmeans(jax.random.key(0), x, K, init=init, chunk_size=CHUNK))
    ref = KMeans(K, init=init, chunk_size=CHUNK).fit(x)
    np.testing.assert_array_equal(np.asarray(fit(x).labels), ref.labels_)


def test_eager_fit_after_a_jitted_one_with_new_shapes_and_settings():
    """The device-side caches (unit weights, tol, max_iter) are made eagerly even when the
    first fit with those values runs under jit: no tracer leaks into the next call."""
    # 137 rows: a size no other test uses, so the caches start empty for it
    x = np.random.default_rng(5).normal(size=(137, 3)).astype(np.float32)

    def fit(a):
        return km.kmeans(0, a, 3, max_iter=17, tol=3e-4, chunk_size=CHUNK)

    traced = jax.jit(fit)(jnp.asarray(x))
    eager = fit(x)
    np.testing.assert_array_equal(np.asarray(traced.labels), np.asarray(eager.labels))
    assert int(eager.n_iter) <= 17


def test_step_compiles_once(compile_counter):
    x, _ = blobs(0)
    KMeans(K, random_state=0, chunk_size=CHUNK).fit(x).predict(x)  # warm the caches
    x2, _ = blobs(9)
    with compile_counter:
        m = KMeans(K, random_state=1, chunk_size=CHUNK).fit(x2, sample_weight=np.ones(N))
        m.predict(x2)
    assert compile_counter.count == 0


def test_too_few_distinct_points_warns_and_labels_stay_valid():
    x = np.repeat(np.eye(3, D, dtype=np.float32), N // 3, axis=0)  # N rows, 3 distinct
    with pytest.warns(ConvergenceWarning, match="distinct"):
        m = KMeans(K, random_state=0, chunk_size=CHUNK).fit(x)
    assert m.labels_.min() >= 0 and m.labels_.max() < K
    assert m.inertia_ == pytest.approx(0.0, abs=1e-5)


GOOD = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (np.where(np.eye(20, 3) > 0, np.nan, GOOD), {}, "NaN"),
        (np.where(np.eye(20, 3) > 0, np.inf, GOOD), {}, "infinity"),
        (GOOD[:, 0], {}, "2-D"),
        (GOOD[None], {}, "2-D"),
        (GOOD[:0], {}, r"0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1"),
        (GOOD[:, :0], {}, r"0 feature\(s\) \(shape=\(20, 0\)\) while a minimum of 1"),
        ([["a", "b"], ["c", "d"]], {"n_clusters": 1}, "numeric"),
        (GOOD.astype(complex), {}, "Complex data not supported"),
        (np.array([[1, None]], dtype=object), {"n_clusters": 1}, "NaN"),
        (np.array([[1, "x"]], dtype=object), {"n_clusters": 1}, "numeric"),
        (GOOD, {"n_clusters": 0}, "n_clusters"),
        (GOOD, {"n_clusters": 21}, "n_clusters"),
        (GOOD, {"n_clusters": 2.5}, "n_clusters"),
        (GOOD, {"init": "kmeans++"}, "init"),
        (GOOD, {"init": np.zeros((3, 2))}, "init"),
        (GOOD, {"init": np.full((2, 3), np.nan)}, "init"),
        (GOOD, {"n_init": 0}, "n_init"),
        (GOOD, {"max_iter": 0}, "max_iter"),
        (GOOD, {"tol": -1.0}, "tol"),
        (GOOD, {"empty": "drop"}, "empty"),
        (GOOD, {"chunk_size": 0}, "chunk_size"),
        (GOOD, {"random_state": "seed"}, "random_state"),
    ],
)
def test_bad_inputs_raise_clear_errors(x, kwargs, match):
    kwargs = {"n_clusters": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        KMeans(**kwargs).fit(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_device_arrays_raise_from_the_fit_and_predict(bad):
    """A jax.Array's finiteness is read from the fit's own compiled call (no second
    dispatch); the error is the same as for NumPy input, and clean device data still fits."""
    x = jnp.asarray(np.where(np.eye(20, 3) > 0, bad, GOOD))
    with pytest.raises(ValueError, match="NaN or infinity"):
        km.kmeans(jax.random.key(0), x, 2)
    with pytest.raises(ValueError, match="NaN or infinity"):
        KMeans(2, random_state=0).fit(x)
    model = KMeans(2, random_state=0).fit(jnp.asarray(GOOD))
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.predict(x)
    assert model.predict(jnp.asarray(GOOD)).shape == (20,)


@pytest.mark.parametrize("threaded", [False, True])
def test_device_init_arrays_are_checked_like_numpy_ones(threaded, monkeypatch):
    """A jax.Array init: shape on the host, finiteness from the fit's compiled call (or one
    check before the threaded loop); complex dtypes are refused."""
    if threaded:
        monkeypatch.setattr(km, "_THREAD_MIN_WORK", 0)
    x, _ = blobs(2)
    good = jnp.asarray(first_rows_init(x, 0))
    res = km.kmeans(0, x, K, init=good, chunk_size=CHUNK, streams=2)
    ref = km.kmeans(0, x, K, init=np.asarray(good), chunk_size=CHUNK, streams=2)
    np.testing.assert_array_equal(res.labels, ref.labels)
    with pytest.raises(ValueError, match="init array must be finite"):
        km.kmeans(0, x, K, init=good.at[1, 2].set(jnp.nan), chunk_size=CHUNK, streams=2)
    with pytest.raises(ValueError, match="init array"):
        km.kmeans(0, x, K, init=good[:-1], chunk_size=CHUNK, streams=2)
    with pytest.raises(ValueError, match="real numbers"):
        km.kmeans(0, x, K, init=good.astype(jnp.complex64), chunk_size=CHUNK, streams=2)


@pytest.mark.parametrize("w", [-np.ones(20), np.ones(19), np.zeros(20), np.full(20, np.nan)])
def test_bad_sample_weight(w):
    with pytest.raises(ValueError, match="sample_weight"):
        KMeans(2).fit(GOOD, sample_weight=w)


def test_predict_checks_fitted_and_features():
    x, _ = blobs(0)
    m = KMeans(K, init=first_rows_init(x, 0), chunk_size=CHUNK)
    with pytest.raises(ValueError, match="fitted"):  # sklearn's NotFittedError
        m.predict(x)
    m.fit(x)
    with pytest.raises(ValueError, match="features"):
        m.predict(x[:, :2])
    with pytest.raises(ValueError, match="features"):
        m.transform(x[:, :2])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.sampled_from([1, 3]))
def test_property_labels_inertia_permutation(seed, k):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(24, 2)).astype(np.float32) * rng.uniform(0.1, 10)
    init = x[:k].copy()
    m = KMeans(k, init=init, chunk_size=7).fit(x)
    assert m.labels_.shape == (24,) and 0 <= m.labels_.min() and m.labels_.max() < k
    recomputed = np.sum((x - m.cluster_centers_[m.labels_]) ** 2)
    assert m.inertia_ == pytest.approx(recomputed, rel=1e-4, abs=1e-6)
    perm = rng.permutation(24)
    p = KMeans(k, init=init, chunk_size=7).fit(x[perm])
    assert adjusted_rand_score(m.labels_[perm], p.labels_) == pytest.approx(1.0)


def test_run_circles_end_to_end(tmp_path):
    cfg = km.CirclesConfig()
    res = km.run_circles(cfg, tmp_path)
    for name in ("config.json", "results.json", "kmeans_circles.png",
                 "kmeans_circles_seed_compat.png"):  # fmt: skip
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert json.loads((tmp_path / "config.json").read_text())["n_samples"] == 500
    for name in ("kmeans", "seed_compat"):
        r = saved[name]
        assert np.isfinite(r["inertia"]) and r["inertia"] > 0
        assert -0.5 <= r["ari"] < 0.5  # a line cannot separate concentric circles
        assert sum(r["cluster_sizes"]) == 500
    assert saved["seed_compat"]["n_iter"] == 5
    assert saved["kmeans"]["n_iter"] >= 1
    assert res["kmeans"]["n_iter"] == saved["kmeans"]["n_iter"]


def test_run_circles_rejects_bad_config(tmp_path):
    with pytest.raises(ValueError, match="n_clusters"):
        km.run_circles(km.CirclesConfig(n_clusters=0), tmp_path)
    with pytest.raises(ValueError, match="noise"):
        km.run_circles(km.CirclesConfig(noise=-1.0), tmp_path)


# ----------------------------------------------------------------------------- threads


@pytest.fixture
def threads_always(monkeypatch):
    """Every eager CPU fit with 2 streams takes the threaded path; counts its calls."""
    calls = []
    real = km._lloyd_threads

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(km, "_THREAD_MIN_WORK", 0)
    monkeypatch.setattr(km, "_lloyd_threads", spy)
    return calls


@pytest.mark.parametrize(
    "case",
    ["array-init", "weights", "k-means++ n_init=3", "empty relocate", "empty keep", "tol stop"],
)
def test_threaded_lloyd_equals_the_compiled_loop(threads_always, case):
    """The host loop over two threads (CPU, eager, large inputs) takes the same steps as the
    compiled `lax.while_loop`: same labels, iterations and init; sums add in another order."""
    x, _ = blobs(3)
    kw = dict(init=first_rows_init(x, 0), chunk_size=CHUNK, max_iter=50, tol=0.0)
    if case == "weights":
        kw["sample_weight"] = np.random.default_rng(1).uniform(0.1, 3.0, N)
    elif case == "k-means++ n_init=3":
        kw.update(init="k-means++", n_init=3)
    elif case.startswith("empty"):
        x, kw["init"] = far_init()
        kw["empty"] = case.split()[1]
    elif case == "tol stop":
        kw["tol"] = 1e-2
    threaded = km.kmeans(jax.random.key(7), x, K, streams=2, **kw)
    assert len(threads_always) == 1
    compiled = km.kmeans(jax.random.key(7), x, K, streams=1, **kw)
    assert len(threads_always) == 1  # one stream: the compiled loop
    np.testing.assert_array_equal(threaded.labels, compiled.labels)
    assert int(threaded.n_iter) == int(compiled.n_iter)
    np.testing.assert_allclose(threaded.centers, compiled.centers, rtol=1e-5, atol=1e-4)
    assert float(threaded.inertia) == pytest.approx(float(compiled.inertia), rel=1e-5)


def test_threads_only_for_eager_cpu_work_above_the_threshold(threads_always, monkeypatch):
    x, _ = blobs(4)
    jax.jit(lambda a: km.kmeans(0, a, K, chunk_size=CHUNK, streams=2).inertia)(x)
    assert not threads_always  # traced: the compiled loop
    km.kmeans(0, x, K, chunk_size=CHUNK, streams=2, seed_compat=True)
    assert not threads_always  # the post's replay keeps its compiled loop
    monkeypatch.setattr(km, "_THREAD_MIN_WORK", N * K * D + 1)
    km.kmeans(0, x, K, chunk_size=CHUNK, streams=2)
    assert not threads_always  # too little work
    monkeypatch.setattr(km, "_THREAD_MIN_WORK", N * K * D)
    model = KMeans(K, random_state=0, chunk_size=CHUNK).fit(x)  # the facade's default streams
    assert len(threads_always) == 1
    assert adjusted_rand_score(model.labels_, model.predict(x)) == 1.0
