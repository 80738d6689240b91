"""k-means speed (issue 3): jaxunsup's Lloyd vs scikit-learn's, and vs post 000 §1's torch loop.

Same data, same initial centres, same number of sweeps, float32, one process. scikit-learn
runs `KMeans(algorithm="lloyd", n_init=1, init=<centres>, max_iter=I, tol=0)`; ours runs
`kmeans(..., init=<centres>, max_iter=I, tol=0)`. The data are standard-normal (no cluster
structure), so neither side stops early and both do exactly I sweeps (checked: n_iter is in
each row). Times are best-of-`repeats` wall seconds of a whole fit, after a warm-up call
that compiles ours; JAX results are waited for with `block_until_ready`.

Each row also places our fit against this machine's ceilings (`_roofline`): the rate of its
distance products (2·N·K·D per sweep, I update sweeps and the final assignment) as a share
of the measured matmul peak, and the rate at which it streams X (and the labels and weights)
as a share of the measured memory bandwidth. On an accelerator the issue's large shape,
1,000,000 × 256 with k = 1,000, runs too, ours alone (scikit-learn would take minutes).
"""

from __future__ import annotations

import time
import warnings

import common
import jax
import jax.numpy as jnp
import numpy as np
import torch
from common import torch_device, torch_sync

from jaxunsup import data
from jaxunsup import kmeans as km

SKLEARN_SHAPES = [(100_000, 64, 100), (1_000_000, 32, 64)]  # (N, D, K), issue 3
QUICK_SHAPES = [(20_000, 16, 16), (100_000, 8, 8)]
ACCELERATOR_SHAPES = [(1_000_000, 256, 1_000)]  # ours only, on a GPU or TPU (issue 3)
QUICK_ACCELERATOR_SHAPES = [(100_000, 64, 100)]


def _best(fn, repeats: int):
    """(best wall seconds, best process CPU seconds, last result) over `repeats` calls.

    CPU seconds sum over threads; on a shared machine they show how much of a wall time
    was waiting for a core.
    """
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, out


def _ours(x, init, iters):
    xj, cj, key = jnp.asarray(x), jnp.asarray(init), jax.random.key(0)

    def fit():
        res = km.kmeans(key, xj, len(init), init=cj, max_iter=iters, tol=0.0)
        return jax.block_until_ready(res)

    fit()  # compile
    return fit


def _roofline(n: int, d: int, k: int, sweeps: int, seconds: float) -> dict:
    """Our fit's rates against this machine's ceilings: GFLOP/s of the distance products
    (2·N·K·D a sweep) and its share of the matmul peak; GB/s of the data each sweep streams
    (X, the labels read and written, the weights: 4·N·(D + 3) bytes) and its share of the
    memory bandwidth. Neither share can pass 1; the larger says which ceiling binds."""
    gflop_s = 2 * n * k * d * sweeps / seconds / 1e9
    gb_s = 4 * n * (d + 3) * sweeps / seconds / 1e9
    return {
        "jax_gflop_s": round(gflop_s, 1),
        "share_of_matmul_peak": round(gflop_s / common.matmul_peak_gflop_s(), 3),
        "jax_gb_s": round(gb_s, 1),
        "share_of_bandwidth": round(gb_s / common.memory_bandwidth_gb_s(), 3),
    }


def _data(n, d, k):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x, x[rng.choice(n, k, replace=False)]


def _ours_only(n, d, k, iters, repeats) -> dict:
    """The accelerator's large shape: our fit alone, with its rooflines."""
    x, init = _data(n, d, k)
    t_jax, c_jax, ours = _best(_ours(x, init, iters), repeats)
    return {
        "bench": "kmeans", "name": "ours alone (accelerator shape)", "shape": f"{n}x{d}",
        "k": k, "iterations": [int(ours.n_iter)], "jax_s": round(t_jax, 4), "ref": None,
        "jax_cpu_s": round(c_jax, 4), "jax_inertia": float(ours.inertia),
        **_roofline(n, d, k, int(ours.n_iter) + 1, t_jax),
    }  # fmt: skip


def _vs_sklearn(n, d, k, iters, repeats) -> dict:
    from sklearn.cluster import KMeans as SkKMeans

    x, init = _data(n, d, k)
    fit = _ours(x, init, iters)

    def sk():
        return SkKMeans(k, init=init, n_init=1, max_iter=iters, tol=0, algorithm="lloyd").fit(x)

    sk()  # warm the BLAS and OpenMP pools
    times = {"jax": [], "ref": []}
    for _ in range(repeats):  # interleaved, so load from elsewhere hits both sides alike
        times["jax"].append(_best(fit, 1))
        times["ref"].append(_best(sk, 1))
    (t_jax, c_jax, ours), (t_sk, c_sk, ref) = (min(v, key=lambda r: r[0]) for v in times.values())
    return {
        "bench": "kmeans", "name": "vs sklearn lloyd", "shape": f"{n}x{d}", "k": k,
        "iterations": [int(ours.n_iter), int(ref.n_iter_)], "jax_s": round(t_jax, 4),
        "ref": "sklearn", "ref_s": round(t_sk, 4), "speedup": round(t_sk / t_jax, 2),
        "jax_cpu_s": round(c_jax, 4), "ref_cpu_s": round(c_sk, 4),
        "jax_inertia": float(ours.inertia), "ref_inertia": float(ref.inertia_),
        **_roofline(n, d, k, int(ours.n_iter) + 1, t_jax),
    }  # fmt: skip


def _vs_post(repeats) -> list[dict]:
    """The post's own problem: make_circles(500, 0.1), k=2, 5 sweeps, from torch.rand."""
    from parity import torch_kmeans

    x, _ = data.make_circles(500, noise=0.1, seed=0)
    c0 = torch_kmeans.initial_centroids(2, 2, seed=0)
    xt, dev = torch.from_numpy(x), torch_device()  # the post runs on CUDA when it can

    def post_loop():
        out = torch_kmeans.kmeans(xt, c0, 2, 5, device=dev)
        torch_sync(dev)
        return out

    t_torch, c_torch, (y_ref, c_ref) = _best(post_loop, 20 * repeats)
    ref_inertia = float(((x - c_ref.cpu().numpy()[y_ref]) ** 2).sum())

    def facade():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return km.KMeans(2, init=c0.numpy(), max_iter=5, seed_compat=True).fit(x)

    facade()  # compile
    xj, cj, key = jnp.asarray(x), jnp.asarray(c0.numpy()), jax.random.key(0)

    def core():
        res = km.kmeans(key, xj, 2, init=cj, max_iter=5, seed_compat=True)
        return jax.block_until_ready(res)

    rows = []
    for name, fn in (("KMeans(seed_compat=True).fit", facade), ("kmeans() core", core)):
        t, c, out = _best(fn, 200 * repeats)  # ~0.2 ms a call: many, for a stable best
        inertia = out.inertia_ if name.startswith("KMeans") else float(out.inertia)
        rows.append({
            "bench": "kmeans", "name": f"vs the post's torch loop: {name}", "shape": "500x2",
            "k": 2, "iterations": 5, "jax_s": round(t, 6), "ref": "torch loop (post 000 §1)",
            "ref_s": round(t_torch, 4), "speedup": round(t_torch / t, 1),
            "jax_cpu_s": round(c, 6), "ref_cpu_s": round(c_torch, 4),
            "jax_inertia": float(inertia), "ref_inertia": ref_inertia,
        })  # fmt: skip
    return rows


def bench_kmeans(quick: bool = False) -> list[dict]:
    """Rows: name, shape, k, iterations, seconds (jax, reference), speedup, inertias."""
    torch.set_num_threads(2)
    shapes, iters, repeats = (QUICK_SHAPES, 5, 2) if quick else (SKLEARN_SHAPES, 20, 3)
    rows = [_vs_sklearn(n, d, k, iters, repeats) for n, d, k in shapes]
    if jax.default_backend() != "cpu":
        big = QUICK_ACCELERATOR_SHAPES if quick else ACCELERATOR_SHAPES
        rows += [_ours_only(n, d, k, iters, repeats) for n, d, k in big]
    return rows + _vs_post(repeats)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for r in bench_kmeans(quick="--quick" in sys.argv):
        print(r)
