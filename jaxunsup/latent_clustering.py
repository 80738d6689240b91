"""k-means on autoencoder latents, scored against the true digits (post 004 §1.2 and §2.2).

Seed: post 004 ("AutoEncoder: dimensionality reduction"). The post clusters
its autoencoders' latent features with
`KMeans(n_clusters=10, init="k-means++", n_init=3, max_iter=300, tol=1e-4, random_state=42)`
and shows, for each cluster, ten member images beside their latent maps; it prints no score
("the clustering does not look much better than on the raw pixels").

Every autoencoder of jaxunsup clusters its test latents this way (`evaluate`), and reports the
cluster accuracy (Hungarian matching), NMI and ARI against the labels, next to the same
k-means on the raw test pixels as the baseline the post compares with by eye. Figures: the
post's per-cluster figure (`save_cluster_figure`: one image grid, per cluster a row of member
images over a row of their latent maps) and a t-SNE of the latents coloured by label.

Deviations: the post clusters the 3,000 images it trained on; jaxunsup clusters held-out test
images (the training images' latents are the ones the model was fitted to). The k-means is
`jaxunsup.kmeans.KMeans` with the post's arguments: scikit-learn's algorithm (the post used
scikit-learn), with JAX random numbers, so its k-means++ seeds differ from scikit-learn's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from jaxunsup import metrics

KMEANS_ARGS = {  # post 004, both sections
    "n_clusters": 10,
    "n_init": 3,
    "max_iter": 300,
    "tol": 1e-4,
    "random_state": 42,
}


def _features(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty [N, ...] array, got shape {arr.shape}")
    arr = arr.reshape(len(arr), -1)  # [N, D]
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; the model diverged or the data is bad")
    return arr


def check_labels(name: str, labels, n: int) -> np.ndarray:
    """Validates integer class labels [n] (one per image) before anything is trained."""
    arr = np.asarray(labels)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be integer labels of shape ({n},), one per image, got "
            f"{arr.dtype} {arr.shape}; slice the labels together with the images"
        )
    return arr


def kmeans(
    x,
    n_clusters: int = 10,
    *,
    n_init: int = 3,
    max_iter: int = 300,
    tol: float = 1e-4,
    random_state: int = 42,
) -> tuple[np.ndarray, float]:
    """k-means++ with the post's arguments on `x` [N, ...] (trailing axes flattened).

    Returns:
      (assignments int32 [N], inertia): each row's cluster and the sum of squared distances.

    Raises:
      ValueError: `x` is empty, not finite, or has fewer rows than `n_clusters`.
    """
    from jaxunsup.kmeans import KMeans  # scikit-learn's semantics, jit-compiled

    feats = _features(x, "x")
    if not isinstance(n_clusters, int) or not 1 <= n_clusters <= len(feats):
        raise ValueError(f"n_clusters must be in [1, N={len(feats)}], got {n_clusters!r}")
    km = KMeans(
        n_clusters=n_clusters, init="k-means++", n_init=n_init, max_iter=max_iter, tol=tol,
        random_state=random_state,
    ).fit(feats)  # fmt: skip
    return km.labels_.astype(np.int32), float(km.inertia_)


def scores(labels, assignments) -> dict[str, float]:
    """Cluster accuracy (Hungarian), NMI and ARI of `assignments` against `labels`."""
    return {
        "acc": metrics.cluster_acc(labels, assignments),
        "nmi": metrics.nmi(labels, assignments),
        "ari": metrics.ari(labels, assignments),
    }


def latent_map_shape(dim: int) -> tuple[int, int]:
    """The most square (h, w) with h·w = dim, h ≤ w: 100 → (10, 10), 196 → (14, 14), 10 → (2, 5)."""
    if dim <= 0:
        raise ValueError(f"dim must be positive, got {dim}")
    h = max(d for d in range(1, math.isqrt(dim) + 1) if dim % d == 0)
    return h, dim // h


def cluster_rows(
    images, latents, assignments, per_cluster: int = 10
) -> tuple[list[np.ndarray], list[str]]:
    """Per cluster, a row of up to `per_cluster` member images and a row of their latent maps.

    Latents are min-max scaled over the whole set (so maps are comparable across clusters) and
    reshaped to `latent_map_shape`, as post 004 reshapes its 100- and 196-d latents.
    """
    feats = _features(latents, "latents")
    assignments = np.asarray(assignments)
    if len(feats) != len(images) or assignments.shape != (len(feats),):
        raise ValueError(
            f"images ({len(images)}), latents ({len(feats)}) and assignments "
            f"{assignments.shape} must describe the same N images"
        )
    lo, hi = feats.min(), feats.max()
    scaled = (feats - lo) / (hi - lo) if hi > lo else np.zeros_like(feats)
    maps = scaled.reshape(len(feats), *latent_map_shape(feats.shape[1]))  # [N, h, w]
    rows, titles = [], []
    for k in np.unique(assignments):
        idx = np.flatnonzero(assignments == k)[:per_cluster]
        rows += [np.asarray(images)[idx], maps[idx]]
        titles += [f"{k}-original", f"{k}-latent"]
    return rows, titles


def _cells(maps: np.ndarray, size: int) -> np.ndarray:
    """[n, h, w(, 1)] maps → [n, size, size, 1]: nearest-neighbour upscaled by the largest
    integer factor that fits, centred on black."""
    maps = maps.reshape(maps.shape[:3])  # [n, h, w]
    n, h, w = maps.shape
    f = max(1, min(size // h, size // w))
    up = maps.repeat(f, axis=1).repeat(f, axis=2)  # [n, h·f, w·f]
    out = np.zeros((n, size, size, 1), np.float32)
    top, left = (size - h * f) // 2, (size - w * f) // 2
    out[:, top : top + h * f, left : left + w * f, 0] = up
    return out


def save_cluster_figure(
    path: str | os.PathLike, images, latents, assignments, per_cluster: int = 10
) -> Path:
    """Post 004's figure as one image grid: for every cluster (in order), a row of up to
    `per_cluster` member images over a row of their latent maps (scaled as in `cluster_rows`)."""
    from jaxunsup import plots

    rows, _ = cluster_rows(images, latents, assignments, per_cluster)
    size = max(max(r.shape[1], r.shape[2]) for r in rows)
    cells = []
    for row in rows:
        cell = _cells(np.asarray(row, np.float32), size)
        blank = np.zeros((per_cluster - len(cell), size, size, 1), np.float32)
        cells += [cell, blank]
    plots.save_grid(path, np.concatenate(cells), nrow=per_cluster)  # [2K·per_cluster, s, s, 1]
    return Path(path)


def one_thread():
    """A context with one OpenMP/BLAS thread: scikit-learn's k-means and t-SNE threads
    spin-wait when the cores are shared (with JAX's pool or other jobs) and then burn many
    times the CPU time for the same result."""
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency

    return threadpool_limits(limits=1)


def cluster(latents, labels) -> dict:
    """Post 004's k-means of `latents` on one thread, scored against `labels`:
    {acc, nmi, ari, inertia}."""
    with one_thread():
        assignments, inertia = kmeans(latents, **KMEANS_ARGS)
    return {**scores(np.asarray(labels), assignments), "inertia": inertia}


def evaluate(
    workdir: str | os.PathLike,
    latents,
    images,
    labels,
    *,
    seed: int = 0,
    what: str = "test latents",
) -> dict:
    """Clusters `latents` and the raw `images` with post 004's k-means and scores both.

    Writes `clusters.png` (post 004's figure) and `latent_tsne.png` into `workdir`.

    Returns:
      {"latent": {acc, nmi, ari, inertia}, "pixels": {...}, "figures": [names],
       "table": rows {metric, ours, seed} for results.json}.
    """
    from jaxunsup import plots

    workdir = Path(workdir)
    labels = np.asarray(labels)
    out = {}
    with one_thread():
        for name, x in (("latent", latents), ("pixels", images)):
            assignments, inertia = kmeans(x, **KMEANS_ARGS)
            out[name] = {**scores(labels, assignments), "inertia": inertia}
            if name == "latent":
                figure = save_cluster_figure(workdir / "clusters.png", images, latents, assignments)
        tsne = plots.save_tsne(
            workdir / "latent_tsne.png", _features(latents, "latents"), labels, seed=seed,
            title=f"t-SNE of {what} ({len(labels)} images)",
        )  # fmt: skip

    def triple(s):
        return [round(s["acc"], 4), round(s["nmi"], 4), round(s["ari"], 4)]

    out["figures"] = [figure.name, tsne.name]
    out["table"] = [
        {"metric": f"k-means on {what}: acc / NMI / ARI", "ours": triple(out["latent"]),
         "seed": None},
        {"metric": "k-means on raw test pixels (baseline): acc / NMI / ARI",
         "ours": triple(out["pixels"]), "seed": None},
    ]  # fmt: skip
    return out
