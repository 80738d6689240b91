"""k-means over a device mesh: Lloyd's sweep under `shard_map`, and k-means|| for large N.

Rows are split over the mesh's "data" axis (padding rows carry weight 0 and never move a
centre); the centres are replicated. Each device sweeps its own rows with `kmeans_core`'s
chunked sweep; the cluster sums and weights, the changed-label count and the inertia are
summed over devices by one `psum`, so the sweep moves no data between devices. An emptied
cluster takes the globally farthest point (scikit-learn's rule, as on one device): each
device offers its farthest row, the largest wins (ties: the lowest row). With the same
initial centres the result is one device's (labels, inertia, centres), up to float rounding.

`init="k-means||"` is Bahmani et al.'s scalable k-means++ (2012), as in Spark MLlib: a few
rounds that each keep every row with probability ℓ·w·d²/φ, then the candidates, weighted by
the rows nearest to them, reclustered by k-means++ and Lloyd on one device.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from jaxunsup import distributed
from jaxunsup.distributed import DATA
from jaxunsup.kmeans_core import (
    KMeansResult,
    _new_centers,
    _sq_dist_to,
    _sweep,
    default_chunk_size,
)
from jaxunsup.kmeans_init import kmeans_plusplus

SHARDED_INITS = ("k-means++", "k-means||", "random")


def mesh_of(x, mesh=None):
    """The mesh to fit on: `mesh`, else a sharded `x`'s own (one "data" axis), else None."""
    if mesh is not None:
        return mesh
    sharding = getattr(x, "sharding", None)
    if isinstance(sharding, jax.sharding.NamedSharding) and sharding.mesh.size > 1:
        if tuple(sharding.mesh.axis_names) != (DATA,):
            raise ValueError(f"x is sharded over {sharding.mesh.axis_names}; use one 'data' axis")
        return sharding.mesh
    return None


def place(x, w, mesh):
    """(x, w, valid) padded to a multiple of the mesh size and split over "data" by rows."""
    n = x.shape[0]
    pad = -n % mesh.size
    x = jnp.concatenate([jnp.asarray(x), jnp.zeros((pad, x.shape[1]), x.dtype)])
    w = jnp.concatenate([jnp.asarray(w, x.dtype), jnp.zeros(pad, x.dtype)])
    valid = jnp.arange(n + pad) < n
    return jax.device_put((x, w, valid), distributed.rows(mesh))


def _shard_map(fn, mesh, in_specs, out_specs, check_vma=True):
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=check_vma)


@functools.partial(jax.jit, static_argnames=("mesh", "max_iter", "empty"))
def lloyd(x, w, valid, centers, tol, *, mesh, max_iter: int, empty: str = "relocate"):
    """Lloyd's algorithm on row-sharded (x, w, valid) from replicated `centers` [K, D];
    `tol` is absolute (on the squared centre shift). Returns KMeansResult with sharded labels."""
    k, d = centers.shape
    chunk = default_chunk_size(x.shape[0] // mesh.size, k, d)

    def local(x, w, valid, c0, tol):
        def body(s):
            i, c, labels, _ = s
            r = _sweep(x, w, c, labels, chunk=chunk, update=True, exact=False)
            sums, wsum, changed = lax.psum((r["sums"], r["wsum"], r["changed"]), DATA)
            if empty == "relocate":
                args = (x, w, valid, r["labels"], c, sums, wsum)
                sums, wsum = lax.cond(jnp.any(wsum == 0), _relocate, lambda *a: a[-2:], *args)
            new = _new_centers(c, sums, wsum, empty)
            return i + 1, new, r["labels"], (changed == 0) | (jnp.sum((new - c) ** 2) <= tol)

        labels0 = jnp.full(x.shape[0], -1, jnp.int32)
        init = (jnp.zeros((), jnp.int32), c0, labels0, jnp.zeros((), bool))
        n_iter, c, labels, _ = lax.while_loop(lambda s: (s[0] < max_iter) & ~s[3], body, init)
        r = _sweep(x, w, c, labels, chunk=chunk, update=False, exact=False)
        return c, r["labels"], lax.psum(r["inertia"], DATA), n_iter

    rows = P(DATA)  # kmeans_core's sweep starts its sums from constants: no type check here
    fn = _shard_map(local, mesh, (rows,) * 3 + (P(), P()), (P(), rows, P(), P()), False)
    return KMeansResult(*fn(x, w, valid, centers, tol))


def _relocate(x, w, valid, labels, centers, sums, wsum):
    """`kmeans_core._relocate` across devices: each empty cluster takes the next globally
    farthest row from its centre (the lowest row on a tie), moved by `psum`s of one row."""
    me = lax.axis_index(DATA)
    dist = jnp.where(valid, _sq_dist_to(x, centers, labels), -jnp.inf)  # [n_local]
    empty_ids = jnp.nonzero(wsum == 0, size=wsum.shape[0], fill_value=0)[0]
    n_moves = jnp.where(lax.pmax(jnp.max(dist), DATA) > 0, jnp.sum(wsum == 0), 0)

    def move(j, state):
        sums, wsum, dist = state
        far = jnp.argmax(dist)
        top = lax.pmax(dist[far], DATA)
        owner = lax.pmin(jnp.where(dist[far] == top, me, jnp.iinfo(jnp.int32).max), DATA)
        mine = me == owner
        row, wf, old = lax.psum(
            (jnp.where(mine, x[far], 0.0), jnp.where(mine, w[far], 0.0),
             jnp.where(mine, labels[far], 0)),
            DATA,
        )  # fmt: skip
        new = empty_ids[j]
        sums = sums.at[old].add(-row * wf).at[new].set(row * wf)
        wsum = wsum.at[old].add(-wf).at[new].set(wf)
        return sums, wsum, jnp.where(mine, dist.at[far].set(-jnp.inf), dist)

    return lax.fori_loop(0, n_moves, move, (sums, wsum, dist))[:2]


def _min_sqdist(x, cands, ok, block: int):
    """Per row of x [n, D], (min squared distance, argmin) over the `ok` rows of `cands`
    [M, D], in blocks of rows so an [n, M] matrix never exists."""
    cn = jnp.where(ok, jnp.sum(cands * cands, axis=1), jnp.inf)  # [M]

    def one(xb):  # [b, D]
        d2 = jnp.sum(xb * xb, 1)[:, None] - 2.0 * jnp.dot(xb, cands.T, precision="highest")
        d2 = d2 + cn[None, :]  # [b, M]
        return jnp.maximum(jnp.min(d2, axis=1), 0.0), jnp.argmin(d2, axis=1).astype(jnp.int32)

    n = x.shape[0]
    pad = -n % block
    xb = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]).reshape(-1, block, x.shape[1])
    d2, idx = lax.map(one, xb)
    return d2.reshape(-1)[:n], idx.reshape(-1)[:n]


@functools.partial(jax.jit, static_argnames=("mesh", "n_clusters", "rounds", "ell"))
def _candidates(key, x, w, valid, *, mesh, n_clusters: int, rounds: int, ell: int):
    """k-means||'s rounds: (candidates [M, D], their weights [M], which are real [M])."""
    cap = math.ceil(2 * ell / mesh.size) + 8  # rows a device may add a round
    n_local = x.shape[0] // mesh.size
    block = max(64, 2**20 // (1 + rounds * cap * mesh.size))

    def local(x, w, valid, key):
        me = lax.axis_index(DATA)
        rows = me * n_local + jnp.arange(n_local)  # global row numbers: draws per row

        def draws(k):  # [n_local] uniforms that depend on the global row, not the sharding
            return jax.vmap(lambda r: jax.random.uniform(jax.random.fold_in(k, r)))(rows)

        score = jnp.where(valid & (w > 0), jnp.log(w) - jnp.log(-jnp.log(draws(key))), -jnp.inf)
        best = lax.pmax(jnp.max(score), DATA)  # Gumbel-max: the first centre ∝ w
        owner = lax.pmin(jnp.where(jnp.max(score) == best, me, 2**30), DATA)
        first = lax.psum(jnp.where(me == owner, x[jnp.argmax(score)], 0.0), DATA)
        cands, ok = first[None, :], jnp.ones(1, bool)
        d2 = _min_sqdist(x, cands, ok, block)[0]
        for r in range(rounds):
            phi = lax.psum(jnp.sum(w * d2), DATA)
            p = jnp.minimum(1.0, ell * w * d2 / jnp.maximum(phi, 1e-30))
            pick = valid & (draws(jax.random.fold_in(key, r + 1)) < p)
            idx = jnp.nonzero(pick, size=cap, fill_value=0)[0]
            new_ok = jnp.arange(cap) < jnp.sum(pick)
            new = lax.all_gather(x[idx], DATA, tiled=True)  # [devices·cap, D]: candidates only
            new_ok = lax.all_gather(new_ok, DATA, tiled=True)
            d2 = jnp.minimum(d2, _min_sqdist(x, new, new_ok, block)[0])
            cands, ok = jnp.concatenate([cands, new]), jnp.concatenate([ok, new_ok])
        nearest = _min_sqdist(x, cands, ok, block)[1]
        weight = lax.psum(jax.ops.segment_sum(jnp.where(valid, w, 0.0), nearest, len(ok)), DATA)
        return cands, weight, ok

    rows_spec = P(DATA)
    # all_gather's result is the same on every device, which the type check cannot see
    fn = _shard_map(local, mesh, (rows_spec,) * 3 + (P(),), (P(), P(), P()), check_vma=False)
    return fn(x, w, valid, key)


def kmeans_parallel(key, x, w, valid, n_clusters: int, *, mesh, rounds: int = 5, ell=None):
    """k-means|| initial centres [K, D] for row-sharded (x, w, valid): `rounds` rounds of
    oversampling ℓ (default 2K), then weighted k-means++ and Lloyd on the candidates."""
    from jaxunsup.kmeans import kmeans  # the one-device fit, on the few candidates

    k_cands, k_fit = jax.random.split(key)
    ell = 2 * n_clusters if ell is None else int(ell)
    cands, weight, ok = _candidates(
        k_cands, x, w, valid, mesh=mesh, n_clusters=n_clusters, rounds=rounds, ell=ell
    )
    cands, weight = distributed.to_host((cands, weight))
    ok = distributed.to_host(ok) & (weight > 0)
    if int(ok.sum()) < n_clusters:
        raise ValueError(
            f"k-means|| found {int(ok.sum())} candidates for n_clusters={n_clusters}; "
            "use init='k-means++' or more rounds"
        )
    res = kmeans(k_fit, np.asarray(cands[ok]), n_clusters, sample_weight=weight[ok], n_init=1)
    return jnp.asarray(res.centers, x.dtype)


def fit(key, x, n_clusters: int, *, mesh, init="k-means++", max_iter: int = 300,
        tol: float = 1e-4, sample_weight=None, empty: str = "relocate"):  # fmt: skip
    """k-means of [N, D] `x` (NumPy, or a row-sharded jax.Array) over `mesh`: the centres
    [K, D] (replicated), labels [N] (sharded), inertia and sweeps, as `kmeans.kmeans`."""
    n, d = x.shape
    key = jax.random.key(key) if isinstance(key, int | np.integer) else key
    w = np.ones(n, np.float32) if sample_weight is None else sample_weight
    xs, ws, valid = place(x, w, mesh)
    mean = jnp.sum(xs * valid[:, None], axis=0) / n  # centred, as on one device
    xs = jnp.where(valid[:, None], xs - mean[None, :], 0.0)
    tol = tol * jnp.sum(xs * xs) / (n * d)
    if isinstance(init, str) and init == "k-means||":
        c0 = kmeans_parallel(key, xs, ws, valid, n_clusters, mesh=mesh)
    elif isinstance(init, str) and init in ("k-means++", "random"):
        c0 = _init_on_mesh(key, xs, ws, n_clusters, init)
    else:
        c0 = jnp.asarray(init, xs.dtype) - mean[None, :]
    c0 = jax.device_put(c0, distributed.replicated(mesh))
    res = lloyd(xs, ws, valid, c0, tol, mesh=mesh, max_iter=max_iter, empty=empty)
    return res._replace(centers=res.centers + mean[None, :], labels=res.labels[:n])


@functools.partial(jax.jit, static_argnames=("n_clusters", "init"))
def _init_on_mesh(key, x, w, n_clusters, init):
    """k-means++ or K weighted-distinct rows on the sharded rows (XLA places the work;
    padding rows have weight 0, so they are never drawn)."""
    if init == "k-means++":
        return kmeans_plusplus(key, x, n_clusters, w)
    ids = jax.random.choice(key, x.shape[0], (n_clusters,), replace=False, p=w / jnp.sum(w))
    return x[ids]
