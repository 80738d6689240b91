"""`python benchmarks/bench.py NAME [--quick]`: jaxunsup vs PyTorch / scikit-learn, one process.

Each benchmark returns rows; this script adds the device and versions, prints a table and
appends the rows to `benchmarks/results/<NAME>.jsonl`.
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
from bench_style import bench_style  # noqa: E402
from bench_vae import bench_vae  # noqa: E402

BENCHES = {
    "kmeans": bench_kmeans,
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
}


def _context() -> dict:
    import sklearn

    dev = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": f"{dev.platform}:{dev.device_kind}",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "jax": jax.__version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=[*BENCHES, "all"])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    names = list(BENCHES) if args.name == "all" else [args.name]
    for name in names:
        rows = BENCHES[name](quick=args.quick)
        ctx = _context()
        print(f"== {name} on {ctx['device']} (jax {ctx['jax']}, torch {ctx['torch']}) ==")
        for r in rows:
            print("  " + "  ".join(f"{k}={v}" for k, v in r.items() if k != "bench"))
        if not args.no_save:
            out = ROOT / "benchmarks" / "results" / f"{name}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "a") as f:
                for r in rows:
                    f.write(json.dumps({**ctx, "quick": args.quick, **r}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
