"""pytest face of post 003's ConvVAE parity checks (skipped where torch is absent).

`python -m parity vae-z2` runs the full check (L3 over 100 steps of batch 100); here L3 runs
20 steps of batch 25 to keep the file fast on a 2-core CPU.
"""

import pytest

pytest.importorskip("torch")

from parity.checks import check_vae, check_vae_ops  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    return check_vae(steps=20, batch_size=25)


@pytest.mark.parametrize("level", ["L0", "L1", "L2", "L3"])
def test_vae_parity(rows, level):
    at_level = [r for r in rows if r["level"] == level]
    assert at_level, f"no {level} check ran"
    for r in at_level:
        assert r["ok"], r


def test_matmul_convolutions_match_torch():
    for r in check_vae_ops():
        assert r["ok"], r
