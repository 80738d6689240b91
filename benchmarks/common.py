"""Shared by the `bench_*.py` files: the throughput rows every training benchmark returns, and
their roofline (the work per image of our compiled step against this machine's matmul peak)."""

from __future__ import annotations

import functools
import time


def throughput_rows(bench: str, times: dict[str, float], n: int, batch_size: int,
                    mflop_per_image: float | None = None) -> list[dict]:  # fmt: skip
    """One row per implementation; `times` maps name → seconds for the same `n` images, with
    jaxunsup's first (its speed-up is 1.0; the others' is their time / ours). Our row carries
    `mflop_per_image` (see `step_mflop`) when given."""
    ours = next(iter(times.values()))
    rows = [
        {
            "bench": bench,
            "impl": impl,
            "images": n,
            "batch_size": batch_size,
            "seconds": round(t, 4),
            "images_per_s": round(n / t, 1),
            "speedup_of_jaxunsup": round(t / ours, 2),
        }
        for impl, t in times.items()
    ]
    if mflop_per_image is not None:
        rows[0]["mflop_per_image"] = round(mflop_per_image, 3)
    return rows


def step_mflop(step, state, batch) -> float:
    """MFLOP per image of one compiled training step, from XLA's cost analysis of `step(state,
    batch, key)` (products and convolutions count 2 per multiply-add, as torch's
    FlopCounterMode counts them)."""
    import jax

    compiled = jax.jit(step).lower(state, batch, jax.random.key(0)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return cost["flops"] / len(batch) / 1e6


def torch_device():
    """The device the PyTorch references train on: CUDA when this torch sees a GPU (the
    posts' own `device = 'cuda' if torch.cuda.is_available() else 'cpu'`), else the CPU, so
    an accelerator's rows compare GPU with GPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def precision() -> dict:
    """Both sides' float32 matmul precision, for every result row: JAX's default matmul
    precision ("default" when unset: the backend's choice, TF32 passes on recent GPUs) and
    torch's `get_float32_matmul_precision()` with its TF32 flags (matmul, cuDNN convs).
    Training benchmarks keep both at their defaults; a row says what they were."""
    import jax
    import torch

    return {
        "jax_matmul_precision": jax.config.jax_default_matmul_precision or "default",
        "torch_matmul_precision": torch.get_float32_matmul_precision(),
        "torch_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "torch_tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


def torch_sync(device) -> None:
    """Waits for `device`'s queued work (a CUDA timer must not stop before the kernels do)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def matmul_peak_gflop_s(n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-product rate under XLA (an n×n by n×n product, best of
    `repeats`): the ceiling for any training step here. Measured once per process."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


@functools.cache
def memory_bandwidth_gb_s(repeats: int = 5) -> float:
    """This machine's memory rate under XLA in GB/s: a jitted `a · 0.5 + 0.25` over 2**25
    float32 on a CPU (128 MiB, beyond any cache), 2**28 on an accelerator, counting the read
    and the write, best of `repeats`. The input is donated, so the output reuses its buffer:
    a fresh 128 MiB output would time the page faults (7 GB/s here instead of 50). The
    ceiling for a pass that streams its data. Measured once per process."""
    import jax
    import jax.numpy as jnp

    n = 2**25 if jax.default_backend() == "cpu" else 2**28
    f = jax.jit(lambda a: a * 0.5 + 0.25, donate_argnums=0)
    a = f(jnp.ones((n,), jnp.float32)).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a = f(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * 4 * n / best / 1e9


def add_roofline(rows: list[dict]) -> list[dict]:
    """For a bench whose jaxunsup row carries `mflop_per_image`: every row gets the rate in
    GFLOP/s that its images/s means at that work per image (torch's FlopCounterMode counts
    the same products within 10% for these models); our row gets the share of this machine's
    matrix-product peak, and every other row `ceiling_speedup`, the speed-up over it that a
    step running at that peak would reach."""
    ours = next((r for r in rows if "mflop_per_image" in r), None)
    if ours is None:
        return rows
    peak = matmul_peak_gflop_s()
    mflop = ours["mflop_per_image"]
    for r in rows:
        if r.get("bench") != ours["bench"] or "speedup_of_jaxunsup" not in r:
            continue  # other work (e.g. the VAE's iwae_nll row)
        r["gflop_per_s"] = round(r["images_per_s"] * mflop / 1e3, 1)
        if r is ours:
            r["matmul_peak_gflop_s"] = round(peak, 1)
            r["share_of_peak"] = round(r["gflop_per_s"] / peak, 2)
        elif not r["impl"].startswith("jaxunsup"):  # a reference, not one of our variants
            r["ceiling_speedup"] = round(peak * 1e3 / mflop / r["images_per_s"], 2)
    return rows
