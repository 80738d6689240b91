"""pytest face of the style-transfer parity checks (skipped where torch is absent).

`python -m parity style-transfer` runs them at the issue's 64×64; here 32×32 keeps CI fast
(same levels and tolerances; the float32 loop is compared over its first 5 evaluations).
L0/L1 rows come for both conv impls, L3 for `style_transfer.Config`'s default impl."""

import pytest

pytest.importorskip("torch")

from jaxunsup import style_transfer  # noqa: E402
from parity.check_style import IMPLS, check_style_transfer  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    # smaller images part sooner in float32 (rounding grows ~1.5x per evaluation)
    return check_style_transfer(size=32, float32_evals=5)


@pytest.mark.parametrize("level", ["L0", "L1", "L3"])
def test_style_transfer_parity(rows, level):
    at_level = [r for r in rows if r["level"] == level]
    assert at_level, f"no {level} check ran"
    for r in at_level:
        assert r["ok"], r


def test_rows_for_each_conv_impl(rows):
    have = {(r["level"], r["model"]) for r in rows}
    want = {(lv, f"style-transfer [{i}]") for lv in ("L0", "L1") for i in IMPLS}
    want.add(("L3", f"style-transfer [{style_transfer.Config().conv_impl}]"))
    assert want <= have, want - have
