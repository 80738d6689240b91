"""README's results table holds what `reproduce --quick` prints (docs/readme_table.py): the
matching rule on made-up rows, and three quick presets run here against the real README (the
others run in `make demo`, which prints the same check, and in the slow preset tests)."""

import importlib.util
import json
from pathlib import Path

import pytest

from jaxunsup import report

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_table", ROOT / "docs" / "readme_table.py")
readme_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_table)


def _entry(metric: str, ours) -> dict:
    return {"status": "ok", "results": {"table": [{"metric": metric, "ours": ours}]}}


README = """| experiment (seed) | ours | seed |
|---|---|---|
| ae-stacked (000 §2) | 4 epochs: test MSE 0.0507; k-means acc 0.340 | 0.044 |
| dcgan (000 §5.2) | 40 steps at batch 25: FD 1,576, entropy 0.0, style 4.4e-6 | none |
| kmeans-circles (000 §1) | inertia 257.94, ARI −0.002 on [0, 1] | a figure |
"""


def test_a_row_holds_a_number_at_the_precision_it_prints_it():
    results = {
        "ae-stacked": _entry("test MSE", 0.05071),
        "dcgan": _entry("classifier-feature FD", 1575.64),
        "kmeans-circles": _entry("kmeans: inertia / ARI", [257.9412, -0.002]),  # exact: 1 digit
    }
    assert [ok for _, ok, _ in readme_table.check(results, README)] == [True, True, True]
    assert readme_table.holds(4.43e-6, README) and not readme_table.holds(4.6e-6, README)


@pytest.mark.parametrize(
    "name, metric, ours, missing",
    [
        ("ae-stacked", "test MSE", 0.0512, "0.0512"),  # off in the last printed digit
        ("ae-stacked", "test MSE", 0.05074, None),  # rounds to the printed 0.0507: holds
        ("kmeans-circles", "kmeans: inertia / ARI", [257.94, 0.4], "0.4"),  # a count is not it
        ("dcgan", "classifier-feature FD", 1577.0, "1577"),
        ("dcgan", "label entropy", 0.03, "0.03"),  # "0.0" is too coarse to stand for it
    ],
)
def test_a_number_the_row_does_not_print_is_named(name, metric, ours, missing):
    [(_, ok, message)] = readme_table.check({name: _entry(metric, ours)}, README)
    assert ok is (missing is None)
    if missing:
        assert message.endswith(f"README's row lacks {missing}") and metric in message


def test_a_failed_run_or_a_missing_row_does_not_hold():
    results = {"ae-conv": _entry("test MSE", 0.05), "dcgan": {"status": "failed", "error": "E"}}
    messages = [m for _, ok, m in readme_table.check(results, README) if not ok]
    assert messages == ["ae-conv: README's results table has no row for it",
                        "dcgan: the run did not finish (E)"]  # fmt: skip


def test_three_quick_presets_print_what_readme_says(tmp_path, capsys):
    """Real runs: the quick presets of three fast experiments against the real README."""
    only = ("kmeans-circles", "restore-image", "blobs-classifier")
    summary = report.reproduce(tmp_path, mode="quick", only=only)
    assert summary["failed"] == []
    assert readme_table.main([str(tmp_path)]) == 0, capsys.readouterr().out
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"ok   {n}" for n in only]
    results = json.loads((tmp_path / "results.json").read_text())
    assert readme_table.headline_values("restore-image", results["restore-image"])  # numbers
