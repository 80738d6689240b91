"""`python -m parity [NAME ...]`: the parity table on whatever device JAX and torch use."""

from __future__ import annotations

import sys

import jax
import torch

from parity.checks import CHECKS


def main(argv: list[str]) -> int:
    names = argv or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"unknown check(s) {unknown}; choose from {list(CHECKS)}", file=sys.stderr)
        return 2
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__}")
    print("| model | level | what | max abs err | max rel err | tolerance | ok |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for name in names:
        for r in CHECKS[name]():
            failed += not r["ok"]
            print(f"| {r['model']} | {r['level']} | {r['what']} | {r['max_abs']:.2e} | "
                  f"{r['max_rel']:.2e} | {r['tol']} | {'yes' if r['ok'] else 'NO'} |")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
