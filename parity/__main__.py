"""`python -m parity [NAME ...]`: the parity table, torch on the device JAX uses (parity.device)."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX and torch share a GPU

from parity import device  # noqa: E402
from parity.registry import CHECKS  # noqa: E402


def main(argv: list[str]) -> int:
    names = argv or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"unknown check(s) {unknown}; choose from {list(CHECKS)}", file=sys.stderr)
        return 2
    device.full_float32()  # the precision policy, once, before any check
    print(device.describe())
    print("| model | level | what | max abs err | max rel err | tolerance | ok |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for name in names:
        for r in CHECKS[name]():
            failed += not r["ok"]
            print(f"| {r['model']} | {r['level']} | {r['what']} | {r['max_abs']:.2e} | "
                  f"{r['max_rel']:.2e} | {r['tol']} | {'yes' if r['ok'] else 'NO'} |",
                  flush=True)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
