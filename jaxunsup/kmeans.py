"""k-means (post 000 §1) with scikit-learn's semantics — experiment `kmeans-circles`.

Seed: `000_1926af310522df2b.txt` §1 ("K-평균 알고리즘"): `make_circles(500, noise=0.1)`, two
clusters, centroids drawn from U[0,1), `max_iteration=5` sweeps of a per-point Python loop,
the last sweep assigning without updating, and `torch.mean` of an empty cluster giving NaN.

Here Lloyd's algorithm is one jit-compiled `lax.while_loop`. Each sweep walks over X in
chunks of rows, so the [N, K] distance matrix never exists at once: per chunk, one matrix
product gives ||c||² − 2c·x ([K, C]; ||x||² cannot change the argmin), a few elementwise
passes give the argmin (XLA:CPU's own argmin reduce is slow), and a segment sum adds the
chunk's weighted rows to its clusters (a masked sum when K·D is tiny). XLA:CPU runs a compiled
loop on one core, so on a CPU a large eager fit runs Lloyd's loop from the host instead, two
threads each sweeping half of X with the compiled sweep (1.6-1.9× faster on 2 cores).

Semantics follow `sklearn.cluster.KMeans(algorithm="lloyd")`: X is centred first (float32
precision), tol is relative to the mean feature variance, a sweep stops on unchanged labels
or a squared centre shift <= tol, empty clusters move to the points farthest from their
centres, `k-means++` is greedy with 2 + floor(ln k) trials, `n_init` restarts run together
under `vmap` and the lowest inertia wins, and a sample weight of k equals k copies.

Deviations: labels are always recomputed against the final centres (scikit-learn skips that
after a sweep with unchanged labels — the same labels unless there are exact ties); with
several empty clusters the far points are dealt out farthest-first (scikit-learn's order is
argpartition's); random numbers come from JAX keys, so inits differ from scikit-learn's.

`seed_compat=True` replays the post: U[0,1) centroids (or the `init` array), exactly
`max_iter` assignments, the last one without an update, direct (x − c)² distances, and NaN
centroids for empty clusters, which then win every argmin as they do in torch. `empty="nan"`
gives that last behaviour without the rest.

Run: `jaxunsup run kmeans-circles --workdir runs/kmeans-circles`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning

INITS = ("k-means++", "random", "uniform")
EMPTY_POLICIES = ("relocate", "keep", "nan")


@dataclasses.dataclass(frozen=True)
class CirclesConfig:
    """Post 000 §1 on `make_circles`; defaults are the post's settings."""

    n_samples: int = 500
    noise: float = 0.1
    n_clusters: int = 2
    max_iter: int = 5  # the post's max_iteration, used by the seed_compat replay
    seed: int = 0
    init: str = "k-means++"  # the default (non-replay) fit
    n_init: int = 1
    fit_max_iter: int = 300
    tol: float = 1e-4


class KMeansResult(NamedTuple):
    centers: jax.Array  # [K, D]
    labels: jax.Array  # [N] int32, nearest centre of `centers`
    inertia: jax.Array  # [] weighted sum of squared distances to the assigned centres
    n_iter: jax.Array  # [] int32, sweeps with a centre update (+1 for seed_compat's last)


# ----------------------------------------------------------------------------- pure core


def default_chunk_size(n: int, k: int, d: int, exact: bool = False) -> int:
    """Rows per chunk: a [K, C] score block (or [K, C, D] for exact) of about 64 KiB on a
    CPU (it and its argmin passes stay in L2; measured best) and 16 MiB on an accelerator."""
    budget = (2**14 if jax.default_backend() == "cpu" else 2**22) // (k * d if exact else k)
    return int(min(n, max(64, 2 ** int(math.log2(max(budget, 1))))))


def _tiling(n, k, d, chunk_size=None, streams=None, exact=False) -> tuple[int, int]:
    """(rows per chunk, parallel streams): 2 streams on CPU (one per core of a small box)."""
    if streams is None:
        streams = 2 if jax.default_backend() == "cpu" and not exact else 1
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
        xc = lax.dynamic_slice_in_dim(x, start, chunk)  # [C, D]
        wc = jnp.where(fresh, lax.dynamic_slice_in_dim(w, start, chunk), 0.0)  # [C]
        if exact:  # the post's (x − c)², [K, C, D] summed over D
            scores = jnp.sum((centers[:, None, :] - xc[None, :, :]) ** 2, axis=2)
        else:  # ||c||² − 2c·x, [K, C]
            scores = cn[:, None] - 2.0 * (centers @ xc.T)
        lab = _argmin0(scores)[1]  # [C]
        bufs = dict(bufs, labels=lax.dynamic_update_slice_in_dim(bufs["labels"], lab, start, 0))
        if not update:
            diff = xc - centers[lab]  # [C, D]
            return bufs, {"inertia": acc["inertia"] + jnp.sum(wc * jnp.sum(diff * diff, axis=1))}
        old = lax.dynamic_slice_in_dim(labels, start, chunk)
        xw = jnp.concatenate([xc * wc[:, None], wc[:, None]], axis=1)  # [C, D + 1]
        if k * xw.shape[1] <= _SMALL:  # a masked sum beats a scatter's per-row cost
            hit = lab[None, :] == jnp.arange(k)[:, None]  # [K, C]
            part_sums = jnp.sum(jnp.where(hit[:, :, None], xw[None, :, :], 0.0), axis=1)
        else:
            part_sums = jax.ops.segment_sum(xw, lab, k)  # [K, D + 1]
        return bufs, {
            "sums": acc["sums"] + part_sums,
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
    if update:
        out["sums"], out["wsum"] = out["sums"][:, :-1], out["sums"][:, -1]
    return out


def _relocate(x, w, labels, centers, sums, wsum):
    """scikit-learn's empty-cluster fix: each empty cluster takes the next point farthest
    from its (old) centre."""
    dist = jnp.sum((x - centers[labels]) ** 2, axis=1)  # [N], exact, as scikit-learn
    empty_ids = jnp.nonzero(wsum == 0, size=wsum.shape[0], fill_value=0)[0]
    n_moves = jnp.where(jnp.max(dist) > 0, jnp.sum(wsum == 0), 0)

    def move(j, state):
        sums, wsum, dist = state
        far, new = jnp.argmax(dist), empty_ids[j]
        old, wf = labels[far], w[far]
        sums = sums.at[old].add(-x[far] * wf).at[new].set(x[far] * wf)
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


def kmeans_plusplus(key, x, n_clusters: int, sample_weight=None, n_local_trials=None):
    """Greedy k-means++ (scikit-learn's `_kmeans_plusplus`): [K, D] centres, O(N·trials) memory.

    Args:
        key: PRNG key.
        x: [N, D] data.
        n_clusters: K.
        sample_weight: [N] non-negative weights (default ones).
        n_local_trials: candidates per centre; default 2 + floor(ln K).
    """
    x = jnp.asarray(x)
    n = x.shape[0]
    w = jnp.ones(n, x.dtype) if sample_weight is None else jnp.asarray(sample_weight, x.dtype)
    trials = n_local_trials or 2 + int(np.log(n_clusters))
    xsq = jnp.sum(x * x, axis=1)  # [N]

    def sqdist(c):  # [T, D] -> [T, N]
        xc = c @ x.T
        return jnp.maximum(jnp.sum(c * c, axis=1)[:, None] - 2.0 * xc + xsq[None, :], 0.0)

    first = jax.random.choice(jax.random.fold_in(key, 0), n, p=w / jnp.sum(w))
    centers = jnp.zeros((n_clusters, x.shape[1]), x.dtype).at[0].set(x[first])

    def body(i, state):
        centers, closest = state
        u = jax.random.uniform(jax.random.fold_in(key, i), (trials,), x.dtype)
        cand = jnp.searchsorted(jnp.cumsum(w * closest), u * jnp.dot(closest, w))
        cand = jnp.minimum(cand, n - 1)  # [T]
        dist = jnp.minimum(closest[None, :], sqdist(x[cand]))  # [T, N]
        best = jnp.argmin(dist @ w)
        return centers.at[i].set(x[cand[best]]), dist[best]

    return lax.fori_loop(1, n_clusters, body, (centers, sqdist(x[first][None, :])[0]))[0]


@functools.partial(jax.jit, static_argnames=("n_clusters", "init"))
def init_centers(key, x, n_clusters: int, init: str = "k-means++", sample_weight=None):
    """Initial [K, D] centres: `k-means++`, `random` (K distinct rows) or `uniform` U[0,1)."""
    w = jnp.ones(x.shape[0], x.dtype) if sample_weight is None else sample_weight
    if init == "k-means++":
        return kmeans_plusplus(key, x, n_clusters, w)
    if init == "random":
        return x[jax.random.choice(key, x.shape[0], (n_clusters,), replace=False, p=w / w.sum())]
    if init == "uniform":
        return jax.random.uniform(key, (n_clusters, x.shape[1]), x.dtype)
    raise ValueError(f"init must be one of {INITS} or an array, got {init!r}.")


class _Plan(NamedTuple):
    """The static (hashable) half of a fit: one compilation per distinct plan and shapes."""

    n_clusters: int
    init: str  # one of INITS or "array"
    n_init: int
    empty: str
    seed_compat: bool
    chunk: int
    streams: int


@functools.lru_cache(maxsize=64)
def _plan(k, init, n_init, empty, exact, n, d, chunk_size, streams) -> _Plan:
    """The `_Plan` of a call (cached: repeated small fits skip the tiling arithmetic)."""
    return _Plan(k, init, n_init, empty, exact, *_tiling(n, k, d, chunk_size, streams, exact))


@functools.partial(jax.jit, static_argnames="plan")
def _kmeans(key, x, w, init_array, tol, max_iter, plan: _Plan):
    """(KMeansResult, [whether x is all finite, whether the init array is]): the caller
    checks device arrays' finiteness from this call's output (one transfer) rather than by
    more dispatches."""
    finite_init = True if init_array is None else jnp.all(jnp.isfinite(init_array))
    res = _fit(key, x, w, init_array, tol, max_iter, plan)
    return res, jnp.stack([jnp.all(jnp.isfinite(x)), jnp.asarray(finite_init)])


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


# Lloyd on the host, one thread per part of X: XLA:CPU runs a while loop's body on one core
# (parts swept side by side in one loop body stay sequential), but two compiled sweeps called
# from two threads run at once. Used by `kmeans` on CPU for large eager inputs.
_THREAD_MIN_WORK = 2**24  # N·K·D multiply-adds per sweep from which threads pay off


@functools.partial(jax.jit, static_argnames="plan")
def _prepare(key, x, w, init_array, tol, plan: _Plan):
    """`_setup` for the threaded loop: (mean, absolute tol, initial centres)."""
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key(key)  # an int32 seed
    return _setup(key, x, w, init_array, tol, plan)[1:]


@functools.partial(jax.jit, static_argnames="chunk")
def _part_sweep(x, w, centers, labels, *, chunk):
    """One Lloyd sweep (with update) over a part of the (centred) rows."""
    return _sweep(x, w, centers, labels, chunk=chunk, update=True, exact=False)


@functools.partial(jax.jit, static_argnames="chunk")
def _part_inertia(x, w, centers, *, chunk):
    labels = jnp.zeros(x.shape[0], jnp.int32)
    return _sweep(x, w, centers, labels, chunk=chunk, update=False, exact=False)


_relocate_jit = jax.jit(_relocate)


@functools.partial(jax.jit, static_argnames="parts")
def _centred_parts(x, w, mean, *, parts: int):
    """x − mean and w cut into `parts` contiguous row blocks (one copy of x in all)."""
    n = x.shape[0]
    bounds = [(i * n // parts, (i + 1) * n // parts) for i in range(parts)]
    return [(x[lo:hi] - mean[None, :], w[lo:hi]) for lo, hi in bounds]


@functools.partial(jax.jit, static_argnames="empty")
def _update(centers, sums, wsum, changed, tol, *, empty):
    """`_lloyd`'s update from the parts' summed sums: (new centres, done)."""
    new = _new_centers(centers, sums, wsum, empty)
    return new, (changed == 0) | (jnp.sum((new - centers) ** 2) <= tol)


def _lloyd_threads(key, x, w, init_array, tol, max_iter, plan: _Plan) -> KMeansResult:
    """`_kmeans` for an eager x on CPU, its sweeps split over `plan.streams` threads; the same
    steps and stopping rule as `_lloyd` (the parts' sums add in another order)."""
    from concurrent.futures import ThreadPoolExecutor

    x, w = jnp.asarray(x), jnp.asarray(w, x.dtype)
    mean, tol, starts = _prepare(key, x, w, init_array, tol, plan)
    chunk, parts = plan.chunk, plan.streams
    xs = _centred_parts(x, w, mean, parts=parts)
    best = None
    with ThreadPoolExecutor(parts) as pool:

        def each(fn):  # fn(part index) on every part at once, waited for
            return list(pool.map(lambda i: jax.block_until_ready(fn(i)), range(parts)))

        for c in starts:
            labels = [jnp.full(len(p[1]), -1, jnp.int32) for p in xs]
            n_iter, done = 0, False
            while n_iter < max_iter and not done:
                rs = each(
                    lambda i, c=c, labels=labels: _part_sweep(*xs[i], c, labels[i], chunk=chunk)
                )
                labels = [r["labels"] for r in rs]
                sums, wsum = sum(r["sums"] for r in rs), sum(r["wsum"] for r in rs)
                if plan.empty == "relocate" and bool(jnp.any(wsum == 0)):  # rare: all of x
                    xc, wc = (jnp.concatenate(a) for a in zip(*xs, strict=True))
                    sums, wsum = _relocate_jit(xc, wc, jnp.concatenate(labels), c, sums, wsum)
                changed = sum(r["changed"] for r in rs)
                c, done = _update(c, sums, wsum, changed, tol, empty=plan.empty)
                n_iter, done = n_iter + 1, bool(done)
            rs = each(lambda i, c=c: _part_inertia(*xs[i], c, chunk=chunk))
            res = KMeansResult(
                c + mean[None, :], jnp.concatenate([r["labels"] for r in rs]),
                sum(r["inertia"] for r in rs), jnp.asarray(n_iter, jnp.int32),
            )  # fmt: skip
            if best is None or (not jnp.isnan(res.inertia) and not res.inertia >= best.inertia):
                best = res
    return best


@functools.partial(jax.jit, static_argnames=("chunk", "streams"))
def _assign(x, centers, *, chunk, streams):
    shift = jnp.nan_to_num(jnp.nanmean(centers, axis=0))  # centre both, for float32 accuracy
    xs, cs = x - shift[None, :], centers - shift[None, :]
    ones, labels = jnp.ones(x.shape[0], x.dtype), jnp.zeros(x.shape[0], jnp.int32)
    r = _sweep(xs, ones, cs, labels, chunk=chunk, update=False, exact=False, streams=streams)
    return r["labels"], r["inertia"]


@jax.jit
def _distances(x, centers):
    shift = jnp.mean(centers, axis=0)[None, :]
    xs, cs = x - shift, centers - shift
    d2 = jnp.sum(xs * xs, 1)[:, None] - 2.0 * xs @ cs.T + jnp.sum(cs * cs, 1)[None, :]
    return jnp.sqrt(jnp.maximum(d2, 0.0))  # [N, K]


# ----------------------------------------------------------------------------- validation


def _float_dtype():
    return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)


@jax.jit
def _all_finite(x):
    return jnp.all(jnp.isfinite(x))


def _as_data(x, name: str = "X", n_features: int | None = None, device_check: bool = True):
    """A finite 2-D float32 array (float64 under jax_enable_x64), or ValueError.

    NumPy input stays NumPy (the jitted core takes it as it is); a jax.Array stays on its
    device; inside a caller's jit only shapes are checked. `device_check=False` leaves a
    jax.Array's finiteness to the caller (`kmeans` reads it from its own compiled call).
    """
    dtype = _float_dtype()
    if isinstance(x, jax.Array) and x.dtype == dtype:
        arr = x  # the common case: no dtype checks (each jnp.issubdtype costs ~2 µs)
    elif isinstance(x, jax.Array):
        if not jnp.issubdtype(x.dtype, jnp.bool_) and not jnp.issubdtype(x.dtype, jnp.number):
            raise ValueError(f"{name} must be numeric, got dtype {x.dtype}.")
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            raise ValueError(f"{name} must be numeric (real), got dtype {x.dtype}.")
        arr = x if x.dtype == dtype else x.astype(dtype)
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf" and arr.dtype != object:
            raise ValueError(f"{name} must be numeric (real), got dtype {arr.dtype}.")
        try:
            arr = arr.astype(dtype, copy=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be numeric: {err}.") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [n_samples, n_features], got shape {arr.shape}; use "
            f"{name}.reshape(-1, 1) for one feature or {name}.reshape(1, -1) for one sample."
        )
    if 0 in arr.shape:
        raise ValueError(f"{name} needs at least one sample and one feature, got {arr.shape}.")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features; the model expects {n_features}.")
    if isinstance(arr, jax.core.Tracer) or (isinstance(arr, jax.Array) and not device_check):
        return arr
    finite = np.isfinite(arr).all() if isinstance(arr, np.ndarray) else _all_finite(arr)
    if not finite:
        raise ValueError(f"{name} contains NaN or infinity; drop or impute those values first.")
    return arr


def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    return int(value)


@functools.lru_cache(maxsize=4)
def _unit_weights(n: int, dtype) -> jax.Array:
    """[n] ones kept on the device, so repeated fits do not copy them over each time.
    Made eagerly even under a caller's jit (a cached tracer would leak into later calls)."""
    with jax.ensure_compile_time_eval():
        return jnp.ones(n, dtype)


@functools.lru_cache(maxsize=16)
def _scalar(value, dtype) -> jax.Array:
    """A scalar kept on the device (made eagerly, as `_unit_weights`): repeated fits with the
    same tol and max_iter copy nothing over (each host scalar is a transfer, about a
    quarter of a 500-point fit's time)."""
    with jax.ensure_compile_time_eval():
        return jnp.asarray(value, dtype)


def _check_weight(sample_weight, n: int, dtype):
    if sample_weight is None:
        return _unit_weights(n, np.dtype(dtype))
    if isinstance(sample_weight, jax.core.Tracer):
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}.")
        return sample_weight.astype(dtype)
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"sample_weight must be numeric: {err}.") from None
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"sample_weight must be {n} finite, non-negative weights with a positive sum, "
            f"got shape {w.shape}."
        )
    return w.astype(dtype)


def _check_init(init, n_clusters: int, n_features: int):
    """(name, array or None): a name from INITS, or "array" with a [K, D] finite array."""
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS} or a [K, D] array, got {init!r}.")
        return init, None
    traced = isinstance(init, jax.core.Tracer)
    device = isinstance(init, jax.Array) and not traced  # finiteness: checked by `kmeans`
    if (device and init.dtype != _float_dtype()) and not (
        jnp.issubdtype(init.dtype, jnp.floating) or jnp.issubdtype(init.dtype, jnp.integer)
    ):
        raise ValueError(
            f"init array must hold real numbers (a float or int array), got dtype {init.dtype}."
        )
    arr = init if traced or device else np.asarray(init, dtype=np.float64)
    if arr.shape != (n_clusters, n_features) or not (traced or device or np.isfinite(arr).all()):
        raise ValueError(
            f"init array must be finite with shape (n_clusters, n_features) = "
            f"({n_clusters}, {n_features}), got shape {arr.shape}."
        )
    return "array", arr


def kmeans(key, x, n_clusters: int, *, init="k-means++", n_init: int = 1, max_iter: int = 300,
           tol: float = 1e-4, sample_weight=None, empty: str = "relocate",
           seed_compat: bool = False, chunk_size: int | None = None,
           streams: int | None = None) -> KMeansResult:  # fmt: skip
    """k-means, jit-compiled: the functional core of `KMeans` (same arguments and semantics).

    Args:
        key: PRNG key for the init (unused with an init array), or an int seed.
        x: [N, D] data.
        n_clusters: K, 1 <= K <= N.
        init: "k-means++", "random", "uniform" (U[0,1), the post's) or a [K, D] array.
        n_init: restarts, run together with vmap; the lowest inertia wins.
        max_iter: most Lloyd sweeps (seed_compat: exactly this many assignments).
        tol: relative tolerance: stop when the squared centre shift <= tol · mean var(x).
        sample_weight: [N] non-negative weights.
        empty: "relocate" (scikit-learn), "keep" (the old centre) or "nan" (the post).
        seed_compat: replay post 000 §1 (see the module docstring).
        chunk_size: rows per chunk; default `default_chunk_size`.
        streams: parts of X swept in parallel (one per core); default 2 on CPU, else 1. On
            CPU an eager call with N·K·D >= 2**24 sweeps each part in its own thread (XLA:CPU
            runs a compiled loop on one core); smaller or traced calls run one compiled loop.

    Returns:
        KMeansResult(centers [K, D], labels [N], inertia [], n_iter []).
    """
    key = _as_key(key)
    x = _as_data(x, device_check=False)
    n, d = x.shape
    k = _check_int("n_clusters", n_clusters)
    if k > n:
        raise ValueError(f"n_clusters={k} must be <= n_samples={n}; lower n_clusters.")
    name, arr = _check_init(init, k, d)
    n_init, max_iter = _check_int("n_init", n_init), _check_int("max_iter", max_iter)
    if not (isinstance(tol, numbers.Real) and np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}.")
    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty must be one of {EMPTY_POLICIES}, got {empty!r}.")
    w = _check_weight(sample_weight, n, x.dtype)
    if name == "random" and isinstance(w, np.ndarray) and int((w > 0).sum()) < k:
        raise ValueError(f"init='random' needs >= n_clusters={k} samples with positive weight.")
    exact = bool(seed_compat)
    if chunk_size is not None:
        _check_int("chunk_size", chunk_size)
    if streams is not None:
        _check_int("streams", streams)
    plan = _plan(k, name, n_init, empty, exact, n, d, chunk_size, streams)
    init_array = arr if arr is None or arr.dtype == x.dtype else arr.astype(x.dtype)
    tol, max_iter = _scalar(float(tol), np.dtype(x.dtype)), _scalar(max_iter, np.dtype(np.int32))
    if _threaded(plan, n * k * d, key, x, w, init_array):
        finite = [_all_finite(a) if _on_device(a) else True for a in (x, init_array)]
        _check_finite(x, init_array, finite)
        return _lloyd_threads(key, x, w, init_array, tol, max_iter, plan)
    res, finite = _kmeans(key, x, w, init_array, tol, max_iter, plan=plan)
    _check_finite(x, init_array, finite)
    return res


def _on_device(a) -> bool:
    return isinstance(a, jax.Array) and not isinstance(a, jax.core.Tracer)


def _check_finite(x, init_array, finite) -> None:
    """ValueError for a non-finite device x or init array, from `finite` = (x's flag, the
    init's flag), read with at most one transfer; NumPy inputs were checked on the host
    and traced ones cannot be."""
    if not (_on_device(x) or _on_device(init_array)):
        return
    finite_x, finite_init = np.asarray(
        finite if isinstance(finite, jax.Array) else jnp.stack(finite)
    )
    if _on_device(x) and not finite_x:
        raise ValueError("X contains NaN or infinity; drop or impute those values first.")
    if _on_device(init_array) and not finite_init:
        raise ValueError("init array must be finite; it contains NaN or infinity.")


def _threaded(plan: _Plan, work: int, *arrays) -> bool:
    """Whether `kmeans` runs `_lloyd_threads`: several streams, the CPU backend, enough work
    per sweep, and concrete inputs (under a caller's jit the compiled loop runs)."""
    return (
        plan.streams > 1
        and not plan.seed_compat
        and work >= _THREAD_MIN_WORK
        and jax.default_backend() == "cpu"
        and not any(isinstance(a, jax.core.Tracer) for a in arrays)
    )


def _as_key(random_state):
    """A PRNG key, or an int32 seed that the jitted core turns into one (no extra dispatch)."""
    if random_state is None:
        return np.int32(np.random.randint(2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return np.int32(random_state.randint(2**31 - 1))
    if isinstance(random_state, int | np.integer) and not isinstance(random_state, bool):
        if 0 <= random_state < 2**31:
            return np.int32(random_state)
    if isinstance(random_state, jax.Array) and jnp.issubdtype(
        random_state.dtype, jax.dtypes.prng_key
    ):
        return random_state
    if isinstance(random_state, jax.Array) and random_state.shape == (2,):
        return jax.random.wrap_key_data(random_state)  # a legacy uint32 PRNGKey
    raise ValueError(
        f"random_state must be None, an int in [0, 2**31), a RandomState or a key, "
        f"got {random_state!r}."
    )


# ----------------------------------------------------------------------------- facade


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """scikit-learn's `KMeans` API on the jit-compiled core; see `kmeans` for the arguments.

    `n_init="auto"` means 1 for "k-means++" and arrays, 10 for "random" and "uniform".
    With `seed_compat=True`, string inits become "uniform", `empty`/`tol` are ignored and
    `n_init` is 1.
    """

    def __init__(
        self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300, tol=1e-4,
        random_state=None, empty="relocate", seed_compat=False, chunk_size=None,
    ):  # fmt: skip
        self.n_clusters, self.init, self.n_init, self.max_iter = n_clusters, init, n_init, max_iter
        self.tol, self.random_state, self.empty = tol, random_state, empty
        self.seed_compat, self.chunk_size = seed_compat, chunk_size

    def fit(self, X, y=None, sample_weight=None):
        """Fits the centres to X ([N, D]); returns self."""
        init = self.init
        if self.seed_compat and isinstance(init, str):
            init = "uniform"
        n_init = self.n_init
        if isinstance(n_init, str) and n_init == "auto":
            n_init = 10 if isinstance(init, str) and init != "k-means++" else 1
        if not isinstance(init, str) and n_init != 1 and not self.seed_compat:
            warnings.warn(f"explicit init array: running n_init=1, not {n_init}.", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
        if self.seed_compat or not isinstance(init, str):
            n_init = 1
        empty = "nan" if self.seed_compat else self.empty
        # fmt: off
        res = kmeans(_as_key(self.random_state), X, self.n_clusters, init=init, n_init=n_init,
                     max_iter=self.max_iter, tol=self.tol, sample_weight=sample_weight,
                     empty=empty, seed_compat=self.seed_compat, chunk_size=self.chunk_size)
        # fmt: on
        centers, labels, inertia, n_iter = jax.device_get(tuple(res))  # copies overlap
        self.cluster_centers_, self.labels_ = np.asarray(centers), np.asarray(labels)
        self.inertia_, self.n_iter_ = float(inertia), int(n_iter)
        self.n_features_in_ = self.cluster_centers_.shape[1]
        distinct = np.count_nonzero(np.bincount(self.labels_, minlength=self.n_clusters))
        if distinct < self.n_clusters:
            msg = (f"only {distinct} distinct clusters found, fewer than n_clusters="
                   f"{self.n_clusters}: X has fewer distinct points than clusters, or the "
                   f"empty-cluster policy ({empty!r}) left clusters empty.")  # fmt: skip
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        return self

    def _assign(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        x = _as_data(X, n_features=self.n_features_in_)
        chunk, streams = _tiling(x.shape[0], self.n_clusters, x.shape[1], self.chunk_size)
        centers = jnp.asarray(self.cluster_centers_, x.dtype)
        return _assign(x, centers, chunk=chunk, streams=streams)

    def predict(self, X):
        """Index of the nearest centre for each row of X: int32 [N]."""
        return np.asarray(self._assign(X)[0])

    def score(self, X, y=None):
        """Minus the inertia of X under the fitted centres (higher is better)."""
        return -float(self._assign(X)[1])

    def transform(self, X):
        """Euclidean distances to every centre, [N, K]."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        x = _as_data(X, n_features=self.n_features_in_)
        return np.asarray(_distances(x, jnp.asarray(self.cluster_centers_, x.dtype)))


# ----------------------------------------------------------------------------- experiment


def _check_config(cfg: CirclesConfig) -> None:
    for name in ("n_samples", "n_clusters", "max_iter", "n_init", "fit_max_iter"):
        _check_int(name, getattr(cfg, name))
    _check_int("seed", cfg.seed, low=0)
    if cfg.n_clusters > cfg.n_samples:
        raise ValueError(f"n_clusters={cfg.n_clusters} must be <= n_samples={cfg.n_samples}.")
    if not cfg.noise >= 0 or not cfg.tol >= 0:
        raise ValueError(f"noise and tol must be >= 0, got {cfg.noise} and {cfg.tol}.")
    if cfg.init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {cfg.init!r}.")


def run_circles(cfg: CirclesConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Clusters make_circles with our KMeans and with the post's replay; writes the results.

    Writes config.json, results.json, kmeans_circles.png and kmeans_circles_seed_compat.png.
    `data` = (X [N, 2], y [N]) replaces the generated circles.
    """
    from jaxunsup import data as data_lib
    from jaxunsup import metrics, plots
    from jaxunsup.files import prepare_workdir, write_json

    _check_config(cfg)
    x, y = data if data is not None else data_lib.make_circles(cfg.n_samples, cfg.noise, cfg.seed)
    workdir = prepare_workdir(workdir, cfg)
    fits = {
        "kmeans": KMeans(cfg.n_clusters, init=cfg.init, n_init=cfg.n_init,
                         max_iter=cfg.fit_max_iter, tol=cfg.tol, random_state=cfg.seed),
        "seed_compat": KMeans(cfg.n_clusters, max_iter=cfg.max_iter, random_state=cfg.seed,
                              seed_compat=True),
    }  # fmt: skip
    results = {"experiment": "kmeans-circles", "figures": [],
               "data": f"make_circles({len(x)}, noise={cfg.noise}, seed={cfg.seed})"}  # fmt: skip
    for name, km in fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the replay may empty a cluster
            km.fit(x)
        results[name] = {
            "inertia": km.inertia_, "ari": metrics.ari(y, km.labels_), "n_iter": km.n_iter_,
            "centers": km.cluster_centers_,
            "cluster_sizes": np.bincount(km.labels_, minlength=cfg.n_clusters),
        }  # fmt: skip
        fig = "kmeans_circles.png" if name == "kmeans" else f"kmeans_circles_{name}.png"
        title = f"{name}: inertia {km.inertia_:.1f}, ARI {results[name]['ari']:.3f}"
        plots.save_scatter(workdir / fig, x, km.labels_, km.cluster_centers_, title)
        results["figures"].append(fig)
    results["table"] = [
        {"metric": f"{n}: inertia / ARI vs circle labels", "seed": "figure only (a line split)",
         "ours": [round(results[n]["inertia"], 2), round(results[n]["ari"], 3)]}
        for n in fits
    ]  # fmt: skip
    write_json(workdir / "results.json", results)
    return results
