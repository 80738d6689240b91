"""Clustering metrics: Hungarian cluster accuracy, NMI and ARI, from one contingency table.

Everything is NumPy/SciPy on the host (float64 throughout); no pairwise O(N²) work. `nmi` and
`ari` reproduce scikit-learn's `normalized_mutual_info_score` (arithmetic normalisation) and
`adjusted_rand_score`, special cases included; the tests check this against scikit-learn, which
this module does not import.

Labels may be any non-negative ints, strings or other hashables: they are mapped to 0..K-1 with
`np.unique` (or, for values NumPy cannot sort, in order of first appearance).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

__all__ = ["ari", "cluster_acc", "contingency", "nmi"]


def _as_labels(labels: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}; flatten it first.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one label.")
    return arr


def _encode(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Maps labels to codes 0..K-1; returns (codes [N], K)."""
    try:
        uniq, codes = np.unique(labels, return_inverse=True)
        return codes.reshape(-1), len(uniq)
    except TypeError:  # mixed or unorderable hashables: first-appearance order
        table: dict = {}
        codes = np.array([table.setdefault(v, len(table)) for v in labels.tolist()], np.int64)
        return codes, len(table)


def _checked(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}."
        )
    return y_true, y_pred


def contingency(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Counts of samples per (class, cluster) pair.

    Args:
        y_true: Class labels, shape [N].
        y_pred: Cluster labels, shape [N].

    Returns:
        int64 array [n_classes, n_clusters]; rows and columns follow the sorted unique labels
        (first-appearance order for labels NumPy cannot sort).

    Raises:
        ValueError: If either input is not 1-D, is empty, or the lengths differ.
    """
    y_true, y_pred = _checked(y_true, y_pred)
    ci, n_classes = _encode(y_true)
    ck, n_clusters = _encode(y_pred)
    flat = np.bincount(ci * n_clusters + ck, minlength=n_classes * n_clusters)
    return flat.reshape(n_classes, n_clusters).astype(np.int64)  # [n_classes, n_clusters]


def cluster_acc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Unsupervised clustering accuracy: the best one-to-one map of clusters to classes.

    The map maximises the number of matched samples (Hungarian algorithm on the contingency
    table). When the numbers of clusters and classes differ the table is rectangular: only
    min(n_classes, n_clusters) pairs are matched and samples of unmatched clusters count as wrong.

    Args:
        y_true: Class labels, shape [N].
        y_pred: Cluster labels, shape [N].

    Returns:
        Accuracy in [0, 1].
    """
    table = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Normalised mutual information, MI / mean(H(y_true), H(y_pred)) (natural log).

    Matches `sklearn.metrics.normalized_mutual_info_score` with its default arithmetic
    normalisation: 1.0 when both labelings have a single cluster, 0.0 when the MI is zero.

    Args:
        y_true: Class labels, shape [N].
        y_pred: Cluster labels, shape [N].

    Returns:
        NMI in [0, 1].
    """
    table = contingency(y_true, y_pred).astype(np.float64)
    n_classes, n_clusters = table.shape
    if n_classes == n_clusters == 1:
        return 1.0
    if n_classes == 1 or n_clusters == 1:
        return 0.0
    n = table.sum()
    a = table.sum(axis=1)  # [n_classes]
    b = table.sum(axis=0)  # [n_clusters]
    i, k = np.nonzero(table)
    nij = table[i, k]
    terms = nij / n * (np.log(nij) + np.log(n) - np.log(a[i]) - np.log(b[k]))
    terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
    mi = max(float(terms.sum()), 0.0)
    if mi == 0.0:
        return 0.0
    return float(mi / np.mean([_entropy(a), _entropy(b)]))


def ari(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Adjusted Rand index (Hubert & Arabie, 1985).

    Computed from the pair-confusion counts of the contingency table in exact integer
    arithmetic, like `sklearn.metrics.adjusted_rand_score`, whose special case it keeps: 1.0
    when no pair is split differently by the two labelings (e.g. both all one cluster, or both
    all distinct).

    Args:
        y_true: Class labels, shape [N].
        y_pred: Cluster labels, shape [N].

    Returns:
        ARI, 1.0 for identical partitions, about 0 for random ones, possibly negative.
    """
    table = contingency(y_true, y_pred)
    n = int(table.sum())
    sum_squares = int((table * table).sum())
    a = table.sum(axis=1)  # [n_classes]
    b = table.sum(axis=0)  # [n_clusters]
    # Ordered-pair counts, sklearn's names: tp together in both, fp together in y_pred only,
    # fn together in y_true only, tn apart in both.
    tp = sum_squares - n
    fp = int((b * b).sum()) - sum_squares
    fn = int((a * a).sum()) - sum_squares
    tn = n * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
