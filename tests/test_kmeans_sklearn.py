"""scikit-learn's own estimator suite on the k-means estimators, one test per check (the
failing check names itself), with the expected failures scikit-learn declares for its own
KMeans and MiniBatchKMeans and no others; sparse input against dense; weights against
repeated rows."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.utils._test_common.instance_generator import PER_ESTIMATOR_XFAIL_CHECKS
from sklearn.utils.estimator_checks import estimator_checks_generator

from jaxunsup.kmeans import KMeans
from jaxunsup.minibatch_kmeans import MiniBatchKMeans

# scikit-learn 1.9 declares these for its KMeans and MiniBatchKMeans (instance_generator's
# PER_ESTIMATOR_XFAIL_CHECKS): k-means++ draws differ between weighted and repeated rows
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight is not equivalent to removing/repeating samples."
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "sample_weight is not equivalent to removing/repeating samples."
    ),
}
# scikit-learn's own test settings for its estimators (instance_generator's INIT_PARAMS)
ESTIMATORS = [
    KMeans(n_clusters=2, n_init=2, max_iter=5),
    MiniBatchKMeans(n_clusters=2, n_init=2, max_iter=5, batch_size=10),
]
ARRAY_API = "check_array_api_input"  # needs SCIPY_ARRAY_API=1 before scipy loads: a subprocess


def _name(check) -> str:
    return getattr(check, "func", check).__name__


def _cases():
    for est in ESTIMATORS:
        gen = estimator_checks_generator(
            est, expected_failed_checks=EXPECTED_FAILURES, mark="xfail"
        )
        for case in gen:
            estimator, check = case.values if hasattr(case, "values") else case
            if _name(check) != ARRAY_API:
                marks = getattr(case, "marks", ())
                name = f"{type(estimator).__name__}-{_name(check)}"
                yield pytest.param(estimator, check, marks=marks, id=name)


def test_expected_failures_are_scikit_learns_for_its_kmeans():
    assert PER_ESTIMATOR_XFAIL_CHECKS[SkKMeans] == EXPECTED_FAILURES
    assert PER_ESTIMATOR_XFAIL_CHECKS[SkMiniBatchKMeans] == EXPECTED_FAILURES


@pytest.mark.parametrize("estimator, check", list(_cases()))
def test_sklearn_check(estimator, check):
    check(estimator)


def test_sklearn_array_api_check_in_a_subprocess():
    """The one check that needs SCIPY_ARRAY_API=1 set before scipy is imported."""
    code = (
        "from sklearn.utils.estimator_checks import check_array_api_input as check\n"
        "from jaxunsup.kmeans import KMeans\n"
        "from jaxunsup.minibatch_kmeans import MiniBatchKMeans\n"
        "for est in [KMeans(n_clusters=2, n_init=2, max_iter=5),\n"
        "            MiniBatchKMeans(n_clusters=2, n_init=2, max_iter=5, batch_size=10)]:\n"
        "    check(type(est).__name__, est, array_namespace='numpy',\n"
        "          expect_only_array_outputs=False)\n"
        "print('passed')\n"
    )
    env = dict(os.environ, SCIPY_ARRAY_API="1", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("passed")


def _blobs(n=300, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(k, d))
    x = centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    return x.astype(np.float32)


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix])
def test_weighted_fit_equals_the_fit_on_repeated_rows(container):
    """From a fixed init array a weight of k is k copies of the row: same labels, same
    centres (the k-means++ draws are what scikit-learn's check trips on)."""
    x = _blobs()
    reps = np.random.default_rng(1).integers(1, 4, len(x))  # weights 1..3
    init = x[:4]
    w = reps.astype(np.float64)
    a = KMeans(4, init=init, max_iter=100).fit(container(x), sample_weight=w)
    b = KMeans(4, init=init, max_iter=100).fit(container(np.repeat(x, reps, axis=0)))
    np.testing.assert_array_equal(np.repeat(a.labels_, reps), b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-6, atol=1e-6)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-5)
    assert a.n_iter_ == b.n_iter_ > 1


def test_sparse_fit_equals_the_dense_fit():
    """CSR rows (any scipy format) give the dense fit's labels, centres and inertia; predict,
    transform and score agree as well."""
    x = _blobs(seed=2)
    x[np.random.default_rng(3).random(x.shape) < 0.5] = 0.0  # half the entries zero
    init = x[[0, 50, 100, 150]]
    dense = KMeans(4, init=init, max_iter=50, chunk_size=64).fit(x)
    for fmt in (sp.csr_matrix, sp.csc_array, sp.coo_matrix):
        m = KMeans(4, init=init, max_iter=50, chunk_size=64).fit(fmt(x))
        np.testing.assert_array_equal(m.labels_, dense.labels_)
        np.testing.assert_allclose(m.cluster_centers_, dense.cluster_centers_, atol=1e-5)
        assert m.inertia_ == pytest.approx(dense.inertia_, rel=1e-5)
        assert m.n_iter_ == dense.n_iter_
    xs = sp.csr_matrix(x)
    np.testing.assert_array_equal(m.predict(xs), dense.predict(x))
    np.testing.assert_allclose(m.transform(xs), dense.transform(x), rtol=1e-4, atol=1e-4)
    assert m.score(xs) == pytest.approx(dense.score(x), rel=1e-5)


def test_sparse_k_means_plus_plus_and_random_init_match_dense():
    """The inits draw the same rows from sparse as from dense X (same key)."""
    x = _blobs(seed=4)
    x[x < 0] = 0.0
    for init in ("k-means++", "random"):
        a = KMeans(4, init=init, n_init=2, random_state=3).fit(x)
        b = KMeans(4, init=init, n_init=2, random_state=3).fit(sp.csr_matrix(x))
        np.testing.assert_array_equal(a.labels_, b.labels_)
        np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-4)


def test_sparse_empty_cluster_relocation_matches_dense():
    x = np.concatenate([np.zeros((5, 3)), np.eye(3) * 10, np.ones((4, 3))]).astype(np.float32)
    init = np.array([[0, 0, 0], [100, 100, 100], [-100, 0, 0]], np.float32)  # 2 stay empty
    a = KMeans(3, init=init, max_iter=10).fit(x)
    b = KMeans(3, init=init, max_iter=10).fit(sp.csr_matrix(x))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-5)
    assert len(set(b.labels_)) == 3
