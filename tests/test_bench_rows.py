"""`benchmarks/bench.py --repeat`: each implementation keeps its fastest run's row."""

import importlib.util
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH.parent))  # bench.py imports its siblings (common, bench_*)
    spec = importlib.util.spec_from_file_location("bench_cli", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(bench, impl, seconds, speedup, count=("images", 100)):
    name, n = count
    return {"bench": bench, "impl": impl, name: n, "seconds": seconds,
            f"{name}_per_s": round(n / seconds, 1), "speedup_of_jaxunsup": speedup}  # fmt: skip


def test_fastest_keeps_each_implementations_best_run_and_recomputes_ratios(bench):
    run1 = [_row("a", "ours", 2.0, 1.0), _row("a", "torch", 3.0, 1.5),
            _row("b", "ours", 1.0, 1.0, ("iterations", 2000)),
            _row("b", "torch", 4.0, 2.0, ("iterations", 1000)),
            {"bench": "a", "impl": "extra", "note": "no time"}]  # fmt: skip
    run2 = [_row("a", "ours", 1.0, 1.0), _row("a", "torch", 5.0, 5.0),
            _row("b", "ours", 4.0, 1.0, ("iterations", 2000)),
            _row("b", "torch", 2.0, 1.0, ("iterations", 1000)),  # tied with us in this run
            {"bench": "a", "impl": "extra", "note": "other"}]  # fmt: skip
    rows = bench.fastest([run1, run2])
    assert [r["seconds"] for r in rows[:4]] == [1.0, 3.0, 1.0, 2.0]
    assert rows[0]["images_per_s"] == 100.0 and rows[3]["iterations_per_s"] == 500.0
    assert rows[1]["speedup_of_jaxunsup"] == 3.0  # torch's best 3 s vs our best 1 s
    # group b counts iterations: ours 2,000 in 1 s, torch 1,000 in 2 s → 4× (its best run's
    # row said 1.0: it must not be taken for ours)
    assert rows[2]["speedup_of_jaxunsup"] == 1.0 and rows[3]["speedup_of_jaxunsup"] == 4.0
    assert rows[4] == {"bench": "a", "impl": "extra", "note": "no time"}


def test_fastest_of_one_run_changes_nothing(bench):
    run = [_row("a", "ours", 2.0, 1.0), _row("a", "torch", 3.0, 1.5)]
    assert bench.fastest([run]) == run


def test_step_mflop_counts_a_matrix_product_exactly(bench):
    """A step whose only work is [B, 784] @ [784, 10]: 2·784·10 FLOP per image (closed form)."""
    import common

    def step(w, batch, key):
        return batch.reshape(len(batch), -1) @ w

    mflop = common.step_mflop(step, jnp.ones((784, 10)), jnp.ones((50, 28, 28, 1)))
    assert mflop == pytest.approx(2 * 784 * 10 / 1e6, rel=0.01)


def test_roofline_rates_share_and_ceiling(bench, monkeypatch):
    import common

    monkeypatch.setattr(common, "matmul_peak_gflop_s", lambda: 100.0)  # GFLOP/s
    rows = [
        {"bench": "a", "impl": "jaxunsup fit", "images_per_s": 1000.0, "speedup_of_jaxunsup": 1.0,
         "mflop_per_image": 10.0},
        {"bench": "a", "impl": "jaxunsup, XLA convolutions", "images_per_s": 100.0,
         "speedup_of_jaxunsup": 10.0},
        {"bench": "a", "impl": "torch loop", "images_per_s": 500.0, "speedup_of_jaxunsup": 2.0},
        {"bench": "a", "impl": "jaxunsup iwae_nll", "images_per_s": 5.0},
    ]  # fmt: skip
    ours, variant, torch_row, other = common.add_roofline(rows)
    assert ours["gflop_per_s"] == 10.0 and ours["share_of_peak"] == 0.1
    # at 100 GFLOP/s, 10 MFLOP per image is 10,000 img/s: 20× the torch loop's 500
    assert torch_row["gflop_per_s"] == 5.0 and torch_row["ceiling_speedup"] == 20.0
    assert "ceiling_speedup" not in variant and "gflop_per_s" in variant
    assert "gflop_per_s" not in other  # different work: left alone


def test_kmeans_roofline_counts_products_and_streamed_bytes(bench, monkeypatch):
    import bench_kmeans
    import common

    monkeypatch.setattr(common, "matmul_peak_gflop_s", lambda: 1000.0)
    monkeypatch.setattr(common, "memory_bandwidth_gb_s", lambda: 100.0)
    row = bench_kmeans._roofline(n=1000, d=7, k=5, sweeps=2, seconds=1e-6)
    # 2·N·K·D = 70,000 FLOP a sweep, two sweeps in 1 µs: 140 GFLOP/s of a 1,000 peak
    assert row["jax_gflop_s"] == 140.0 and row["share_of_matmul_peak"] == 0.14
    # 4·N·(D + 3) = 40,000 bytes a sweep: 80 GB/s of 100
    assert row["jax_gb_s"] == 80.0 and row["share_of_bandwidth"] == 0.8


def test_every_row_records_both_sides_matmul_precision(bench, monkeypatch):
    import common
    import jax
    import torch

    monkeypatch.setattr(common, "matmul_peak_gflop_s", lambda: 1.0)  # no timing here
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, False
    try:
        with jax.default_matmul_precision("bfloat16"):
            ctx = bench._context()
    finally:  # torch's flags are module properties monkeypatch cannot restore
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    assert ctx["jax_matmul_precision"] == "bfloat16"
    assert ctx["torch_matmul_precision"] == "high"  # what torch reports with TF32 matmuls on
    assert (ctx["torch_tf32_matmul"], ctx["torch_tf32_cudnn"]) == (True, False)
    with jax.default_matmul_precision("highest"):
        assert common.precision()["jax_matmul_precision"] == "highest"
