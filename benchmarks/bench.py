"""`python benchmarks/bench.py NAME [--quick]`: jaxunsup vs PyTorch / scikit-learn, one process.

Each benchmark returns rows; this script adds the device, versions and both sides' matmul
precision, prints a table and appends the rows to `benchmarks/results/<NAME>.jsonl` (`--out
DIR`: `DIR/<NAME>.jsonl`). With `--repeat R` (default 3) each training benchmark runs R times
(so the implementations alternate), and each implementation's row comes from its fastest run,
the speed-ups recomputed from those: a shared VM's speed drifts by 20% or more within a
minute, which one run per implementation turns into noise in the ratios.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import jax  # noqa: E402
import torch  # noqa: E402
from bench_ae import bench_ae_stacked  # noqa: E402
from bench_ae_family import bench_ae_conv, bench_ae_keras_cnn  # noqa: E402
from bench_basics import bench_restore_image  # noqa: E402
from bench_deep_kmeans import bench_deep_kmeans  # noqa: E402
from bench_gans import bench_dcgan, bench_gan_mlp, bench_gan_simple  # noqa: E402
from bench_kmeans import bench_kmeans  # noqa: E402
from bench_kmeans_sklearn import bench_kmeans_sklearn  # noqa: E402
from bench_scaling import bench_scaling  # noqa: E402
from bench_startup import bench_startup  # noqa: E402
from bench_style import bench_style  # noqa: E402
from bench_vae import bench_vae  # noqa: E402
from common import add_roofline  # noqa: E402

BENCHES = {
    "kmeans": bench_kmeans,
    "kmeans-sklearn": bench_kmeans_sklearn,
    "ae-stacked": bench_ae_stacked,
    "ae-conv": bench_ae_conv,
    "ae-keras-cnn": bench_ae_keras_cnn,
    "restore-image": bench_restore_image,
    "style-transfer": bench_style,
    "gan-mlp": bench_gan_mlp,
    "dcgan": bench_dcgan,
    "gan-mnist-simple": bench_gan_simple,
    "deep-kmeans": bench_deep_kmeans,
    "vae": bench_vae,
    "startup": bench_startup,
    "scaling": bench_scaling,
}


def cpu_model() -> str:
    """The CPU, e.g. "AMD EPYC (family 26, model 2, AVX-512)", from /proc/cpuinfo
    (`platform.processor()` elsewhere): sessions run on different CPUs, and a ratio means
    little without the machine it was measured on."""
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(
                (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in f) if v
            )
    except OSError:
        return platform.processor() or "unknown"
    simd = "AVX-512" if "avx512f" in info.get("flags", "").split() else "no AVX-512"
    family, model = info.get("cpu family", "?"), info.get("model", "?")
    return f"{info.get('model name', 'unknown')} (family {family}, model {model}, {simd})"


def _context() -> dict:
    import sklearn
    from common import matmul_peak_gflop_s, precision, torch_device

    dev = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": f"{dev.platform}:{dev.device_kind}",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_device": str(torch_device()),
        **precision(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "matmul_peak_gflop_s": round(matmul_peak_gflop_s(), 1),
        "jax": jax.__version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
    }


# these time best-of-several runs inside
ONE_RUN = {"kmeans", "kmeans-sklearn", "style-transfer", "startup", "scaling"}


def _rate(r: dict) -> float | None:
    count = r.get("images", r.get("iterations"))
    return count / r["seconds"] if count and r.get("seconds") else None


def fastest(runs: list[list[dict]]) -> list[dict]:
    """The rows of the first run, each replaced by the same row of the run where that
    implementation was fastest; rates and speed-ups (ours / theirs, within each `bench`
    group, ours being its first timed row, as `throughput_rows` orders them) are recomputed
    from those times. (Finding ours by a speed-up of 1.0 picked a torch row that happened to
    tie with us in its run.)"""
    out = []
    for i, row in enumerate(runs[0]):
        same = [run[i] for run in runs if i < len(run) and run[i].get("impl") == row.get("impl")]
        best = min(same, key=lambda r: r.get("seconds", 0)) if "seconds" in row else row
        out.append(dict(best))
    for r in out:
        for key in ("images_per_s", "iterations_per_s"):
            if key in r and _rate(r):
                r[key] = round(_rate(r), 1)
    ours = {}
    for r in out:
        if "speedup_of_jaxunsup" in r and _rate(r):
            ours.setdefault(r["bench"], _rate(r))
    for r in out:
        if "speedup_of_jaxunsup" in r and ours.get(r["bench"]) and _rate(r):
            r["speedup_of_jaxunsup"] = round(ours[r["bench"]] / _rate(r), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=[*BENCHES, "all"])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--repeat", type=int, default=3, help="runs per benchmark; best kept")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="folder of the <NAME>.jsonl result files")  # fmt: skip
    args = parser.parse_args(argv)
    names = list(BENCHES) if args.name == "all" else [args.name]
    for name in names:
        repeat = 1 if name in ONE_RUN else max(args.repeat, 1)
        rows = add_roofline(fastest([BENCHES[name](quick=args.quick) for _ in range(repeat)]))
        ctx = _context()
        print(f"== {name} on {ctx['device']}, {ctx['cpu_model']} ({ctx['matmul_peak_gflop_s']} "
              f"GFLOP/s matmul; jax {ctx['jax']}, torch {ctx['torch']}) ==")  # fmt: skip
        for r in rows:
            print("  " + "  ".join(f"{k}={v}" for k, v in r.items() if k != "bench"))
        if not args.no_save:
            out = args.out / f"{name}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "a") as f:
                for r in rows:
                    row = {**ctx, "quick": args.quick, "repeat": repeat, **r}
                    f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
