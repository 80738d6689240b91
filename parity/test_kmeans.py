"""pytest face of the k-means parity check against post 000 §1's torch loop."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxunsup import data  # noqa: E402
from jaxunsup.kmeans import KMeans  # noqa: E402
from parity import torch_kmeans  # noqa: E402
from parity.check_kmeans import check_kmeans  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    return check_kmeans()


def test_kmeans_parity_rows(rows):
    assert len(rows) == 8  # labels and centroids for 3 seeds and the empty-cluster case
    for r in rows:
        assert r["ok"], r


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_assignments_and_centroids_after_five_iterations(seed):
    x, _ = data.make_circles(500, noise=0.1, seed=seed)
    c0 = torch_kmeans.initial_centroids(2, 2, seed)
    y_ref, c_ref = torch_kmeans.kmeans(torch.from_numpy(x), c0, num_clusters=2, max_iteration=5)
    ours = KMeans(2, init=c0.numpy(), max_iter=5, seed_compat=True).fit(x)
    np.testing.assert_array_equal(ours.labels_, y_ref)
    np.testing.assert_allclose(ours.cluster_centers_, c_ref.numpy(), rtol=0, atol=1e-6)
    assert ours.n_iter_ == 5


def test_empty_cluster_goes_nan_like_torch():
    x, _ = data.make_circles(500, noise=0.1, seed=0)
    c0 = torch.tensor([[0.5, 0.5], [5.0, 5.0]])  # the second centroid never wins
    y_ref, c_ref = torch_kmeans.kmeans(torch.from_numpy(x), c0, num_clusters=2, max_iteration=5)
    with pytest.warns(Warning):
        ours = KMeans(2, init=c0.numpy(), max_iter=5, seed_compat=True).fit(x)
    assert np.isnan(c_ref.numpy()).any()
    np.testing.assert_array_equal(np.isnan(ours.cluster_centers_), np.isnan(c_ref.numpy()))
    np.testing.assert_array_equal(ours.labels_, y_ref)
