"""VGG19 trunk: layer names, shapes, torchvision weights (a random VGG19 saved with
`torch.save`, loaded back and compared at every convolution), `.npz` round trip, errors, and
the custom gradients of the 3×3 convolution and the 2×2 max pool against torch."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxunsup import backend, layers, vgg

DIMS = ("NHWC", "HWIO", "NHWC")

CONVS = tuple(f"conv_{i}" for i in range(1, 17))
ALL_LAYERS = tuple(n for n, i in sorted(vgg.LAYER_INDEX.items(), key=lambda kv: kv[1])
                   if n.startswith(("conv_", "relu_", "maxpool_")))  # fmt: skip
_features = jax.jit(vgg.features, static_argnames=("layers", "conv_impl"))


def test_layer_names_follow_the_post_and_the_paper():
    assert vgg.NUM_LAYERS == 37 and len(vgg.CONV_INDICES) == 16
    assert vgg.CONV_INDICES[:5] == (0, 2, 5, 7, 10)  # the post's conv_1 … conv_5
    same = [("conv_1", "conv1_1"), ("relu_2", "relu1_2"), ("conv_5", "conv3_1"),
            ("conv_10", "conv4_2"), ("relu_16", "relu5_4"), ("maxpool_4", "pool2"),
            ("pool_16", "pool5")]  # fmt: skip
    for post, paper in same:
        assert vgg.layer_index(post) == vgg.layer_index(paper)
    assert vgg.layer_index("pool_2") == vgg.layer_index("maxpool_2") == 4
    assert vgg.layer_index("conv_16") == 34 and vgg.layer_index("pool5") == 36
    with pytest.raises(ValueError, match="conv1_1"):
        vgg.layer_index("conv_17")


def torch_vgg19_features() -> torch.nn.Sequential:
    """`torchvision.models.vgg19().features`'s layout (torchvision is not needed), random
    weights and biases."""
    torch.manual_seed(1)
    layers, channels = [], 3
    for v in vgg.CFG:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = torch.nn.Conv2d(channels, v, kernel_size=3, padding=1)
            torch.nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.normal_(conv.bias, std=0.1)
            layers += [conv, torch.nn.ReLU(inplace=True)]
            channels = v
    return torch.nn.Sequential(*layers).eval()


@pytest.fixture(scope="module")
def torch_vgg():
    return torch_vgg19_features()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, torch_vgg):
    """A torchvision-layout VGG19 state_dict file, classifier keys included (small shapes:
    the loader must ignore them)."""
    sd = {f"features.{k}": v for k, v in torch_vgg.state_dict().items()}
    for i in (0, 3, 6):
        sd[f"classifier.{i}.weight"], sd[f"classifier.{i}.bias"] = torch.zeros(4, 8), torch.zeros(4)
    path = tmp_path_factory.mktemp("weights") / vgg.TORCHVISION_FILE
    torch.save(sd, path)
    return path


def _torch_convs(model, image: np.ndarray) -> list[np.ndarray]:
    x, outs = torch.from_numpy(image.transpose(0, 3, 1, 2).copy()), []
    with torch.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, torch.nn.Conv2d):
                outs.append(x.clone().numpy().transpose(0, 2, 3, 1))
    return outs


@pytest.fixture(scope="module")
def loaded(weights_file):
    """Params from the file, a 64×48 batch of two, and every layer's activation (one compile)."""
    params = vgg.load_vgg19(weights_file)
    image = np.random.default_rng(0).normal(size=(2, 64, 48, 3)).astype(np.float32)
    return params, image, _features(params, jnp.asarray(image), ALL_LAYERS)


def test_torchvision_file_gives_torch_activations_at_every_conv(loaded, torch_vgg):
    params, image, ours = loaded
    assert sorted(params["params"]) == sorted(f"features_{i}" for i in vgg.CONV_INDICES)
    for name, theirs in zip(CONVS, _torch_convs(torch_vgg, image), strict=True):
        np.testing.assert_allclose(ours[name], theirs, atol=1e-4, rtol=1e-5, err_msg=name)


def test_npz_round_trip(weights_file, tmp_path):
    params = vgg.load_vgg19(weights_file)
    path = vgg.save_npz(params, tmp_path / "vgg19.npz")
    again = vgg.load_vgg19(path)
    jax.tree.map(np.testing.assert_array_equal, params, again)


def test_feature_shapes_per_layer(loaded):
    feats = loaded[2]
    paper = ("conv1_2", "pool1", "relu2_1", "pool2", "conv3_4", "pool3", "conv4_1", "pool4",
             "relu5_4", "pool5")  # fmt: skip
    expected = [(64, 48, 64), (32, 24, 64), (32, 24, 128), (16, 12, 128), (16, 12, 256),
                (8, 6, 256), (8, 6, 512), (4, 3, 512), (4, 3, 512), (2, 1, 512)]  # fmt: skip
    by_index = {vgg.layer_index(n): feats[n] for n in ALL_LAYERS}
    assert [by_index[vgg.layer_index(n)].shape for n in paper] == [(2, *s) for s in expected]
    assert np.all(np.asarray(feats["relu_7"]) >= 0)
    np.testing.assert_array_equal(feats["relu_3"], np.maximum(feats["conv_3"], 0))


def test_random_init_is_torchvisions_and_truncated():
    params = vgg.init_vgg19(0, ["conv_5"])["params"]
    assert sorted(params) == ["features_0", "features_10", "features_2", "features_5",
                              "features_7"]  # fmt: skip
    k = np.asarray(params["features_7"]["kernel"])
    assert k.shape == (3, 3, 128, 128) and k.dtype == np.float32
    np.testing.assert_allclose(k.std(), np.sqrt(2.0 / (128 * 9)), rtol=0.03)  # fan_out, ReLU
    assert abs(k.mean()) < 0.01 * k.std()
    assert not np.any(np.asarray(params["features_7"]["bias"]))
    # the module's own initialisers draw from the same distribution
    shapes = jax.eval_shape(vgg.VGG19(11).init, jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
    assert jax.tree.map(lambda a: a.shape, shapes) == jax.tree.map(np.shape, {"params": params})
    np.testing.assert_array_equal(vgg.init_vgg19(0)["params"]["features_7"]["kernel"], k)


def test_missing_or_wrong_weights_are_clear_errors(tmp_path, torch_vgg):
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth.*--vgg-weights"):
        vgg.load_vgg19(tmp_path / "nope.pth")
    sd = {f"features.{k}": v for k, v in torch_vgg.state_dict().items()}
    del sd["features.34.bias"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"features\.34\.bias"):
        vgg.load_vgg19(tmp_path / "partial.pth")
    sd = dict(torch_vgg.state_dict())  # the bare `features` module's keys are fine…
    sd["5.weight"] = torch.zeros(64, 64, 3, 3)  # …but not a VGG16/other shape
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"features\.5\.weight has shape"):
        vgg.load_vgg19(tmp_path / "shape.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        vgg.load_vgg19(tmp_path / "junk.pth")
    np.savez(tmp_path / "bad.npz", something=np.zeros(3))
    with pytest.raises(ValueError, match="unexpected entry"):
        vgg.load_vgg19(tmp_path / "bad.npz")


def test_conv_gradients_match_autodiff():
    rng = np.random.default_rng(0)
    x, k, g = (rng.normal(size=s).astype(np.float32)
               for s in ((2, 9, 7, 5), (3, 3, 5, 4), (2, 9, 7, 4)))  # fmt: skip
    pads = ((1, 1), (1, 1))
    grads = jax.jit(lambda f: jax.vjp(f, x, k)[1](g), static_argnums=0)

    def lax_conv(x, k):  # autodiff of XLA's convolution, no hand-written VJP
        return jax.lax.conv_general_dilated(x, k, (1, 1), pads, dimension_numbers=DIMS)

    ours = functools.partial(layers.conv2d, strides=(1, 1), padding=pads, impl="xla")
    assert backend.on_cpu()  # "xla" on CPU: the stride-1 convolution's hand-written VJP
    for a, b in zip(grads(ours), grads(lax_conv), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("platform", ["cpu", "gpu"])
@pytest.mark.parametrize("impl", ["xla", "matmul"])
@pytest.mark.parametrize("shape", [(2, 6, 8, 3), (1, 7, 5, 2)])
def test_max_pool_and_its_gradient_match_torch_with_ties(monkeypatch, shape, impl, platform):
    """Ties everywhere (values in {0, 1, 2}); torch sends the gradient to the first maximum of
    each window, and odd sizes drop the last row/column. On CPU the tiled pool's hand-written
    VJP, with the backend reported as a GPU XLA's `reduce_window` for impl="xla"."""
    monkeypatch.setattr(backend, "platform", lambda: platform)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, shape).astype(np.float32)
    g = rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype(np.float32)
    y, vjp = jax.vjp(lambda a: layers.max_pool(a, (2, 2), impl=impl), jnp.asarray(x))
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    yt = torch.nn.MaxPool2d(2, 2)(xt)
    yt.backward(torch.from_numpy(g.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_array_equal(y, yt.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(vjp(jnp.asarray(g))[0], xt.grad.numpy().transpose(0, 2, 3, 1))
