"""Post 002 §3.2 image restoration: iterations/s of our compiled loop vs the post's torch loop."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxunsup import basics, data, restoration
from parity import torch_basics


def _ours(broken: np.ndarray, x0: np.ndarray, iterations: int) -> float:
    run = dict(lr=0.8, iterations=iterations, log_every=1_000, verbose=False)
    jax.block_until_ready(basics.recover_image(broken, x0, **run))  # compile every chunk size
    start = time.perf_counter()
    jax.block_until_ready(basics.recover_image(broken, x0, **run))
    return time.perf_counter() - start


@jax.jit
def _plain_autodiff_steps(x, broken):
    """The same loop with JAX's own transpose of the concatenations (no hand-written VJP)."""

    def body(x, _):
        loss, grad = jax.value_and_grad(
            lambda v: basics.distance_loss(restoration._weird_forward(v, 5), broken)
        )(x)
        return x - 0.8 * grad, loss

    return jax.lax.scan(body, x, None, length=1_000)


def _ours_plain_autodiff(broken: np.ndarray, x0: np.ndarray, iterations: int) -> float:
    x, b = jnp.asarray(x0), jnp.asarray(broken)
    jax.block_until_ready(_plain_autodiff_steps(x, b))
    start = time.perf_counter()
    for _ in range(iterations // 1_000):
        x, _ = _plain_autodiff_steps(x, b)
    jax.block_until_ready(x)
    return time.perf_counter() - start


def _torch(broken: np.ndarray, x0: np.ndarray, iterations: int) -> float:
    b = torch.from_numpy(broken)
    torch_basics.recover_image(b, torch.from_numpy(x0.copy()), 0.8, 10)  # warm-up
    start = time.perf_counter()
    torch_basics.recover_image(b, torch.from_numpy(x0.copy()), 0.8, iterations)
    return time.perf_counter() - start


def bench_restore_image(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    original = basics.grey_square(data.load_image("china"), 100).reshape(-1)  # [10,000]
    broken = np.array(basics.weird_function(jnp.asarray(original)))
    x0 = np.random.default_rng(0).normal(size=original.shape).astype(np.float32)
    ours_n, torch_n = (2_000, 1_000) if quick else (20_000, 20_000)
    runs = {
        "jaxunsup restore (one compiled scan per 1,000 steps)": (_ours, ours_n),
        "jax.grad through the plain concatenations (no custom VJP)": (
            _ours_plain_autodiff, ours_n),
        "torch, the post's loop": (_torch, torch_n),
    }  # fmt: skip
    rates = {impl: n / fn(broken, x0, n) for impl, (fn, n) in runs.items()}
    ours = rates["jaxunsup restore (one compiled scan per 1,000 steps)"]
    return [
        {
            "bench": "restore-image",
            "impl": impl,
            "iterations": runs[impl][1],
            "seconds": round(runs[impl][1] / rate, 3),
            "iterations_per_s": round(rate, 1),
            "speedup_of_jaxunsup": round(ours / rate, 2),
        }
        for impl, rate in rates.items()
    ]
