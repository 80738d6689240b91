"""latent_clustering: post 004's k-means on latents, its scores and its per-cluster figure."""

import numpy as np
import pytest
from sklearn.cluster import KMeans

from jaxunsup import data, latent_clustering


@pytest.fixture(scope="module")
def digits():
    test = data.load_mnist("test", source="embedded")
    return test.images[:100], test.labels[:100]  # the end-to-end tests' shapes: one compile


def test_kmeans_matches_scikit_learn_with_the_posts_arguments(digits):
    images, labels = digits
    x = images.reshape(len(images), -1)  # [N, 784]
    ours, inertia = latent_clustering.kmeans(x, **latent_clustering.KMEANS_ARGS)
    ref = KMeans(10, init="k-means++", n_init=3, max_iter=300, tol=1e-4, random_state=42).fit(x)
    # different k-means++ random streams: local optima of the same quality on digits ...
    assert inertia == pytest.approx(ref.inertia_, rel=0.02)
    assert ours.dtype == np.int32 and set(ours) == set(range(10))
    # ... and the same partition where the clusters are clear
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=10.0, size=(10, 10))
    blobs = np.repeat(centers, 10, axis=0) + rng.normal(size=(100, 10))  # [100, 10]
    ours, _ = latent_clustering.kmeans(blobs, **latent_clustering.KMEANS_ARGS)
    assert latent_clustering.scores(np.repeat(np.arange(10), 10), ours)["ari"] == 1.0


def test_scores_of_a_relabelled_perfect_clustering_are_one():
    labels = np.repeat(np.arange(4), 5)
    s = latent_clustering.scores(labels, (labels + 1) % 4)
    assert s == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0})
    half = latent_clustering.scores(labels, np.zeros_like(labels))
    assert half["acc"] == pytest.approx(0.25) and half["nmi"] == 0.0 and half["ari"] == 0.0


@pytest.mark.parametrize(
    "dim, shape", [(100, (10, 10)), (196, (14, 14)), (10, (2, 5)), (7, (1, 7))]
)
def test_latent_map_shape(dim, shape):
    assert latent_clustering.latent_map_shape(dim) == shape


def test_cluster_rows_show_members_and_scaled_maps():
    images = np.random.default_rng(0).random((30, 28, 28, 1), dtype=np.float32)
    latents = np.arange(30 * 10, dtype=np.float32).reshape(30, 10) - 7.0
    assignments = np.repeat([2, 0, 1], 10)[np.random.default_rng(1).permutation(30)]
    rows, titles = latent_clustering.cluster_rows(images, latents, assignments, per_cluster=4)
    assert titles == ["0-original", "0-latent", "1-original", "1-latent", "2-original", "2-latent"]
    first = np.flatnonzero(assignments == 0)[:4]
    np.testing.assert_array_equal(rows[0], images[first])
    expected = (latents[first] - latents.min()) / (latents.max() - latents.min())
    np.testing.assert_allclose(rows[1], expected.reshape(4, 2, 5), rtol=1e-6)


def test_evaluate_scores_latents_and_the_pixel_baseline(tmp_path, digits):
    images, labels = digits
    out = latent_clustering.evaluate(tmp_path, images.reshape(100, -1), images, labels)
    # the "latents" here are the pixels themselves, so both rows must agree exactly
    assert out["latent"] == out["pixels"]
    assert 0.3 < out["pixels"]["acc"] < 0.9  # k-means on MNIST pixels: ~0.4-0.6
    for name in out["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    assert [len(r["ours"]) for r in out["table"]] == [3, 3]


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="n_clusters"):
        latent_clustering.kmeans(np.zeros((5, 2)), n_clusters=10)
    with pytest.raises(ValueError, match="NaN"):
        latent_clustering.kmeans(np.full((20, 2), np.nan))
    with pytest.raises(ValueError, match="test labels"):
        latent_clustering.check_labels("test labels", np.zeros(3, np.int32), 4)
    with pytest.raises(ValueError, match="same N"):
        latent_clustering.cluster_rows(np.zeros((4, 2, 2)), np.zeros((3, 4)), np.zeros(3))


def test_cluster_figure_is_one_grid_of_members_over_latent_maps(tmp_path):
    import imageio.v3 as iio

    images = np.random.default_rng(0).random((12, 28, 28, 1), dtype=np.float32)
    latents = np.random.default_rng(1).random((12, 196), dtype=np.float32)
    assignments = np.array([0, 1] * 6)
    path = latent_clustering.save_cluster_figure(tmp_path / "c.png", images, latents, assignments)
    grid = iio.imread(path)
    assert grid.shape[:2] == (4 * 30 + 2, 10 * 30 + 2)  # 2 clusters × 2 rows, 10 cells of 28+2
    cell = grid[2:30, 2:30].reshape(28, 28, -1)[..., 0]  # cluster 0, first member
    np.testing.assert_allclose(cell / 255, images[0, ..., 0], atol=1 / 255)
    assert grid[2:30, 6 * 30 + 2 : 6 * 30 + 30].max() == 0  # 6 members: cells 7-10 are blank
