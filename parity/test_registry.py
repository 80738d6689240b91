"""The parity package's structure: importing the checks flips no global flag (the runners set
the precision policy), no check module imports the registry (no cycle), and `python -m parity`
refuses an unknown check by name. Each import runs in a fresh interpreter."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
CHECK_MODULES = sorted(f"parity.{p.stem}" for p in (ROOT / "parity").glob("check_*.py"))

FLAGS = """
import json, sys, torch, jax
def flags():
    return [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.get_float32_matmul_precision(), jax.config.jax_default_matmul_precision]
before = flags()
import {module}
print(json.dumps({{"before": before, "after": flags(),
                  "registry": "parity.registry" in sys.modules}}))
"""


def _import(module: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", FLAGS.format(module=module)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_registry_sets_no_global_flag():
    seen = _import("parity.registry")
    assert seen["registry"] and seen["after"] == seen["before"], seen


@pytest.mark.parametrize("module", CHECK_MODULES)
def test_a_check_module_imports_no_registry(module):
    seen = _import(module)
    assert not seen["registry"], f"{module} imports parity.registry (a cycle)"
    assert seen["after"] == seen["before"], seen


def test_registry_lists_every_check_module():
    from parity import registry

    defined_in = {fn.__module__ for fn in registry.CHECKS.values()}
    assert defined_in == set(CHECK_MODULES), set(CHECK_MODULES) ^ defined_in


def test_unknown_check_is_refused(capsys):
    from parity.__main__ import main

    assert main(["no-such-check"]) == 2
    err = capsys.readouterr().err
    assert "no-such-check" in err and "kmeans" in err
