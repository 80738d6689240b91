"""k-means against scikit-learn where issue 24 sets goals: MiniBatchKMeans at 1,000,000 × 32,
k = 64 (at equal inertia, within 1 %), and KMeans on a 100,000 × 10,000 CSR matrix of 1 %
density, k = 20; plus the A/B behind the sparse design (centre products gathered per nonzero
vs each chunk densified and multiplied).

MiniBatchKMeans: both sides run their defaults (batch 1024, max_no_improvement = 10, labels
computed at the end) from the same initial centres per seed (scikit-learn's k-means++ on 3·1024
random rows, as its fit draws them), so the inertias compare the steps, not two inits; each
side's time is the median over seeds of whole fits (ours after a warm-up fit that compiles),
and the mean inertia over the seeds is compared. Sparse KMeans: the same init array,
`tol=0` and at most a fixed number of Lloyd sweeps on both sides (both also stop when no
label changes); our time includes turning the CSR matrix into padded rows.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax import lax

from jaxunsup import kmeans_sparse
from jaxunsup.kmeans import KMeans
from jaxunsup.minibatch_kmeans import MiniBatchKMeans


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _blobs(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d)).astype(np.float32)
    return centres[rng.integers(0, k, n)] + rng.standard_normal((n, d), dtype=np.float32)


def _minibatch(n, d, k, seeds) -> dict:
    from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
    from sklearn.cluster import kmeans_plusplus

    x = _blobs(n, d, k)
    rng = np.random.default_rng(0)
    inits = [kmeans_plusplus(x[rng.integers(0, n, 3 * 1024)], k, random_state=s)[0] for s in seeds]
    MiniBatchKMeans(k, init=inits[0], random_state=0).fit(x)  # compile
    SkMiniBatchKMeans(k, random_state=0).fit(x[:20_000])  # warm the thread pools
    ours, ref = [], []
    for s, c in zip(seeds, inits, strict=True):  # interleaved: load hits both sides alike
        ours.append(_timed(lambda s=s, c=c: MiniBatchKMeans(k, init=c, random_state=s).fit(x)))
        ref.append(_timed(lambda s=s, c=c: SkMiniBatchKMeans(k, init=c, random_state=s).fit(x)))
    t_jax, t_sk = (statistics.median(t for t, _ in runs) for runs in (ours, ref))
    i_jax, i_sk = (float(np.mean([m.inertia_ for _, m in runs])) for runs in (ours, ref))
    return {
        "bench": "kmeans-sklearn", "name": "MiniBatchKMeans vs sklearn (defaults, same init)",
        "shape": f"{n}x{d}", "k": k, "seeds": len(seeds),
        "steps": [[m.n_steps_ for _, m in ours], [m.n_steps_ for _, m in ref]],
        "jax_s": round(t_jax, 3), "ref": "sklearn MiniBatchKMeans", "ref_s": round(t_sk, 3),
        "speedup": round(t_sk / t_jax, 2), "jax_inertia": i_jax, "ref_inertia": i_sk,
        "inertia_ratio": round(i_jax / i_sk, 4),
    }  # fmt: skip


def _sparse_data(n, d, k, density):
    x = sp.random(n, d, density=density, format="csr", dtype=np.float32, random_state=0)
    rng = np.random.default_rng(0)
    return x, x[rng.choice(n, k, replace=False)].toarray()


def _sparse(n, d, k, density, iters, repeats) -> dict:
    from sklearn.cluster import KMeans as SkKMeans

    x, init = _sparse_data(n, d, k, density)

    def ours():
        return KMeans(k, init=init, max_iter=iters, tol=0.0).fit(x)

    def sk():
        return SkKMeans(k, init=init, n_init=1, max_iter=iters, tol=0, algorithm="lloyd").fit(x)

    ours()  # compile
    runs = [(_timed(ours), _timed(sk)) for _ in range(repeats)]  # interleaved
    (t_jax, a), (t_sk, b) = (min((r[i] for r in runs), key=lambda r: r[0]) for i in (0, 1))
    return {
        "bench": "kmeans-sklearn", "name": "sparse KMeans vs sklearn lloyd",
        "shape": f"{n}x{d} CSR, density {density}", "k": k, "iterations": [a.n_iter_, b.n_iter_],
        "jax_s": round(t_jax, 3), "ref": "sklearn KMeans (CSR)", "ref_s": round(t_sk, 3),
        "speedup": round(t_sk / t_jax, 2), "jax_inertia": a.inertia_, "ref_inertia": b.inertia_,
    }  # fmt: skip


def _sparse_products_ab(n, d, k, density, chunk=512) -> dict:
    """One sweep's centre products, [K, N], two ways: gathered per nonzero (what the fit
    runs) vs each chunk of rows densified and multiplied (a GEMM over every zero)."""
    x, init = _sparse_data(n, d, k, density)
    e = kmeans_sparse.from_csr(x, np.float32)
    idx, val, c = jnp.asarray(e.idx), jnp.asarray(e.val), jnp.asarray(init)
    n_chunks = n // chunk

    def sweep(product):
        def body(i, acc):
            ic, vc = (lax.dynamic_slice_in_dim(a, i * chunk, chunk) for a in (idx, val))
            return lax.dynamic_update_slice_in_dim(acc, product(ic, vc), i * chunk, 1)

        return jax.jit(lambda: lax.fori_loop(0, n_chunks, body, jnp.zeros((k, n), c.dtype)))

    def gathered(ic, vc):
        return kmeans_sparse.products(c.T, kmeans_sparse.Ell(ic, vc, d))

    def densified(ic, vc):
        dense = jnp.zeros((chunk, d), c.dtype).at[jnp.arange(chunk)[:, None], ic].add(vc)
        return kmeans_sparse.dot(c, dense.T)  # [K, C]

    times = {}
    for name, fn in (("gather", sweep(gathered)), ("densify", sweep(densified))):
        jax.block_until_ready(fn())
        times[name] = min(_timed(lambda fn=fn: jax.block_until_ready(fn()))[0] for _ in range(3))
    return {
        "bench": "kmeans-sklearn", "name": "sparse centre products: gather vs densified chunks",
        "shape": f"{n}x{d} CSR, density {density}", "k": k, "jax_s": round(times["gather"], 4),
        "ref": "densified chunks (ours)", "ref_s": round(times["densify"], 4),
        "speedup": round(times["densify"] / times["gather"], 2),
    }  # fmt: skip


def bench_kmeans_sklearn(quick: bool = False) -> list[dict]:
    """Rows: MiniBatchKMeans vs sklearn, sparse KMeans vs sklearn, the sparse-product A/B."""
    if quick:
        return [
            _minibatch(100_000, 32, 64, seeds=range(3)),
            _sparse(10_000, 10_000, 20, 0.01, iters=10, repeats=2),
            _sparse_products_ab(10_240, 10_000, 20, 0.01),
        ]
    return [
        _minibatch(1_000_000, 32, 64, seeds=range(2)),
        _sparse(100_000, 10_000, 20, 0.01, iters=20, repeats=2),
        _sparse_products_ab(20_480, 10_000, 20, 0.01),
    ]


if __name__ == "__main__":
    import sys

    for r in bench_kmeans_sklearn(quick="--quick" in sys.argv):
        print(r)
