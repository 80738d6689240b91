"""Time to first result: `jaxunsup run NAME` in a fresh process, cold and warm.

For each experiment, its smallest run (`SMALL`: one epoch, or the fewest steps its Config
allows) runs twice as `jaxunsup run NAME --workdir W --cache-dir C ...`, each time in a new
process and a new workdir: cold with C empty, then warm with what the cold run left in C (the
persistent compilation cache). The OS file cache is warm for both (a warm-up import runs
first), so the difference is what the compilation cache saves. Each row also gives the time
from the process start to the first row of `metrics.jsonl` (written at the end of the first
epoch: the first number a user sees), where the experiment writes one, and `jaxunsup list`'s
wall time (best of 3).

`--quick` runs a representative list (`QUICK`: the fastest experiment, an MLP AE, the conv AE
of the speed goal and the VAE); without it, every experiment (about half an hour on a 2-core
CPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jaxunsup import cache
from jaxunsup.registry import EXPERIMENTS

# The smallest run of each experiment: what `--epochs 1` is for those that train by epochs.
SMALL: dict[str, list[str]] = {
    "kmeans-circles": [],
    "ae-stacked": ["--epochs", "1"],
    "ae-denoising": ["--epochs", "1"],
    "ae-conv": ["--epochs", "1"],
    "ae-keras-mlp": ["--epochs", "1"],
    "ae-keras-cnn": ["--epochs", "1"],
    "restore-image": ["--iterations", "1000", "--log-every", "500"],
    "blobs-classifier": ["--epochs", "100", "--log-every", "50"],
    "deep-kmeans": ["--preset", "quick", "--pretrain-epochs", "1", "--epochs", "1"],
    "style-transfer": ["--preset", "quick", "--steps", "10"],
    "vae-z2": ["--preset", "quick", "--epochs", "1", "--iwae-images", "100"],
    "vae-z4": ["--preset", "quick", "--epochs", "1", "--iwae-images", "100"],
    # the GANs' quick epochs are 125-160 steps, scored on 10,000 samples: one short epoch here
    "gan-mlp": ["--preset", "quick", "--epochs", "1", "--n-train", "800", "--eval-samples", "1000"],
    "dcgan": ["--preset", "quick", "--epochs", "1", "--n-train", "800", "--eval-samples", "1000"],
    "gan-mnist-simple": ["--preset", "quick", "--n-train", "500", "--variants", "bce"],
}
QUICK = ("kmeans-circles", "ae-stacked", "ae-conv", "vae-z2")
_CLI = [sys.executable, "-m", "jaxunsup"]


def _timed(args: list[str], metrics: Path | None = None) -> tuple[float, float | None]:
    """(wall seconds of `jaxunsup ARGS` in a new process, seconds from its start to the
    last write of `metrics` (None when it wrote none))."""
    env = {k: v for k, v in os.environ.items() if k != cache.ENV}
    start = time.time()
    done = subprocess.run([*_CLI, *args], env=env, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        raise RuntimeError(f"jaxunsup {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    first = metrics.stat().st_mtime - start if metrics and metrics.exists() else None
    return wall, first


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _experiment_row(name: str, tmp: Path) -> dict:
    folder = tmp / name / "cache"
    runs = {}
    for which in ("cold", "warm"):
        workdir = tmp / name / which
        args = ["run", name, "--workdir", str(workdir), "--cache-dir", str(folder), *SMALL[name]]
        runs[which] = _timed(args, workdir / "metrics.jsonl")
        if which == "cold":
            entries = list(folder.rglob("*-cache"))
    (cold, cold_first), (warm, warm_first) = runs["cold"], runs["warm"]
    return {
        "bench": "startup",
        "impl": "jaxunsup",
        "experiment": name,
        "command": " ".join(["jaxunsup run", name, "--workdir W --cache-dir C", *SMALL[name]]),
        "cold_s": round(cold, 2),
        "warm_s": round(warm, 2),
        "warm_over_cold": round(warm / cold, 2),
        "first_metrics_cold_s": _rounded(cold_first),
        "first_metrics_warm_s": _rounded(warm_first),
        "cache_entries": len(entries),
        "cache_mb": round(sum(p.stat().st_size for p in entries) / 2**20, 2),
    }


def bench_startup(quick: bool = False) -> list[dict]:
    names = QUICK if quick else tuple(EXPERIMENTS)
    missing = set(EXPERIMENTS) - set(SMALL)
    if missing:
        raise ValueError(f"bench_startup.SMALL has no smallest run for {sorted(missing)}")
    warm_up = "import jax, flax, optax, sklearn, matplotlib"  # the OS file cache, for cold too
    subprocess.run([sys.executable, "-c", warm_up], check=True)
    listing = min(_timed(["list"])[0] for _ in range(3))
    rows = [{"bench": "startup", "impl": "jaxunsup", "experiment": "list",
             "command": "jaxunsup list", "wall_s": round(listing, 3)}]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        for name in names:
            rows.append(_experiment_row(name, Path(tmp)))
            print(rows[-1], flush=True)
    return rows
