"""README's results table against a `reproduce` run: `python docs/readme_table.py RUNS [README]`.

For each experiment in `RUNS/results.json` (what `make demo` writes), the headline number of
the report's summary table (`jaxunsup.report.HEADLINES`: the same row, the same value) must
appear in README's row for that experiment, at the precision README prints it: 0.0507 holds
for 0.05071, 1,576 for 1575.64, 4.4e-6 for 4.43e-06. A list-valued headline (per-seed MSEs,
mean and std, a trace) needs each of its non-zero entries. Prints one line per experiment and
exits 1 when a row does not hold (`make demo` prints the lines and goes on: another machine's
numbers may differ in the last digit; README's come from the CPU named in its Results).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from jaxunsup import report

# 1,576 | 0.0507 | −0.002 | 4.4e-6 | 12 (README writes U+2212 for minus and commas in thousands)
_NUMBER = re.compile(r"[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-−]?\d+(?:\.\d+)?(?:e[-−+]?\d+)?")


def readme_rows(text: str) -> dict[str, str]:
    """Experiment name → the "ours" cell of its row in README's results table
    ("| name (post §) | ours | the seed's |")."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*([a-z0-9-]+)\s*\(", line)
        if m:
            rows.setdefault(m.group(1), re.split(r"(?<!\\)\|", line)[2])  # "\|" stays in
    return rows


def numbers(text: str) -> list[tuple[float, float]]:
    """Every number in `text` with half a unit of its last printed digit, or 0 (an exact match
    only) where it shows fewer than two significant digits: "2 epochs", "[0, 1]", "0.0" and
    "−0.002" are counts or too coarse to stand for a measured value."""
    found = []
    for token in _NUMBER.findall(text):
        token = token.replace("−", "-").replace(",", "")
        mantissa, _, exponent = token.partition("e")
        decimals = len(mantissa.partition(".")[2])
        scale = 10.0 ** int(exponent) if exponent else 1.0
        significant = len(mantissa.lstrip("-").replace(".", "").lstrip("0"))
        half = 0.5 * 10.0**-decimals * scale if significant >= 2 else 0.0
        found.append((float(token), half))
    return found


def headline_values(name: str, entry: dict) -> list[float]:
    """The summary table's headline value(s) for one experiment, zeros left out."""
    ours = report._headline(name, entry)["ours"]
    values = ours if isinstance(ours, list | tuple) else [ours]
    return [float(v) for v in values if isinstance(v, int | float) and v != 0]


def holds(value: float, row: str) -> bool:
    """Whether `row` prints `value` at the precision it prints some number."""
    return any(abs(value - n) <= half * (1 + 1e-9) for n, half in numbers(row))


def check(results: dict, readme_text: str) -> list[tuple[str, bool, str]]:
    """(experiment, holds, message) for each experiment of a `reproduce` run."""
    rows = readme_rows(readme_text)
    out = []
    for name, entry in results.items():
        if entry.get("status") != "ok":
            out.append((name, False, f"{name}: the run did not finish ({entry.get('error')})"))
            continue
        if name not in rows:
            out.append((name, False, f"{name}: README's results table has no row for it"))
            continue
        values = headline_values(name, entry)
        missing = [v for v in values if not holds(v, rows[name])]
        metric = report._headline(name, entry)["metric"]
        shown = ", ".join(f"{v:.4g}" for v in values)
        if missing or not all(math.isfinite(v) for v in values):
            miss = ", ".join(f"{v:.4g}" for v in missing)
            out.append((name, False, f"{name}: this run's {metric!r} is {shown}; "
                                     f"README's row lacks {miss}"))  # fmt: skip
        else:
            out.append((name, True, f"{name}: README's row holds {shown}"))
    return out


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print("usage: python docs/readme_table.py RUNS [README.md]", file=sys.stderr)
        return 2
    runs = Path(argv[0]) / "results.json"
    readme = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[1] / "README.md"
    if not runs.is_file():
        print(f"readme_table: {runs} does not exist; run `make demo` first", file=sys.stderr)
        return 2
    lines = check(json.loads(runs.read_text()), readme.read_text(encoding="utf-8"))
    for _, ok, message in lines:
        print(("ok   " if ok else "DIFF ") + message)
    return 0 if all(ok for _, ok, _ in lines) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
