"""Mini-batch k-means (Sculley 2010, "Web-scale k-means clustering") with scikit-learn's
`MiniBatchKMeans` API and semantics: the streaming k-means for data that do not fit at once.

`fit` runs every step in one compiled `lax.while_loop`: a batch of `batch_size` rows drawn
with replacement (with probability ∝ sample_weight, each then of unit weight), labels by
the nearest centre, each centre moved to the running mean of every row it has taken
(`counts` holds those weights), and scikit-learn's random reassignment: every 10·K rows (or
while a centre has taken nothing) the centres whose counts are below
`reassignment_ratio` × the largest jump to random rows of the batch. It stops after
`max_iter` passes' worth of steps, when the squared centre shift is <= tol (relative to
the mean feature variance, as `KMeans`), or when the smoothed batch inertia has not
improved for `max_no_improvement` steps. The `n_init` inits are each drawn from a random
`init_size` rows and the one with the lowest inertia on another `init_size` rows wins.
`partial_fit` takes one step on the rows it is given (weighted, not resampled). X may be
dense or CSR (`kmeans_sparse`).

Deviations: random numbers come from JAX keys (draws differ from scikit-learn's);
`verbose` prints one summary line after a fit rather than a line a step.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxunsup import kmeans_sparse as sparse
from jaxunsup.kmeans_base import KMeansEstimator
from jaxunsup.kmeans_checks import _as_key, _check_init, _check_int, _check_weight
from jaxunsup.kmeans_core import _argmin0, _assign, _chunk_inertia, _cluster_sums, _tiling
from jaxunsup.kmeans_init import init_centers


class _MBPlan(NamedTuple):
    """The static half of a fit (hashable: one compilation per plan and shapes)."""

    n_clusters: int
    init: str  # "k-means++", "random" or "array"
    n_init: int
    batch: int
    init_size: int
    n_steps: int
    max_no_improvement: int  # -1: never stop for it
    weighted: bool  # draw batches ∝ sample_weight (else uniformly)


def _step(x, w, centers, counts, key, reassign, ratio):
    """scikit-learn's `_mini_batch_step` on a batch x [B, D] (dense or sparse) with weights
    w: (new centres, new counts, the batch's inertia)."""
    k = centers.shape[0]
    cn = jnp.sum(centers * centers, axis=1)  # [K]
    best, lab = _argmin0(cn[:, None] - 2.0 * sparse.center_products(centers, x))  # [B]
    inertia = _chunk_inertia(x, w, centers, lab, best)
    sums = _cluster_sums(x, w, lab, k)  # [K, D + 1]
    wsum, total = sums[:, -1], counts + sums[:, -1]
    mean = (centers * counts[:, None] + sums[:, :-1]) / jnp.where(wsum > 0, total, 1.0)[:, None]
    new = jnp.where((wsum > 0)[:, None], mean, centers)
    args = (x, new, total, key, ratio)
    new, total = lax.cond(reassign & (ratio > 0), _reassign, lambda *a: a[1:3], *args)
    return new, total, inertia


def _reassign(x, centers, counts, key, ratio):
    """Centres with counts < ratio × the largest move to distinct random rows of the batch
    (at most half the batch: then only the lowest counts); their counts become the
    smallest of the others'."""
    b = x.shape[0]
    low = counts < ratio * jnp.max(counts)
    rank = jnp.argsort(jnp.argsort(counts, stable=True))  # [K] place in ascending counts
    low = jnp.where(jnp.sum(low) > 0.5 * b, low & (rank < int(0.5 * b)), low)
    order = jax.random.permutation(key, b)  # distinct rows, in random order
    rows = sparse.take_dense(x, order[jnp.clip(jnp.cumsum(low) - 1, 0, b - 1)])  # [K, D]
    floor = jnp.min(jnp.where(low, jnp.inf, counts))
    return jnp.where(low[:, None], rows, centers), jnp.where(low, floor, counts)


def _initial(key, x, w, init_array, plan: _MBPlan):
    """The best of `n_init` inits, each on `init_size` random rows, scored on another
    `init_size` random rows (scikit-learn's order of draws, JAX's numbers)."""
    n = x.shape[0]
    if plan.init == "array":
        return init_array
    key_valid, key_init = jax.random.split(key)
    valid = jax.random.randint(key_valid, (plan.init_size,), 0, n)
    xv, wv = _rows(x, valid), w[valid]

    def one(key):
        key_rows, key_centres = jax.random.split(key)
        ids = jax.random.randint(key_rows, (plan.init_size,), 0, n)
        return init_centers(key_centres, _rows(x, ids), plan.n_clusters, plan.init, w[ids])

    starts = jax.vmap(one)(jax.random.split(key_init, plan.n_init))  # [n_init, K, D]

    def score(c):
        best, lab = _argmin0(jnp.sum(c * c, 1)[:, None] - 2.0 * sparse.center_products(c, xv))
        return _chunk_inertia(xv, wv, c, lab, best)

    return starts[jnp.argmin(jax.vmap(score)(starts))]


def _rows(x, ids):
    return sparse.take(x, ids) if isinstance(x, sparse.Ell) else x[ids]


@functools.partial(jax.jit, static_argnames="plan")
def _fit(key, x, w, init_array, tol, ratio, plan: _MBPlan):
    """(centres, counts, steps taken, smoothed batch inertia, rows since the last
    reassignment) of a whole fit."""
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key(key)  # an int32 seed
    key_init, key_steps = jax.random.split(key)
    n, k, b = x.shape[0], plan.n_clusters, plan.batch
    centers = _initial(key_init, x, w, init_array, plan).astype(x.dtype)
    tol = tol * (
        sparse.feature_variance(x) if isinstance(x, sparse.Ell) else jnp.mean(jnp.var(x, 0))
    )
    cdf = jnp.cumsum(w) / jnp.sum(w)
    alpha = min(b * 2.0 / (n + 1), 1.0)  # the inertia's smoothing, scikit-learn's
    patience = plan.max_no_improvement

    def body(s):
        i, c, counts, ewa, ewa_min, stale, since, _ = s
        key_i = jax.random.fold_in(key_steps, i)
        u_key, step_key = jax.random.split(key_i)
        if plan.weighted:
            ids = jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(u_key, (b,))), n - 1)
        else:
            ids = jax.random.randint(u_key, (b,), 0, n)
        since = since + b
        reassign = jnp.any(counts == 0) | (since >= 10 * k)
        since = jnp.where(reassign, 0, since)
        ones = jnp.ones(b, x.dtype)
        new, counts, inertia = _step(_rows(x, ids), ones, c, counts, step_key, reassign, ratio)
        batch = inertia / b
        first = i == 0  # scikit-learn leaves the first step out of the smoothing
        ewa = jnp.where(
            first, ewa, jnp.where(jnp.isnan(ewa), batch, ewa * (1 - alpha) + batch * alpha)
        )
        small = (tol > 0) & (jnp.sum((new - c) ** 2) <= tol) & ~first
        better = ewa < ewa_min
        stale = jnp.where(first | small, stale, jnp.where(better, 0, stale + 1))
        ewa_min = jnp.where(first | small | ~better, ewa_min, ewa)
        done = small | ((patience >= 0) & (stale >= patience) & ~first)
        return i + 1, new, counts, ewa, ewa_min, stale, since, done

    nan, inf, zero = jnp.asarray(jnp.nan, x.dtype), jnp.asarray(jnp.inf, x.dtype), jnp.int32(0)
    init = (zero, centers, jnp.zeros(k, x.dtype), nan, inf, zero, zero, jnp.asarray(False))
    out = lax.while_loop(lambda s: (s[0] < plan.n_steps) & ~s[7], body, init)
    return out[1], out[2], out[0], out[3], out[6]


@jax.jit
def _partial_step(x, w, centers, counts, key, reassign, ratio):
    return _step(x, w, centers, counts, key, reassign, ratio)


_initial_jit = jax.jit(_initial, static_argnames="plan")


class MiniBatchKMeans(KMeansEstimator):
    """scikit-learn's `MiniBatchKMeans` on a jit-compiled loop (see the module docstring).

    Arguments as scikit-learn's: `n_init="auto"` means 1 for "k-means++" and arrays, 3
    otherwise; `init` may also be "uniform" (U[0,1), as `KMeans`); `chunk_size` (ours)
    sets the rows per chunk of the full assignments (labels_, predict, score).
    """

    def __init__(
        self, n_clusters=8, *, init="k-means++", max_iter=100, batch_size=1024, verbose=0,
        compute_labels=True, random_state=None, tol=0.0, max_no_improvement=10,
        init_size=None, n_init="auto", reassignment_ratio=0.01, chunk_size=None,
    ):  # fmt: skip
        self.n_clusters, self.init, self.max_iter, self.batch_size = (
            n_clusters, init, max_iter, batch_size
        )  # fmt: skip
        self.verbose, self.compute_labels, self.random_state, self.tol = (
            verbose, compute_labels, random_state, tol
        )  # fmt: skip
        self.max_no_improvement, self.init_size, self.n_init = max_no_improvement, init_size, n_init
        self.reassignment_ratio, self.chunk_size = reassignment_ratio, chunk_size

    def _plan(self, n: int, d: int, weighted: bool) -> tuple[_MBPlan, np.ndarray | None]:
        """The static plan and the init array (None for a named init), every argument
        checked with a message that names it."""
        k = _check_int("n_clusters", self.n_clusters)
        if k > n:
            raise ValueError(f"n_clusters={k} must be <= n_samples={n}; lower n_clusters.")
        batch = min(_check_int("batch_size", self.batch_size), n)
        max_iter = _check_int("max_iter", self.max_iter)
        name, arr = _check_init(self.init, k, d)
        n_init = self.n_init
        if isinstance(n_init, str) and n_init == "auto":
            n_init = 1 if name in ("k-means++", "array") else 3
        n_init = _check_int("n_init", n_init)
        if name == "array" and n_init != 1:
            warnings.warn(f"explicit init array: running n_init=1, not {n_init}.",
                          RuntimeWarning, stacklevel=3)  # fmt: skip
            n_init = 1
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * batch if 3 * batch >= k else 3 * k
        elif _check_int("init_size", init_size) < k:
            warnings.warn(f"init_size={init_size} should be larger than n_clusters={k}; "
                          f"using 3 * n_clusters.", RuntimeWarning, stacklevel=3)  # fmt: skip
            init_size = 3 * k
        patience = self.max_no_improvement
        if patience is not None:
            patience = _check_int("max_no_improvement", patience, low=0)
        for name_, value, low in (
            ("tol", self.tol, 0.0),
            ("reassignment_ratio", self.reassignment_ratio, 0.0),
        ):
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and np.isfinite(value) and value >= low
            ):
                raise ValueError(f"{name_} must be a finite number >= 0, got {value!r}.")
        plan = _MBPlan(k, name, n_init, batch, min(init_size, n), (max_iter * n) // batch,
                       -1 if patience is None else patience, weighted)  # fmt: skip
        return plan, arr

    def fit(self, X, y=None, sample_weight=None):
        """Fits the centres to X ([N, D], dense or sparse) by mini-batch steps; returns self."""
        x = self._validate(X, reset=True)
        n, d = x.shape
        plan, arr = self._plan(n, d, weighted=sample_weight is not None)
        w = _check_weight(sample_weight, n, x.dtype)
        init_array = None if arr is None else arr.astype(x.dtype)
        key = _as_key(self.random_state)
        dtype = x.dtype
        tol, ratio = np.asarray(self.tol, dtype), np.asarray(self.reassignment_ratio, dtype)
        res = _fit(key, x, w, init_array, tol, ratio, plan=plan)
        centers, counts, steps, ewa, since = jax.device_get(res)
        self.cluster_centers_, self._counts = np.asarray(centers), np.asarray(counts)
        self.n_steps_, self._n_since_last_reassign = int(steps), int(since)
        self._batch_size, self._seed = plan.batch, key  # for partial_fit after fit
        self.n_iter_ = int(np.ceil(self.n_steps_ * plan.batch / n))
        if self.compute_labels:
            self._set_labels(x, w)
        else:
            self.inertia_ = float(ewa) * float(np.sum(w))
        if self.verbose:
            print(f"[MiniBatchKMeans] {self.n_steps_} steps of {plan.batch} rows "
                  f"({self.n_iter_} passes), smoothed batch inertia {float(ewa):.6g}")  # fmt: skip
        return self

    def partial_fit(self, X, y=None, sample_weight=None):
        """One mini-batch step on the rows of X (weighted, not resampled); the first call
        also initialises the centres from X. Returns self."""
        first = not hasattr(self, "cluster_centers_")
        x = self._validate(X, reset=first)
        n, d = x.shape
        w = _check_weight(sample_weight, n, x.dtype)
        if first:
            plan, arr = self._plan(n, d, weighted=False)
            self._batch_size, self._seed = plan.batch, _as_key(self.random_state)
            key = self._seed if isinstance(self._seed, jax.Array) else jax.random.key(self._seed)
            init_array = None if arr is None else arr.astype(x.dtype)
            centres = _initial_jit(key, x, w, init_array, plan._replace(n_init=1))
            self.cluster_centers_ = np.asarray(centres, x.dtype)
            self._counts = np.zeros(plan.n_clusters, x.dtype)
            self._n_since_last_reassign, self.n_steps_ = 0, 0
        self._n_since_last_reassign += self._batch_size
        reassign = bool((self._counts == 0).any()) or (
            self._n_since_last_reassign >= 10 * self.n_clusters
        )
        if reassign:
            self._n_since_last_reassign = 0
        key = self._seed if isinstance(self._seed, jax.Array) else jax.random.key(self._seed)
        key = jax.random.fold_in(jax.random.fold_in(key, 1), self.n_steps_)
        ratio = np.asarray(self.reassignment_ratio, x.dtype)
        centres, counts, _ = _partial_step(
            x, w, jnp.asarray(self.cluster_centers_, x.dtype), jnp.asarray(self._counts),
            key, reassign, ratio,
        )  # fmt: skip
        self.cluster_centers_, self._counts = np.asarray(centres), np.asarray(counts)
        if self.compute_labels:
            self._set_labels(x, w)
        self.n_steps_ += 1
        return self

    def _set_labels(self, x, w):
        n, d = x.shape
        chunk, streams = _tiling(n, self.n_clusters, d, self.chunk_size)
        centers = jnp.asarray(self.cluster_centers_, x.dtype)
        labels, inertia = _assign(x, centers, jnp.asarray(w), chunk=chunk, streams=streams)
        self.labels_, self.inertia_ = np.asarray(labels), float(inertia)
