"""k-means' pure core: Lloyd's sweeps over chunks of rows, the empty-cluster policies, the
post's replay and the [N, K] products behind `predict` and `transform` (`jaxunsup.kmeans`
documents the semantics; this file holds the arrays-in, arrays-out functions it compiles)."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxunsup import backend
from jaxunsup import kmeans_sparse as sparse
from jaxunsup.kmeans_init import init_centers

EMPTY_POLICIES = ("relocate", "keep", "nan")


class KMeansResult(NamedTuple):
    centers: jax.Array  # [K, D]
    labels: jax.Array  # [N] int32, nearest centre of `centers`
    inertia: jax.Array  # [] weighted sum of squared distances to the assigned centres
    n_iter: jax.Array  # [] int32, sweeps with a centre update (+1 for seed_compat's last)


# ----------------------------------------------------------------------------- pure core


def default_chunk_size(n: int, k: int, d: int, exact: bool = False) -> int:
    """Rows per chunk: a [K, C] score block (or [K, C, D] for exact) of about 64 KiB on a
    CPU (it and its argmin passes stay in L2; measured best) and 16 MiB on an accelerator."""
    budget = (2**14 if backend.on_cpu() else 2**22) // (k * d if exact else k)
    return int(min(n, max(64, 2 ** int(math.log2(max(budget, 1))))))


def _tiling(n, k, d, chunk_size=None, streams=None, exact=False) -> tuple[int, int]:
    """(rows per chunk, parallel streams): 2 streams on CPU (one per core of a small box)."""
    if streams is None:
        streams = 2 if backend.on_cpu() and not exact else 1
    chunk = min(n, default_chunk_size(n, k, d, exact) if chunk_size is None else chunk_size)
    while streams > 1 and n - (streams - 1) * -(-n // streams) < chunk:
        streams -= 1  # every stream needs at least one full chunk
    return chunk, streams


_SMALL = 32  # K·(D + 1) up to which a chunk's cluster sums are a masked sum, not a scatter


def _argmin0(scores):
    """(min, argmin) over axis 0 of [K, C] scores, folding groups of 2-5 rows per level:
    elementwise passes that vectorise and stay single fusions, unlike XLA:CPU's argmin
    reduce (~1.5x faster sweeps). Ties go to the lower index and NaN wins (the first NaN),
    as in torch and NumPy."""
    k, c = scores.shape
    idx = lax.broadcasted_iota(jnp.int32, scores.shape, 0)
    while scores.shape[0] > 1:
        g = next((g for g in (4, 5, 3, 2) if scores.shape[0] % g == 0), None)
        if g is None:  # a prime above 5: one +inf row, which never wins, makes it even
            scores = jnp.concatenate([scores, jnp.full((1, c), jnp.inf, scores.dtype)])
            idx, g = jnp.concatenate([idx, jnp.full((1, c), k, idx.dtype)]), 2
        v, i = scores.reshape(-1, g, c), idx.reshape(-1, g, c)  # groups of g rows, in order
        best = v[:, 0]
        for t in range(1, g):
            best = jnp.minimum(best, v[:, t])  # NaN-propagating
        arg = i[:, g - 1]
        for t in range(g - 2, -1, -1):  # the first row that holds the minimum (or a NaN)
            hit = (v[:, t] == best) | (jnp.isnan(v[:, t]) & jnp.isnan(best))
            arg = jnp.where(hit, i[:, t], arg)
        scores, idx = best, arg
    return scores[0], idx[0]


def _chunk_scores(xc, centers, cn, ct, exact: bool):
    """[K, C]: each centre's squared distance to each row of the chunk `xc` [C, D], less
    ||x||² unless `exact` (the post's (x − c)² summed over D)."""
    if exact:
        return jnp.sum((centers[:, None, :] - xc[None, :, :]) ** 2, axis=2)  # [K, C]
    return cn[:, None] - 2.0 * sparse.center_products(centers, xc, ct)  # ||c||² − 2c·x, [K, C]


def _sweep(x, w, centers, labels, *, chunk, update, exact, streams=1):
    """One pass over x in chunks of rows; returns a dict of the results.

    update=True: labels, per-cluster weighted sums [K, D] and weights [K] and the number
    of changed labels. update=False: labels and the inertia, sum w·||x − c[label]||².
    `streams` contiguous parts of x are walked side by side with separate accumulators (the
    compiled path's default on CPU; XLA:CPU still runs them on one core, which is why large
    eager fits use `_lloyd_threads`).
    """
    n, k = x.shape[0], centers.shape[0]
    part = -(-n // streams)  # rows per stream; the caller keeps chunk <= the last part
    cn = jnp.sum(centers * centers, axis=1)  # [K]
    ct = centers.T if isinstance(x, sparse.Ell) else None  # [D, K], gathered from per nonzero
    bufs = {"labels": labels}

    def zeros():
        if update:  # the weights ride along as column D of the sums
            z = jnp.zeros((), jnp.int32)
            return {"sums": jnp.zeros((k, x.shape[1] + 1), x.dtype), "changed": z}
        return {"inertia": jnp.zeros((), x.dtype)}

    def one(i, lo, hi, bufs, acc):
        # A stream's last chunk is shifted back to end at `hi`; rows an earlier chunk
        # already counted get weight 0 (their labels are simply written twice).
        start = lo + jnp.minimum(i * chunk, hi - lo - chunk)
        fresh = start + jnp.arange(chunk) >= lo + i * chunk  # [C]
        xc = sparse.slice_rows(x, start, chunk)  # [C, D]
        wc = jnp.where(fresh, lax.dynamic_slice_in_dim(w, start, chunk), 0.0)  # [C]
        best, lab = _argmin0(_chunk_scores(xc, centers, cn, ct, exact))  # [C]
        bufs = dict(bufs, labels=lax.dynamic_update_slice_in_dim(bufs["labels"], lab, start, 0))
        if not update:
            return bufs, {"inertia": acc["inertia"] + _chunk_inertia(xc, wc, centers, lab, best)}
        old = lax.dynamic_slice_in_dim(labels, start, chunk)
        if isinstance(xc, sparse.Ell):
            sums = acc["sums"]  # summed in a pass of their own, below
        else:
            sums = acc["sums"] + _cluster_sums(xc, wc, lab, k)
        return bufs, {
            "sums": sums,
            "changed": acc["changed"] + jnp.sum((lab != old) & fresh, dtype=jnp.int32),
        }

    def step(i, carry):
        bufs, accs = carry
        out = []
        for s, acc in enumerate(accs):
            bufs, acc = one(i, s * part, min(n, (s + 1) * part), bufs, acc)
            out.append(acc)
        return bufs, tuple(out)

    init = (bufs, tuple(zeros() for _ in range(streams)))
    n_steps = -(-part // chunk)
    bufs, accs = step(0, init) if n_steps == 1 else lax.fori_loop(0, n_steps, step, init)
    out = bufs | {name: sum(a[name] for a in accs) for name in accs[0]}
    if update and isinstance(x, sparse.Ell):
        out["sums"] = sparse.cluster_sums(x, w, out["labels"], k, min(chunk, n))
    if update:
        out["sums"], out["wsum"] = out["sums"][:, :-1], out["sums"][:, -1]
    return out


def _chunk_inertia(xc, wc, centers, lab, best):
    """Σ w·||x − c[label]||² over a chunk; `best` = ||c||² − 2c·x at the label."""
    if isinstance(xc, sparse.Ell):  # no dense rows to subtract: ||x||² + best
        return jnp.sum(wc * jnp.maximum(sparse.sqnorms(xc) + best, 0.0))
    diff = xc - centers[lab]  # [C, D]
    return jnp.sum(wc * jnp.sum(diff * diff, axis=1))


def _cluster_sums(xc, wc, lab, k):
    """[K, D + 1]: each cluster's weighted row sum, and its weight in column D."""
    if isinstance(xc, sparse.Ell):
        return sparse.cluster_sums(xc, wc, lab, k, xc.shape[0])
    xw = jnp.concatenate([xc * wc[:, None], wc[:, None]], axis=1)  # [C, D + 1]
    if k * xw.shape[1] <= _SMALL:  # a masked sum beats a scatter's per-row cost
        hit = lab[None, :] == jnp.arange(k)[:, None]  # [K, C]
        return jnp.sum(jnp.where(hit[:, :, None], xw[None, :, :], 0.0), axis=1)
    return jax.ops.segment_sum(xw, lab, k)  # [K, D + 1]


def _sq_dist_to(x, centers, labels):
    """||x_i − centres[labels_i]||² for every row, [N] (exact for dense rows)."""
    if isinstance(x, sparse.Ell):
        cn = jnp.sum(centers * centers, axis=1)[labels]  # [N], never a dense [N, D]
        return jnp.maximum(sparse.sqnorms(x) - 2.0 * sparse.dot_rows(x, centers, labels) + cn, 0)
    return jnp.sum((x - centers[labels]) ** 2, axis=1)


def _relocate(x, w, labels, centers, sums, wsum):
    """scikit-learn's empty-cluster fix: each empty cluster takes the next point farthest
    from its (old) centre."""
    dist = _sq_dist_to(x, centers, labels)  # [N], exact, as scikit-learn
    empty_ids = jnp.nonzero(wsum == 0, size=wsum.shape[0], fill_value=0)[0]
    n_moves = jnp.where(jnp.max(dist) > 0, jnp.sum(wsum == 0), 0)

    def move(j, state):
        sums, wsum, dist = state
        far, new = jnp.argmax(dist), empty_ids[j]
        old, wf = labels[far], w[far]
        row = sparse.take_dense(x, far[None])[0]  # [D]
        sums = sums.at[old].add(-row * wf).at[new].set(row * wf)
        wsum = wsum.at[old].add(-wf).at[new].set(wf)
        return sums, wsum, dist.at[far].set(-jnp.inf)

    return lax.fori_loop(0, n_moves, move, (sums, wsum, dist))[:2]


def _new_centers(centers, sums, wsum, empty):
    means = sums / jnp.where(wsum > 0, wsum, 1.0)[:, None]
    fallback = {
        "relocate": means[jnp.argmax(wsum)][None, :],  # scikit-learn: the heaviest cluster
        "keep": centers,
        "nan": jnp.full_like(centers, jnp.nan),
    }[empty]
    return jnp.where((wsum > 0)[:, None], means, fallback)


def _lloyd(x, w, centers, tol, max_iter, *, chunk, empty, streams=1):
    """scikit-learn's `_kmeans_single_lloyd` on (centred) x; tol is absolute here."""

    def body(s):
        i, c, labels, _ = s
        r = _sweep(x, w, c, labels, chunk=chunk, update=True, exact=False, streams=streams)
        sums, wsum = r["sums"], r["wsum"]
        if empty == "relocate":
            args = (x, w, r["labels"], c, sums, wsum)
            sums, wsum = lax.cond(jnp.any(wsum == 0), _relocate, lambda *a: a[-2:], *args)
        new = _new_centers(c, sums, wsum, empty)
        done = (r["changed"] == 0) | (jnp.sum((new - c) ** 2) <= tol)
        return i + 1, new, r["labels"], done

    labels0 = jnp.full(x.shape[0], -1, jnp.int32)
    init = (jnp.zeros((), jnp.int32), centers, labels0, jnp.zeros((), bool))
    n_iter, centers, labels, _ = lax.while_loop(lambda s: (s[0] < max_iter) & ~s[3], body, init)
    r = _sweep(x, w, centers, labels, chunk=chunk, update=False, exact=False, streams=streams)
    return KMeansResult(centers, r["labels"], r["inertia"], n_iter)


def _seed_compat(x, w, centers, max_iter, *, chunk):
    """The post's loop: max_iter − 1 updates, then one last assignment; NaN when empty."""

    labels = jnp.zeros(x.shape[0], jnp.int32)

    def body(_, c):
        r = _sweep(x, w, c, labels, chunk=chunk, update=True, exact=True)
        return r["sums"] / r["wsum"][:, None]  # 0/0 = NaN, as torch.mean of no rows

    centers = lax.fori_loop(0, max_iter - 1, body, centers)
    r = _sweep(x, w, centers, labels, chunk=chunk, update=False, exact=True)
    return KMeansResult(centers, r["labels"], r["inertia"], jnp.asarray(max_iter, jnp.int32))


class _Plan(NamedTuple):
    """The static (hashable) half of a fit: one compilation per distinct plan and shapes."""

    n_clusters: int
    init: str  # one of INITS or "array"
    n_init: int
    empty: str
    seed_compat: bool
    chunk: int
    streams: int


def _plan(k, init, n_init, empty, exact, n, d, chunk_size, streams) -> _Plan:
    """The `_Plan` of a call (cached per backend: repeated small fits skip the tiling
    arithmetic)."""
    return _cached_plan(k, init, n_init, empty, exact, n, d, chunk_size, streams, backend.on_cpu())


@functools.lru_cache(maxsize=64)
def _cached_plan(k, init, n_init, empty, exact, n, d, chunk_size, streams, cpu) -> _Plan:
    return _Plan(k, init, n_init, empty, exact, *_tiling(n, k, d, chunk_size, streams, exact))


def _fit(key, x, w, init_array, tol, max_iter, plan: _Plan):
    n_clusters, init, n_init, empty, seed_compat, chunk, streams = plan
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key(key)  # an int32 seed
    if seed_compat:
        c0 = init_array if init == "array" else init_centers(key, x, n_clusters, "uniform")
        return _seed_compat(x, w, c0.astype(x.dtype), max_iter, chunk=chunk)
    xc, mean, tol, starts = _setup(key, x, w, init_array, tol, plan)

    def one(c0):
        return _lloyd(xc, w, c0, tol, max_iter, chunk=chunk, empty=empty, streams=streams)

    if n_init == 1:
        res = one(starts[0])
    else:
        runs = jax.vmap(one)(starts)
        best = jnp.argmin(jnp.where(jnp.isnan(runs.inertia), jnp.inf, runs.inertia))
        res = jax.tree.map(lambda a: a[best], runs)
    return res._replace(centers=res.centers + mean[None, :])


def _setup(key, x, w, init_array, tol, plan: _Plan):
    """(centred x, mean, absolute tol, initial centres [n_init, K, D] of the centred x) for
    Lloyd, compiled or threaded. `key` is a PRNG key."""
    n_clusters, init, n_init = plan.n_clusters, plan.init, plan.n_init
    if isinstance(x, sparse.Ell):  # centring would fill the zeros in: scikit-learn doesn't
        mean, xc = jnp.zeros(x.shape[1], x.dtype), x
        tol = tol * sparse.feature_variance(x)
    else:
        mean = jnp.mean(x, axis=0)  # centred, as scikit-learn does, for float32 accuracy
        xc = x - mean[None, :]
        tol = tol * jnp.mean(xc * xc)  # tol × mean feature variance (np.var, ddof=0)

    def start(k):
        if init == "array":
            return init_array.astype(x.dtype) - mean[None, :]
        if init == "uniform":
            return init_centers(k, x, n_clusters, "uniform") - mean[None, :]
        return init_centers(k, xc, n_clusters, init, w)

    starts = start(key)[None] if n_init == 1 else jax.vmap(start)(jax.random.split(key, n_init))
    return xc, mean, tol, starts


@functools.partial(jax.jit, static_argnames=("chunk", "streams"))
def _assign(x, centers, w=None, *, chunk, streams):
    """(labels, inertia) of x under fixed centres; w: [N] weights (default ones)."""
    shift = jnp.nan_to_num(jnp.nanmean(centers, axis=0))  # centre both, for float32 accuracy
    if isinstance(x, sparse.Ell):
        shift = jnp.zeros_like(shift)  # sparse rows stay uncentred
    xs, cs = x if isinstance(x, sparse.Ell) else x - shift[None, :], centers - shift[None, :]
    w = jnp.ones(x.shape[0], x.dtype) if w is None else w
    labels = jnp.zeros(x.shape[0], jnp.int32)
    r = _sweep(xs, w, cs, labels, chunk=chunk, update=False, exact=False, streams=streams)
    return r["labels"], r["inertia"]


@functools.partial(jax.jit, static_argnames="chunk")
def _distances(x, centers, *, chunk):
    if isinstance(x, sparse.Ell):
        d2 = sparse.sqnorms(x)[:, None] + jnp.sum(centers * centers, 1)[None, :]
        d2 = d2 - 2.0 * sparse.products_in_chunks(centers.T, x, chunk).T  # [N, K]
        return jnp.sqrt(jnp.maximum(d2, 0.0))
    shift = jnp.mean(centers, axis=0)[None, :]
    xs, cs = x - shift, centers - shift
    d2 = jnp.sum(xs * xs, 1)[:, None] - 2.0 * sparse.dot(xs, cs.T) + jnp.sum(cs * cs, 1)[None, :]
    return jnp.sqrt(jnp.maximum(d2, 0.0))  # [N, K]
