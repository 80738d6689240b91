"""pytest face of the autoencoder-family parity checks (skipped where torch is absent).

Shorter L3 runs than `python -m parity` uses, so the suite stays fast on a CPU."""

import pytest

pytest.importorskip("torch")

from parity import check_autoencoders as checks  # noqa: E402

RUNS = {
    "ae-denoising": lambda: checks.check_denoising_ae(steps=30),
    "ae-conv": lambda: checks.check_conv_ae(steps=20),
    "ae-keras-mlp": lambda: checks.check_keras_mlp(steps=10),
    "ae-keras-cnn": lambda: checks.check_keras_cnn(steps=8, batch_size=50),
}


@pytest.fixture(scope="module", params=list(RUNS))
def rows(request):
    return RUNS[request.param]()


@pytest.mark.parametrize("level", ["L0", "L1", "L2", "L3"])
def test_autoencoder_parity(rows, level):
    at_level = [r for r in rows if r["level"] == level]
    assert at_level, f"no {level} check ran"
    for r in at_level:
        assert r["ok"], r


def test_conv_transpose_output_padding_alone():
    rows = checks.check_conv_transpose_output_padding()
    assert {r["what"].split(":")[0] for r in rows} == {"patch_conv", "layers"}
    for r in rows:
        assert r["ok"], r
