"""pytest face of the GAN parity checks (skipped where torch is absent)."""

import pytest

pytest.importorskip("torch")

from parity.check_gans import check_bce, check_dcgan, check_gan_mlp, check_gan_simple  # noqa: E402

CHECKS = {
    "bce": check_bce,
    "gan-mlp": check_gan_mlp,
    "dcgan": check_dcgan,
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
