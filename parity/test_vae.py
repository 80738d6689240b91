"""pytest face of post 003's ConvVAE parity checks (skipped where torch is absent).

`python -m parity vae-z2` runs the full check (L3 over 100 steps of batch 100, every level for
both conv impls); here L3 runs 20 steps of batch 25, L2/L3 on the impl "auto" picks here, to
keep the file fast on a 2-core CPU.
"""

import pytest

pytest.importorskip("torch")

from jaxunsup import layers  # noqa: E402
from parity.check_vae import IMPLS, check_vae, check_vae_ops  # noqa: E402

TRAINED = (layers.resolve_impl("auto"),)


@pytest.fixture(scope="module")
def rows():
    return check_vae(steps=20, batch_size=25, trained=TRAINED)


@pytest.mark.parametrize("level", ["L0", "L1", "L2", "L3"])
def test_vae_parity(rows, level):
    at_level = [r for r in rows if r["level"] == level]
    assert at_level, f"no {level} check ran"
    for r in at_level:
        assert r["ok"], r


def test_rows_for_each_conv_impl(rows):
    have = {(r["level"], r["model"]) for r in rows}
    want = {(lv, f"vae-z2 [{i}]") for lv in ("L0", "L1") for i in IMPLS}
    want |= {(lv, f"vae-z2 [{i}]") for lv in ("L2", "L3") for i in TRAINED}
    assert want <= have, want - have


def test_convolutions_match_torch_by_each_impl():
    rows = check_vae_ops()
    assert {r["model"] for r in rows} == {f"vae-ops [{i}]" for i in IMPLS}
    for r in rows:
        assert r["ok"], r
