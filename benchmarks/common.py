"""Shared by the `bench_*.py` files: the throughput rows every training benchmark returns."""

from __future__ import annotations


def throughput_rows(bench: str, times: dict[str, float], n: int, batch_size: int) -> list[dict]:
    """One row per implementation; `times` maps name → seconds for the same `n` images, with
    jaxunsup's first (its speed-up is 1.0; the others' is their time / ours)."""
    ours = next(iter(times.values()))
    return [
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
