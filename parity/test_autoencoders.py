"""pytest face of the autoencoder-family parity checks (skipped where torch is absent).

Shorter L3 runs than `python -m parity` uses, so the suite stays fast on a CPU; the conv models
give L0/L1 rows for both conv impls and L2/L3 rows for the impl "auto" picks here."""

import pytest

pytest.importorskip("torch")

from jaxunsup import layers  # noqa: E402
from parity import check_autoencoders as checks  # noqa: E402

TRAINED = (layers.resolve_impl("auto"),)
RUNS = {
    "ae-denoising": lambda: checks.check_denoising_ae(steps=30),
    "ae-conv": lambda: checks.check_conv_ae(steps=20, trained=TRAINED),
    "ae-keras-mlp": lambda: checks.check_keras_mlp(steps=10),
    "ae-keras-cnn": lambda: checks.check_keras_cnn(steps=8, batch_size=50, trained=TRAINED),
}
CONV = {"ae-conv", "ae-keras-cnn"}


@pytest.fixture(scope="module", params=list(RUNS))
def run(request):
    return request.param, RUNS[request.param]()


@pytest.mark.parametrize("level", ["L0", "L1", "L2", "L3"])
def test_autoencoder_parity(run, level):
    name, rows = run
    at_level = [r for r in rows if r["level"] == level]
    assert at_level, f"{name}: no {level} check ran"
    for r in at_level:
        assert r["ok"], r


def test_conv_models_have_rows_for_each_impl(run):
    name, rows = run
    models = {(r["level"], r["model"]) for r in rows}
    if name in CONV:
        want = {(lv, f"{name} [{i}]") for lv in ("L0", "L1") for i in checks.IMPLS}
        want |= {(lv, f"{name} [{i}]") for lv in ("L2", "L3") for i in TRAINED}
    else:
        want = {(lv, name) for lv in ("L0", "L1", "L2", "L3")}
    assert want <= models, want - models


def test_conv_transpose_output_padding_alone():
    rows = checks.check_conv_transpose_output_padding()
    assert {r["what"].split(":")[0] for r in rows} == {"matmul", "xla"}
    for r in rows:
        assert r["ok"], r
