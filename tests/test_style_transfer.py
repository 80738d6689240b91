"""Style transfer: gram and normalisation against NumPy, the losses' closed forms, the three
optimisers (clamp, evaluation budget, progress), the experiment's files and the command, end to
end at 32×32 with random VGG weights. (Losses, gradients and the whole loop against the post's
torch code: parity/test_style.py.)"""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxunsup import cli, data, style_transfer_core, vgg
from jaxunsup import style_transfer as st
from jaxunsup.registry import EXPERIMENTS

SIZE, STEPS = 32, 50  # every torch-lbfgs run here shares one compiled program


@pytest.fixture(scope="module")
def images():
    return data.load_image("china", SIZE), data.load_image("flower", SIZE)


@pytest.fixture(scope="module")
def params():
    return vgg.init_vgg19(0, st.Config().style_layers)


@functools.partial(jax.jit, static_argnames="cfg")
def _loss(image, params, content, style, cfg):
    targets = st.compute_targets(params, content[None], style[None], cfg)
    return st.loss_fn(image[None], params, targets, cfg)


def test_gram_matches_numpy_definition():
    x = np.random.default_rng(0).normal(size=(2, 5, 4, 3)).astype(np.float32)  # NHWC
    a, h, w, c = x.shape
    f = x.transpose(0, 3, 1, 2).reshape(a * c, h * w)  # the post's view of NCHW
    np.testing.assert_allclose(st.gram_matrix(jnp.asarray(x)), f @ f.T / (a * c * h * w),
                               rtol=1e-5, atol=1e-7)  # fmt: skip


def test_normalize_is_imagenet_standardisation():
    x = np.random.default_rng(1).uniform(size=(1, 4, 4, 3)).astype(np.float32)
    ref = (x - np.array(st.IMAGENET_MEAN)) / np.array(st.IMAGENET_STD)
    np.testing.assert_allclose(st.normalize(jnp.asarray(x)), ref, rtol=1e-6, atol=1e-6)


def test_losses_closed_forms(images, params):
    content, style = (jnp.asarray(im) for im in images)
    cfg = st.Config()
    loss, parts = _loss(content, params, content, style, cfg)
    assert float(parts["content"]) == 0.0 and float(parts["style"]) > 0  # starts at content
    np.testing.assert_allclose(loss, 1e5 * parts["style"], rtol=1e-6)
    _, same = _loss(content, params, content, content, cfg)
    assert float(same["style"]) == 0.0  # style image = content image
    # per-layer weights: (2, 0, 0, 0, 0) is twice conv_1 alone
    two = dataclasses.replace(cfg, style_layer_weights=(2.0, 0.0, 0.0, 0.0, 0.0))
    one = dataclasses.replace(cfg, style_layers=("conv_1",))
    np.testing.assert_allclose(_loss(style, params, content, style, two)[1]["style"],
                               2 * _loss(style, params, content, style, one)[1]["style"],
                               rtol=1e-6)  # fmt: skip


def test_seed_compat_closure_returns_the_unweighted_loss(images, params):
    content, style = (jnp.asarray(im)[None] for im in images)
    image = jnp.clip(content + 0.05, 0, 1)
    cfg = st.Config()
    targets = st.compute_targets(params, content, style, cfg)
    closure = jax.jit(style_transfer_core.closure, static_argnames="cfg")
    v, g, aux = closure(image, params, targets, False, cfg=cfg)
    v_post, g_post, _ = closure(image, params, targets, True, cfg=cfg)  # no new compile
    np.testing.assert_allclose(v, aux["loss"], rtol=1e-6)
    np.testing.assert_allclose(v_post, aux["style"] + aux["content"], rtol=1e-6)
    np.testing.assert_array_equal(g_post, g)  # the post back-propagates the weighted loss
    assert float(v_post) < float(v)


def test_torch_lbfgs_runs_the_posts_loop(images, params, capsys, compile_counter):
    result = st.stylize(*images, params, steps=STEPS)
    h = result.history
    assert len(h["evals"]) == 60  # `while evals <= 50` starts a third step of 20 evaluations
    np.testing.assert_array_equal(h["evals"], np.arange(1, 61))
    assert result.image.shape == (SIZE, SIZE, 3) and result.image.dtype == np.float32
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    assert h["loss"].min() < 0.5 * h["loss"][0]
    assert h["content"][0] == 0.0 and h["content"][-1] > 0  # it left the content image
    assert [r["evaluation"] for r in result.log] == [50]
    np.testing.assert_allclose(result.log[0]["style"], h["style"][49])
    assert "Iteration 50: Style Loss :" in capsys.readouterr().out
    with compile_counter:  # the same settings again compile nothing
        st.stylize(*images, params, steps=STEPS, verbose=False)
    assert compile_counter.count == 0


@pytest.mark.parametrize("optimizer", ["optax-lbfgs", "adam"])
def test_other_optimizers_clamp_and_respect_the_budget(images, params, optimizer):
    result = st.stylize(*images, params, steps=30, optimizer=optimizer, verbose=False)
    h = result.history
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    assert np.all(np.diff(h["evals"]) > 0) and h["evals"][0] == 1
    assert 30 <= h["evals"][-1] <= 30 + 20  # optax's zoom search takes ≤ 20 per iteration
    assert h["loss"][-1] < 0.5 * h["loss"][0]


def test_bad_inputs_are_value_errors_before_compiling(images, params, compile_counter):
    content, style = images
    cases = [
        (dict(content=content[..., :2]), "content must be an RGB image"),
        (dict(style=np.full_like(style, np.nan)), "style contains NaN"),
        (dict(steps=0), "steps must be a positive integer"),
        (dict(lr=-1.0), "lr must be a positive number"),
        (dict(style_weight=-1.0), "style_weight"),
        (dict(optimizer="sgd"), "optimizer must be one of"),
        (dict(style_layers=("conv_99",)), "unknown VGG19 layer 'conv_99'"),
        (dict(style_layer_weights=(1.0, 2.0)), "style_layer_weights has 2 values"),
        (dict(content_layers=(), style_layers=()), "both empty"),
        (dict(style_layers=("conv_9",)), r"vgg_params lack \['features_12'"),
    ]
    with compile_counter:
        for kw, match in cases:
            args = {"content": content, "style": style, **kw}
            c, s = args.pop("content"), args.pop("style")
            with pytest.raises(ValueError, match=match):
                st.stylize(c, s, params, verbose=False, **args)
    assert compile_counter.count == 0


def test_experiment_writes_results_and_figures(tmp_path, images):
    exp = EXPERIMENTS["style-transfer"]
    cfg = exp.make_config(size=SIZE, steps=STEPS, random_vgg=True)
    results = st.run(cfg, tmp_path, data=images)
    for name in ("config.json", "metrics.jsonl", "results.json", *results["figures"]):
        assert (tmp_path / name).is_file(), name
    assert set(results["figures"]) == {"result.png", "side_by_side.png", "losses.png"}
    assert results["random_vgg"] and "random VGG19 weights" in results["vgg"]
    rows = {r["metric"].split(" (")[0]: r for r in results["table"]}
    assert rows["style loss at evaluation 50"]["seed"] == st.SEED_LOG[50][0]
    assert "random VGG19" in results["table"][0]["metric"]
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["evaluation"] for r in log] == [50]
    assert Image.open(tmp_path / "side_by_side.png").size[0] > 3 * SIZE


def test_quick_preset_uses_random_weights_only_without_pretrained_ones():
    quick = EXPERIMENTS["style-transfer"].make_config("quick")
    assert quick.random_vgg == (vgg.find_weights() is None)
    assert quick.size <= 128 and quick.optimizer == "torch-lbfgs"
    assert EXPERIMENTS["style-transfer"].make_config() == st.Config()  # the post's settings


def test_command_end_to_end(tmp_path, capsys, params):
    out = tmp_path / "out.png"
    args = ["--size", str(SIZE), "--steps", str(STEPS), "--random-vgg", "--out", str(out)]
    assert cli.main(["style-transfer", *args]) == 0
    assert Image.open(out).size == (SIZE, SIZE)
    printed = capsys.readouterr().out
    assert "Iteration 50: Style Loss" in printed and "random VGG19 weights" in printed
    npz = vgg.save_npz(vgg.init_vgg19(3), tmp_path / "weights.npz")  # pretrained-like file
    args = ["--size", str(SIZE), "--steps", str(STEPS), "--vgg-weights", str(npz),
            "--content", "flower", "--style", "china", "--out", str(tmp_path / "b.png"),
            ]  # fmt: skip
    assert cli.main(["style-transfer", *args]) == 0
    assert f"torchvision VGG19 weights ({npz})" in capsys.readouterr().out


def test_command_refuses_without_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert cli.main(["style-transfer", "--size", "32", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no pretrained VGG19 weights" in err and "--random-vgg" in err
    assert "vgg19-dcbb9e9d.pth" in err and "--vgg-weights" in err
    assert not (tmp_path / "x.png").exists()
    assert cli.main(["style-transfer", "--vgg-weights", str(tmp_path / "none.pth")]) == 2
    assert "no VGG19 weights file" in capsys.readouterr().err
