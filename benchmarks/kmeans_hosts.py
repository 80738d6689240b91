"""The threaded host Lloyd loop against `shard_map` over two host devices, on CPU.

Run: `XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/kmeans_hosts.py`
(the device count is fixed when JAX starts). The same fit (1,000,000 × 32, K = 64, one init
array, 20 sweeps) three ways, alternated, best of 3: `kmeans()`'s default eager CPU path (two
threads, each sweeping half of X), `kmeans(mesh=make_mesh(2))` (each host device sweeps its
rows, one psum a sweep), and one compiled loop (`streams=1`).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxunsup import distributed, kmeans


def main(n: int = 1_000_000, d: int = 32, k: int = 64, repeat: int = 3) -> dict:
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    init, mesh = x[:k].copy(), distributed.make_mesh(2)
    common = dict(init=init, max_iter=20, tol=0.0)
    fits = {
        "threaded host loop (2 threads)": lambda: kmeans.kmeans(0, x, k, **common),
        "shard_map on 2 host devices": lambda: kmeans.kmeans(0, x, k, mesh=mesh, **common),
        "one compiled loop": lambda: kmeans.kmeans(0, x, k, streams=1, **common),
    }
    inertia = {name: float(fit().inertia) for name, fit in fits.items()}  # compiles
    best = dict.fromkeys(fits, float("inf"))
    for _ in range(repeat):
        for name, fit in fits.items():
            t = time.perf_counter()
            jax.block_until_ready(fit().labels)
            best[name] = min(best[name], time.perf_counter() - t)
    for name in fits:
        print(f"{name:32s} {best[name]:.3f} s  inertia {inertia[name]:.6g}")
    return best


if __name__ == "__main__":
    main()
