"""Classifier-feature Fréchet distance and mode-collapse numbers against closed forms, SciPy,
and a classifier trained on the embedded digits (cached and reused)."""

import json

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import pdist

from jaxunsup import data, fid


def _spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_distance_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((500, 8)) @ _spd(np.random.default_rng(1), 8)
    assert abs(fid.frechet_distance_of(x, x)) < 1e-8


def test_shifted_gaussians_closed_forms():
    rng = np.random.default_rng(0)
    mu, s = rng.standard_normal(6), _spd(rng, 6)
    shift = rng.standard_normal(6)
    # equal covariances: only the means count
    np.testing.assert_allclose(fid.frechet_distance(mu, s, mu + shift, s), shift @ shift, rtol=1e-9)
    # diagonal covariances: Σ (√a − √b)² per axis
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = shift @ shift + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(
        fid.frechet_distance(mu, np.diag(a), mu + shift, np.diag(b)), expected, rtol=1e-9
    )
    # general covariances: the usual sqrtm formula (pytorch-fid's)
    s2 = _spd(rng, 6)
    ref = shift @ shift + np.trace(s + s2 - 2 * scipy.linalg.sqrtm(s @ s2).real)
    np.testing.assert_allclose(fid.frechet_distance(mu, s, mu + shift, s2), ref, rtol=1e-7)


def test_distance_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40_000, 3))
    y = 2 * rng.standard_normal((40_000, 3)) + np.array([1.0, -2.0, 0.5])
    # ‖m‖² + Σ (1 + 4 − 2·2) = 5.25 + 3
    np.testing.assert_allclose(fid.frechet_distance_of(x, y), 8.25, rtol=0.02)


def test_bad_statistics_are_clear_errors():
    with pytest.raises(ValueError, match="means"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="N >= 2"):
        fid.gaussian_stats(np.zeros((1, 4)))


def test_label_entropy_and_pairwise_distance():
    assert fid.label_entropy(np.arange(10).repeat(7)) == pytest.approx(np.log(10))
    assert fid.label_entropy([3] * 50) == 0.0
    assert fid.label_entropy([0, 0, 1, 1]) == pytest.approx(np.log(2))
    images = np.random.default_rng(0).uniform(size=(30, 28, 28, 1))
    np.testing.assert_allclose(
        fid.mean_pairwise_distance(images), pdist(images.reshape(30, -1)).mean(), rtol=1e-9
    )
    np.testing.assert_allclose(
        fid.mean_pairwise_distance(images, max_samples=10),
        pdist(images[:10].reshape(10, -1)).mean(), rtol=1e-9,
    )  # fmt: skip


def test_classifier_trains_caches_and_scores(tmp_path):
    train = data.load_mnist("train", source="embedded")
    test = data.load_mnist("test", source="embedded")
    clf = fid.load_or_train_classifier(tmp_path, train, test, epochs=2)
    assert clf.accuracy > 0.9  # 4,000 digits, 2 epochs
    info = json.loads((tmp_path / "classifier.json").read_text())
    assert info["accuracy"] == clf.accuracy and info["source"] == train.source
    again = fid.load_or_train_classifier(tmp_path, train, test, epochs=2)  # read back
    assert again.accuracy == clf.accuracy
    labels, feats = fid.predict(again.params, test.images[:700])
    labels0, feats0 = fid.predict(clf.params, test.images[:700])
    np.testing.assert_array_equal(labels, labels0)
    assert feats.shape == (700, fid.FEATURES)
    reference = fid.gaussian_stats(fid.predict(clf.params, test.images)[1])
    real = fid.score(clf, train.images[:1000], reference)
    one_digit = fid.score(clf, np.repeat(train.images[:1], 1000, axis=0), reference)
    # a generator that draws one image: far in FD, no label entropy, no spread
    assert one_digit["fid"] > 10 * real["fid"]
    assert one_digit["label_entropy"] == 0.0 and one_digit["mean_pairwise_distance"] < 1e-5
    assert real["label_entropy"] > 2.2
