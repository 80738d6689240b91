"""`benchmarks/bench.py --repeat`: each implementation keeps its fastest run's row."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
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
            _row("b", "torch", 4.0, 2.0, ("iterations", 1000)),
            _row("b", "ours", 1.0, 1.0, ("iterations", 2000)),
            {"bench": "a", "impl": "extra", "note": "no time"}]  # fmt: skip
    run2 = [_row("a", "ours", 1.0, 1.0), _row("a", "torch", 5.0, 5.0),
            _row("b", "torch", 2.0, 1.0, ("iterations", 1000)),
            _row("b", "ours", 4.0, 1.0, ("iterations", 2000)),
            {"bench": "a", "impl": "extra", "note": "other"}]  # fmt: skip
    rows = bench.fastest([run1, run2])
    assert [r["seconds"] for r in rows[:4]] == [1.0, 3.0, 2.0, 1.0]
    assert rows[0]["images_per_s"] == 100.0 and rows[2]["iterations_per_s"] == 500.0
    assert rows[1]["speedup_of_jaxunsup"] == 3.0  # torch's best 3 s vs our best 1 s
    # group b counts iterations: ours 2,000 in 1 s, torch 1,000 in 2 s → 4×
    assert rows[2]["speedup_of_jaxunsup"] == 4.0 and rows[3]["speedup_of_jaxunsup"] == 1.0
    assert rows[4] == {"bench": "a", "impl": "extra", "note": "no time"}


def test_fastest_of_one_run_changes_nothing(bench):
    run = [_row("a", "ours", 2.0, 1.0), _row("a", "torch", 3.0, 1.5)]
    assert bench.fastest([run]) == run
