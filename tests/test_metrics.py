"""Clustering metrics against hand-computed answers, brute force and scikit-learn."""

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from jaxunsup import metrics
from jaxunsup.metrics import ari, cluster_acc, contingency, nmi


def brute_force_acc(y_true, y_pred):
    """Best accuracy over every one-to-one map of cluster ids to class ids (ids in 0..K-1).

    Padding both sides to K = max ids lets unmatched clusters map to phantom classes."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = max(y_true.max(), y_pred.max()) + 1
    return max(
        np.mean(np.array(perm)[y_pred] == y_true) for perm in itertools.permutations(range(k))
    )


@st.composite
def labelings(draw, max_n=30, max_k=5):
    n = draw(st.integers(1, max_n))
    kt, kp = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    y_true = draw(st.lists(st.integers(0, kt - 1), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.integers(0, kp - 1), min_size=n, max_size=n))
    return np.array(y_true), np.array(y_pred)


def test_permuted_labels_score_one():
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3, 3])
    perm = np.array([2, 3, 0, 1])
    assert cluster_acc(y, perm[y]) == 1.0
    assert nmi(y, perm[y]) == pytest.approx(1.0)
    assert ari(y, perm[y]) == 1.0


def test_hand_computed_accuracy():
    # Cluster 1 -> class 0 (2), cluster 0 -> class 1 (2), cluster 2 -> class 2 (1): 5 of 6.
    assert cluster_acc([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 2]) == pytest.approx(5 / 6)


def test_more_clusters_than_classes():
    # Clusters 0 and 2 take the two classes (2 + 2); clusters 1 and 3 stay unmatched: 4 of 6.
    assert cluster_acc([0, 0, 0, 1, 1, 1], [0, 0, 1, 2, 2, 3]) == pytest.approx(4 / 6)
    # Every sample its own cluster: only one per class can be right.
    assert cluster_acc([0, 0, 0, 1, 1, 1], np.arange(6)) == pytest.approx(2 / 6)


def test_fewer_clusters_than_classes():
    # Cluster 0 covers classes 0 and 1 (only 2 count), cluster 1 is class 2 (2): 4 of 6.
    assert cluster_acc([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1]) == pytest.approx(4 / 6)
    assert cluster_acc([0, 1, 2, 3, 4], [0, 0, 0, 0, 0]) == pytest.approx(1 / 5)


def test_arbitrary_label_values():
    y_true = np.array(["cat", "cat", "dog", "dog", "eel"])
    y_pred = np.array([70, 70, 3, 3, 3])
    assert cluster_acc(y_true, y_pred) == pytest.approx(4 / 5)
    # Values NumPy cannot sort fall back to first-appearance order.
    mixed = np.array([1, "a", 2.5, "a", 1], dtype=object)
    assert cluster_acc(mixed, [9, 8, 7, 8, 9]) == 1.0
    assert ari(mixed, [9, 8, 7, 8, 9]) == 1.0


def test_contingency_matches_sklearn():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 50), rng.integers(10, 17, 50)
    table = contingency(y_true, y_pred)
    np.testing.assert_array_equal(table, contingency_matrix(y_true, y_pred))
    assert table.dtype == np.int64 and table.sum() == 50


@settings(max_examples=300, deadline=None)
@given(labelings())
def test_against_sklearn_and_brute_force(pair):
    y_true, y_pred = pair
    assert nmi(y_true, y_pred) == pytest.approx(
        normalized_mutual_info_score(y_true, y_pred), abs=1e-12
    )
    assert ari(y_true, y_pred) == pytest.approx(adjusted_rand_score(y_true, y_pred), abs=1e-12)
    assert cluster_acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred))


@pytest.mark.parametrize(
    "y_true, y_pred",
    [
        ([0] * 7, [0] * 7),  # both one cluster
        ([0] * 7, [3] * 7),
        (list(range(7)), list(range(7))),  # both all distinct
        (list(range(7)), [0] * 7),
        ([0] * 7, list(range(7))),
        ([5], [2]),  # a single sample
        ([0, 1], [0, 0]),
        ([0, 0, 1, 1], [0, 1, 0, 1]),  # independent: MI = 0
    ],
)
def test_edge_cases_match_sklearn(y_true, y_pred):
    assert nmi(y_true, y_pred) == pytest.approx(normalized_mutual_info_score(y_true, y_pred))
    assert ari(y_true, y_pred) == pytest.approx(adjusted_rand_score(y_true, y_pred))
    assert cluster_acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred))


def test_large_input_matches_sklearn():
    # 2e5 samples: n² pair counts need exact 64-bit/Python-int arithmetic, and no N² memory.
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 10, 200_000)
    y_pred = np.where(rng.random(200_000) < 0.7, y_true, rng.integers(0, 12, 200_000))
    assert nmi(y_true, y_pred) == pytest.approx(normalized_mutual_info_score(y_true, y_pred))
    assert ari(y_true, y_pred) == pytest.approx(adjusted_rand_score(y_true, y_pred))
    assert 0.7 < cluster_acc(y_true, y_pred) < 0.8


@pytest.mark.parametrize("fn", [cluster_acc, nmi, ari, contingency])
def test_validation_names_the_argument(fn):
    with pytest.raises(ValueError, match="y_true must be 1-D"):
        fn(np.zeros((3, 2)), np.zeros(6))
    with pytest.raises(ValueError, match="y_pred must be 1-D"):
        fn(np.zeros(6), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="y_true is empty"):
        fn([], [])
    with pytest.raises(ValueError, match="same length"):
        fn([0, 1, 2], [0, 1])


def test_library_module_does_not_import_sklearn():
    tree = ast.parse(Path(metrics.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in names if m.split(".")[0] == "sklearn"]
