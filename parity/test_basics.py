"""pytest face of post 002's parity checks (skipped where torch is absent)."""

import pytest

pytest.importorskip("torch")

from parity.check_basics import check_blobs_classifier, check_restore_image  # noqa: E402


@pytest.fixture(scope="module")
def restore_rows():
    return check_restore_image()


@pytest.fixture(scope="module")
def blobs_rows():
    return check_blobs_classifier()


@pytest.mark.parametrize("level", ["L0", "L1", "L3"])
def test_restore_image_parity(restore_rows, level):
    at_level = [r for r in restore_rows if r["level"] == level]
    assert at_level, f"no {level} check ran"
    for r in at_level:
        assert r["ok"], r


@pytest.mark.parametrize("level", ["L0", "L1", "L2", "L3"])
def test_blobs_classifier_parity(blobs_rows, level):
    at_level = [r for r in blobs_rows if r["level"] == level]
    assert at_level, f"no {level} check ran"
    for r in at_level:
        assert r["ok"], r
