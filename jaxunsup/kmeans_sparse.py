"""Sparse rows for the k-means family: a CSR matrix as padded rows (ELLPACK).

Each row keeps its nonzeros' column indices and values, padded to the longest row (padding:
column 0, value 0, which adds nothing to any product or sum). Fixed shapes let a chunk of
rows be sliced, gathered and jit-compiled like dense rows, and the k-means steps reduce to
three kernels: centres·xᵀ gathers each nonzero's K centre coordinates (2·nnz·K work, where
densifying a chunk would multiply by every zero as well), the cluster sums scatter-add each
nonzero into its cluster's row, and ||x||² sums the values squared. Rows of very unequal
length cost the padding (N × the longest row).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["idx", "val"], meta_fields=["n_features"]
)
@dataclasses.dataclass(frozen=True)
class Ell:
    """Sparse rows: `idx` [N, R] int32 column indices, `val` [N, R] values (0 = padding)."""

    idx: jax.Array
    val: jax.Array
    n_features: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.val.shape[0], self.n_features

    @property
    def dtype(self):
        return self.val.dtype

    ndim = 2


def from_csr(x, dtype) -> Ell:
    """A scipy CSR matrix (or array) as `Ell` of NumPy arrays; duplicates are summed first."""
    x = x.tocsr()
    if not x.has_canonical_format:  # duplicates summed on a copy: the caller's X stays
        x = x.copy()
        x.sum_duplicates()
    n = x.shape[0]
    counts = np.diff(x.indptr)
    width = max(int(counts.max(initial=0)), 1)
    rows = np.repeat(np.arange(n), counts)
    pos = np.arange(x.nnz) - np.repeat(x.indptr[:-1], counts)  # place within its row
    idx = np.zeros((n, width), np.int32)
    val = np.zeros((n, width), dtype)
    idx[rows, pos], val[rows, pos] = x.indices, x.data
    return Ell(idx, val, x.shape[1])


def rows(x: Ell, start, size: int) -> Ell:
    """Rows start..start+size (start may be traced)."""
    idx, val = (lax.dynamic_slice_in_dim(a, start, size) for a in (x.idx, x.val))
    return Ell(idx, val, x.n_features)


def take(x: Ell, ids) -> Ell:
    return Ell(x.idx[ids], x.val[ids], x.n_features)


def densify(x: Ell) -> jax.Array:
    """[n, D] dense rows (for a few rows: k-means++ candidates, reassigned centres)."""
    n = x.val.shape[0]
    dense = jnp.zeros((n, x.n_features), x.dtype)
    return dense.at[jnp.arange(n)[:, None], x.idx].add(x.val)  # [n, D]


def products(centers_t, x: Ell) -> jax.Array:
    """centres·xᵀ, [K, n], from the centres transposed ([D, K], made once a sweep): each
    nonzero times its feature's row of them, at full precision."""
    gathered = centers_t[x.idx]  # [n, R, K]
    return jnp.einsum("nr,nrk->kn", x.val, gathered, precision=lax.Precision.HIGHEST)


def sqnorms(x: Ell) -> jax.Array:
    return jnp.sum(x.val * x.val, axis=1)  # [n]


def add_cluster_sums(sums, x: Ell, w, labels) -> jax.Array:
    """sums [K, D + 1] plus, per cluster, the weighted sum of its rows and (column D) of its
    weights, scattered into `sums` itself."""
    k, d = sums.shape[0], x.n_features
    flat = (labels[:, None] * (d + 1) + x.idx).reshape(-1)  # [n·R] into the flat [K, D + 1]
    sums = sums.reshape(-1).at[flat].add((x.val * w[:, None]).reshape(-1))
    return sums.at[labels * (d + 1) + d].add(w).reshape(k, d + 1)


def cluster_sums(x: Ell, w, labels, k: int, chunk: int) -> jax.Array:
    """`add_cluster_sums` from zero over x in chunks of rows, a pass of its own: XLA:CPU ran
    the scatter several times slower inside the loop that computes the labels
    (benchmarks/README.md)."""
    n = x.val.shape[0]

    def body(i, sums):
        start = jnp.minimum(i * chunk, n - chunk)  # the last chunk shifted back to fit
        fresh = start + jnp.arange(chunk) >= i * chunk  # rows not counted before
        wc = jnp.where(fresh, lax.dynamic_slice_in_dim(w, start, chunk), 0.0)
        lab = lax.dynamic_slice_in_dim(labels, start, chunk)
        return add_cluster_sums(sums, rows(x, start, chunk), wc, lab)

    zeros = jnp.zeros((k, x.n_features + 1), x.dtype)
    return lax.fori_loop(0, -(-n // chunk), body, zeros)


def dot_rows(x: Ell, centers, labels) -> jax.Array:
    """x_i · centres[labels_i] for every row, [n]."""
    return jnp.sum(x.val * centers[labels[:, None], x.idx], axis=1)


def feature_variance(x: Ell) -> jax.Array:
    """Mean over features of each feature's variance (np.var's ddof=0), as dense X's."""
    n = x.val.shape[0]
    col = jnp.zeros(x.n_features, x.dtype).at[x.idx.reshape(-1)].add(x.val.reshape(-1)) / n
    sq = jnp.sum(x.val * x.val) / n  # Σ_j E[x_j²]
    return (sq - jnp.sum(col * col)) / x.n_features


def products_in_chunks(centers_t, x: Ell, chunk: int) -> jax.Array:
    """`products` over row chunks of `chunk` (the [chunk, R, K] gather stays in cache), [K, N]."""
    n = x.val.shape[0]
    pad = -n % chunk
    idx, val = (jnp.pad(a, ((0, pad), (0, 0))) for a in (x.idx, x.val))  # zero rows: no-ops
    parts = (idx.reshape(-1, chunk, idx.shape[1]), val.reshape(-1, chunk, val.shape[1]))
    out = lax.map(lambda p: products(centers_t, Ell(p[0], p[1], x.n_features)), parts)
    return jnp.moveaxis(out, 0, 1).reshape(centers_t.shape[1], -1)[:, :n]  # [K, N]


# ----------------------------------------------------------------------------- dense or sparse rows


def dot(a, b):
    """a @ b at full float32 precision: a distance product's argmin must not depend on
    an accelerator's default (TF32 on recent GPUs flips labels at near-ties)."""
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


def slice_rows(x, start, size):
    if isinstance(x, Ell):
        return rows(x, start, size)
    return lax.dynamic_slice_in_dim(x, start, size)


def take_dense(x, ids):
    """Rows `ids` of x as a dense [len(ids), D] array."""
    return densify(take(x, ids)) if isinstance(x, Ell) else x[ids]


def center_products(centers, xc, ct=None):
    """centres·xᵀ, [K, C]; `ct` = centres.T for sparse rows."""
    if isinstance(xc, Ell):
        return products(centers.T if ct is None else ct, xc)
    return dot(centers, xc.T)


def row_sqnorms(x):
    return sqnorms(x) if isinstance(x, Ell) else jnp.sum(x * x, axis=1)
