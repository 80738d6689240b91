"""pytest face of the stacked-AE parity checks (skipped where torch is absent)."""

import pytest

pytest.importorskip("torch")

from parity.check_autoencoders import check_stacked_ae  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    return check_stacked_ae()


@pytest.mark.parametrize("level", ["L0", "L1", "L2", "L3"])
def test_stacked_ae_parity(rows, level):
    at_level = [r for r in rows if r["level"] == level]
    assert at_level, f"no {level} check ran"
    for r in at_level:
        assert r["ok"], r
