"""pytest face of the Deep K-Means parity checks (skipped where torch is absent): L0/L1 for
both conv impls, L2/L3 for the impl "auto" picks here."""

import pytest

pytest.importorskip("torch")

from jaxunsup import layers  # noqa: E402
from parity.check_deep_kmeans import IMPLS, check_deep_kmeans  # noqa: E402

TRAINED = (layers.resolve_impl("auto"),)


@pytest.fixture(scope="module")
def rows():
    return check_deep_kmeans(steps=50, batch_size=16, trained=TRAINED)  # python -m parity: 32


@pytest.mark.parametrize("level", ["L0", "L1", "L2", "L3"])
def test_deep_kmeans_parity(rows, level):
    at_level = [r for r in rows if r["level"] == level]
    assert at_level, f"no {level} check ran"
    for r in at_level:
        assert r["ok"], r


@pytest.mark.parametrize("impl", IMPLS)
def test_assignments_are_exact_and_all_groups_get_gradients(rows, impl):
    mine = [r for r in rows if r["model"] == f"deep-kmeans [{impl}]"]
    (assign,) = [r for r in mine if r["what"].startswith("assignments")]
    assert assign["max_abs"] == 0
    grads = [r["what"] for r in mine if r["level"] == "L1" and "grads" in r["what"]]
    assert grads == ["encoder grads", "decoder grads", "centroid grads"]
