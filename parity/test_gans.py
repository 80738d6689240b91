"""pytest face of the GAN parity checks (skipped where torch is absent). DCGAN gives L0/L1
rows for both conv impls and L2/L3 rows for the impl "auto" picks here."""

import pytest

pytest.importorskip("torch")

from jaxunsup import layers  # noqa: E402
from parity.check_gans import (  # noqa: E402
    IMPLS,
    check_bce,
    check_dcgan,
    check_gan_mlp,
    check_gan_simple,
)

TRAINED = (layers.resolve_impl("auto"),)
CHECKS = {
    "bce": check_bce,
    "gan-mlp": check_gan_mlp,
    "dcgan": lambda: check_dcgan(trained=TRAINED),
    "gan-mnist-simple": check_gan_simple,
}


@pytest.fixture(scope="module", params=list(CHECKS))
def rows(request):
    return request.param, CHECKS[request.param]()


def test_gan_parity(rows):
    name, found = rows
    levels = {"bce": {"L1"}}.get(name, {"L0", "L1", "L2", "L3"})
    assert levels <= {r["level"] for r in found}, f"{name}: a level did not run"
    bad = [r for r in found if not r["ok"]]
    assert not bad, bad
    if name == "dcgan":
        have = {(r["level"], r["model"]) for r in found}
        want = {(lv, f"dcgan [{i}]") for lv in ("L0", "L1") for i in IMPLS}
        want |= {(lv, f"dcgan [{i}]") for lv in ("L2", "L3") for i in TRAINED}
        assert want <= have, want - have
