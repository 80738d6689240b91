"""k-means initialisations: greedy k-means++ (scikit-learn's `_kmeans_plusplus`), K
distinct weighted rows, or the post's U[0,1) centres."""

from __future__ import annotations

import functools
import typing
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxunsup import kmeans_sparse as sparse
from jaxunsup.kmeans_sparse import dot as _dot

Init = Literal["k-means++", "random", "uniform"]  # an init by name (or a [K, D] array)
INITS = typing.get_args(Init)


def kmeans_plusplus(key, x, n_clusters: int, sample_weight=None, n_local_trials=None):
    """Greedy k-means++ (scikit-learn's `_kmeans_plusplus`): [K, D] centres, O(N·trials) memory.

    Args:
        key: PRNG key.
        x: [N, D] data.
        n_clusters: K.
        sample_weight: [N] non-negative weights (default ones).
        n_local_trials: candidates per centre; default 2 + floor(ln K).
    """
    x = x if isinstance(x, sparse.Ell) else jnp.asarray(x)
    n = x.shape[0]
    w = jnp.ones(n, x.dtype) if sample_weight is None else jnp.asarray(sample_weight, x.dtype)
    trials = n_local_trials or 2 + int(np.log(n_clusters))
    xsq = sparse.row_sqnorms(x)  # [N]

    def sqdist(c):  # [T, D] -> [T, N]
        if isinstance(x, sparse.Ell):  # in chunks of rows: the gathers stay in cache
            xc = sparse.products_in_chunks(c.T, x, max(64, 2**14 // c.shape[0]))
        else:
            xc = _dot(c, x.T)
        return jnp.maximum(jnp.sum(c * c, axis=1)[:, None] - 2.0 * xc + xsq[None, :], 0.0)

    first = jax.random.choice(jax.random.fold_in(key, 0), n, p=w / jnp.sum(w))
    row = functools.partial(sparse.take_dense, x)  # rows of x, dense
    centers = jnp.zeros((n_clusters, x.shape[1]), x.dtype).at[0].set(row(first[None])[0])

    def body(i, state):
        centers, closest = state
        u = jax.random.uniform(jax.random.fold_in(key, i), (trials,), x.dtype)
        cand = jnp.searchsorted(jnp.cumsum(w * closest), u * _dot(closest, w))
        cand = jnp.minimum(cand, n - 1)  # [T]
        rows = row(cand)  # [T, D]
        dist = jnp.minimum(closest[None, :], sqdist(rows))  # [T, N]
        best = jnp.argmin(_dot(dist, w))
        return centers.at[i].set(rows[best]), dist[best]

    return lax.fori_loop(1, n_clusters, body, (centers, sqdist(row(first[None]))[0]))[0]


@functools.partial(jax.jit, static_argnames=("n_clusters", "init"))
def init_centers(key, x, n_clusters: int, init: str = "k-means++", sample_weight=None):
    """Initial [K, D] centres: `k-means++`, `random` (K distinct rows) or `uniform` U[0,1)."""
    w = jnp.ones(x.shape[0], x.dtype) if sample_weight is None else sample_weight
    if init == "k-means++":
        return kmeans_plusplus(key, x, n_clusters, w)
    if init == "random":
        ids = jax.random.choice(key, x.shape[0], (n_clusters,), replace=False, p=w / w.sum())
        return sparse.take_dense(x, ids)
    if init == "uniform":
        return jax.random.uniform(key, (n_clusters, x.shape[1]), x.dtype)
    raise ValueError(f"init must be one of {INITS} or an array, got {init!r}.")
