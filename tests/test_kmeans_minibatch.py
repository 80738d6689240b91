"""MiniBatchKMeans: scikit-learn's steps from the same init (partial_fit is deterministic
there), its reassignment and stopping rules, its quality on blobs, sparse = dense, input
checks. scikit-learn's estimator suite runs in test_kmeans_sklearn.py."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from jaxunsup.minibatch_kmeans import MiniBatchKMeans

N, D, K = 2000, 5, 4


def blobs(seed=0, n=N):
    x, y = make_blobs(n, D, centers=K, cluster_std=1.0, random_state=seed)
    return x.astype(np.float32), y


def one_per_blob(x, y):
    return x[[np.flatnonzero(y == j)[0] for j in range(K)]]


def test_partial_fit_steps_equal_sklearns_from_the_same_init():
    """From an init array every cluster takes rows in each batch, so no random
    reassignment fires and the steps are deterministic: scikit-learn's to float rounding."""
    x, y = blobs(1)
    w = np.random.default_rng(0).uniform(0.5, 2.0, N)
    init = one_per_blob(x, y) + 0.5
    ours = MiniBatchKMeans(K, init=init, batch_size=200)
    ref = SkMiniBatchKMeans(K, init=init, batch_size=200, n_init=1)
    for lo in range(0, N, 200):
        ours.partial_fit(x[lo : lo + 200], sample_weight=w[lo : lo + 200])
        ref.partial_fit(x[lo : lo + 200], sample_weight=w[lo : lo + 200])
        np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-5)
        np.testing.assert_allclose(ours._counts, ref._counts, rtol=1e-6)
        np.testing.assert_array_equal(ours.labels_, ref.labels_)
        assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)
    assert ours.n_steps_ == ref.n_steps_ == N // 200


def test_reassignment_moves_starved_centres_to_batch_rows():
    """A centre that takes no row is moved to a row of the batch and given the smallest
    count of the others, as scikit-learn does (which row is a random draw)."""
    x, y = blobs(2)
    init = np.concatenate([one_per_blob(x, y)[:3], np.full((1, D), 1e3, np.float32)])
    batch = x[:300]
    ours = MiniBatchKMeans(K, init=init, batch_size=300).partial_fit(batch)
    ref = SkMiniBatchKMeans(K, init=init, batch_size=300, n_init=1).partial_fit(batch)
    for m in (ours, ref):
        moved = m.cluster_centers_[3]
        assert np.min(np.abs(batch - moved).sum(axis=1)) < 1e-5  # a row of the batch
        assert m._counts[3] == pytest.approx(m._counts[:3].min())
    np.testing.assert_allclose(ours.cluster_centers_[:3], ref.cluster_centers_[:3], atol=1e-5)


def test_fit_quality_matches_sklearn_on_blobs():
    x, y = blobs(3, n=20_000)
    ours = [MiniBatchKMeans(K, random_state=s, n_init=3).fit(x) for s in range(3)]
    ref = [SkMiniBatchKMeans(K, random_state=s, n_init=3).fit(x) for s in range(3)]
    for m in ours:
        assert adjusted_rand_score(y, m.labels_) > 0.99
        np.testing.assert_array_equal(m.predict(x), m.labels_)
        assert m.n_steps_ < (100 * len(x)) // 1024  # stopped by max_no_improvement
    assert np.mean([m.inertia_ for m in ours]) == pytest.approx(
        np.mean([m.inertia_ for m in ref]), rel=0.01
    )


def test_stopping_rules():
    x, _ = blobs(4, n=500)
    full = MiniBatchKMeans(K, batch_size=50, max_iter=3, max_no_improvement=None, random_state=0)
    assert full.fit(x).n_steps_ == 3 * 500 // 50 and full.n_iter_ == 3
    patient = MiniBatchKMeans(K, batch_size=50, max_iter=50, max_no_improvement=0, random_state=0)
    assert patient.fit(x).n_steps_ == 2  # no improvement counted from the second step
    tol = MiniBatchKMeans(K, batch_size=50, max_iter=50, tol=1e9, max_no_improvement=None,
                          random_state=0)  # fmt: skip
    assert tol.fit(x).n_steps_ == 2  # the first step is never a convergence test


def test_compute_labels_false_and_refit_is_deterministic():
    x, _ = blobs(5, n=500)
    m = MiniBatchKMeans(K, batch_size=50, compute_labels=False, random_state=7).fit(x)
    assert not hasattr(m, "labels_") and m.inertia_ > 0
    again = MiniBatchKMeans(K, batch_size=50, compute_labels=False, random_state=7).fit(x)
    np.testing.assert_array_equal(m.cluster_centers_, again.cluster_centers_)


def test_sparse_equals_dense():
    x, _ = blobs(6, n=600)
    x[x < 0] = 0.0
    kw = dict(batch_size=64, random_state=2, n_init=2, max_iter=20)
    a = MiniBatchKMeans(K, **kw).fit(x, sample_weight=np.arange(600) % 3 + 1.0)
    b = MiniBatchKMeans(K, **kw).fit(sp.csr_matrix(x), sample_weight=np.arange(600) % 3 + 1.0)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-4)
    assert a.n_steps_ == b.n_steps_


def test_refit_compiles_nothing(compile_counter):
    x, _ = blobs(7, n=400)
    MiniBatchKMeans(K, batch_size=40, random_state=0, max_iter=5).fit(x).predict(x)
    with compile_counter:
        MiniBatchKMeans(K, batch_size=40, random_state=1, max_iter=5).fit(x[::-1]).predict(x)
    assert compile_counter.count == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_no_improvement": -1}, "max_no_improvement"),
        ({"reassignment_ratio": -0.5}, "reassignment_ratio"),
        ({"tol": float("nan")}, "tol"),
        ({"init_size": 0}, "init_size"),
        ({"n_init": 0}, "n_init"),
        ({"init": "kmeans++"}, "init"),
        ({"n_clusters": 99}, "n_clusters"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    x, _ = blobs(8, n=50)
    with pytest.raises(ValueError, match=match):
        MiniBatchKMeans(**{"n_clusters": K, **kwargs}).fit(x)
