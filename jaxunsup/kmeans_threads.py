"""k-means' Lloyd loop driven from the host, one thread per part of X (a CPU-only path:
`jaxunsup.kmeans` takes it only where `backend.on_cpu()`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxunsup.kmeans_core import KMeansResult, _new_centers, _Plan, _relocate, _setup, _sweep

# Lloyd on the host, one thread per part of X: XLA:CPU runs a while loop's body on one core
# (parts swept side by side in one loop body stay sequential), but two compiled sweeps called
# from two threads run at once. Used by `kmeans` on CPU for large eager inputs.


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
