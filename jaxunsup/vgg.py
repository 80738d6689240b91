"""VGG19's convolutional trunk (torchvision's `vgg19().features`) with every activation named.

Seed: post 000 §6 uses `models.vgg19(pretrained=True).features.eval()` and
names its layers while walking them: `conv_i`, `relu_i`, `maxpool_i`, with i counting the
convolutions seen so far. The paper (Simonyan & Zisserman; Gatys et al. for style transfer)
names them by block: `conv1_1`, `relu4_2`, `pool3`. Both namings are accepted, and `pool_i` as
a short form of the post's `maxpool_i`.

`VGG19` is a Linen module whose convolutions are named `features_<i>` after torchvision's
`features.<i>` (`parity/convert.py`'s rule), NHWC, 3×3 convolutions with padding 1 and 2×2 max
pools. It runs only as deep as the deepest layer asked for: the post needs nothing past
`conv_5` (conv3_1). Random weights use torchvision's own VGG init (Kaiming-normal, fan_out,
ReLU gain; zero biases), not `nn.Conv2d`'s default.

Weights: `load_vgg19(path)` reads torchvision's `vgg19-dcbb9e9d.pth` (a state_dict; the
`classifier.*` keys are ignored) with `torch.load` when torch is installed, or an `.npz` that
`save_npz` wrote, which needs no torch.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np

from jaxunsup.layers import Conv, max_pool

# torchvision's configuration "E": channels per convolution, "M" for a max pool.
CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
       512, 512, 512, 512, "M", 512, 512, 512, 512, "M")  # fmt: skip
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILE}"


def _layer_table() -> tuple[list[tuple[str, int]], dict[str, int], dict[int, int]]:
    """(features index → kind), name → features index, conv features index → in-channels."""
    kinds, names, in_channels = [], {}, {}
    conv, block, in_block, channels = 0, 1, 0, 3
    for v in CFG:
        i = len(kinds)
        if v == "M":
            kinds.append(("pool", channels))
            names.update({f"maxpool_{conv}": i, f"pool_{conv}": i, f"pool{block}": i})
            block, in_block = block + 1, 0
            continue
        conv, in_block = conv + 1, in_block + 1
        in_channels[i] = channels
        kinds += [("conv", v), ("relu", v)]
        names.update({f"conv_{conv}": i, f"conv{block}_{in_block}": i})
        names.update({f"relu_{conv}": i + 1, f"relu{block}_{in_block}": i + 1})
        channels = v
    return kinds, names, in_channels


LAYERS, LAYER_INDEX, _IN_CHANNELS = _layer_table()
CONV_INDICES = tuple(sorted(_IN_CHANNELS))  # torchvision's features.<i> of the 16 convolutions
NUM_LAYERS = len(LAYERS)  # 37


def layer_index(name: str) -> int:
    """The torchvision `features` index of a layer named as the post or the paper does."""
    if name not in LAYER_INDEX:
        raise ValueError(
            f"unknown VGG19 layer {name!r}; use the post's names (conv_1 … conv_16, relu_i, "
            f"maxpool_i/pool_i) or the paper's (conv1_1 … conv5_4, relu4_2, pool3)"
        )
    return LAYER_INDEX[name]


def _conv3x3(features: int, impl: str, name: str) -> Conv:
    """torch's `Conv2d(k=3, padding=1)`: `kernel` [3, 3, I, O], `bias`, torchvision's init."""
    return Conv(
        features, (3, 3), padding=((1, 1), (1, 1)),
        kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
        bias_init=nn.initializers.zeros, impl=impl, name=name,
    )  # fmt: skip


class VGG19(nn.Module):
    """`torchvision.models.vgg19().features[:depth]`; returns every layer's output, in order."""

    depth: int = NUM_LAYERS
    conv_impl: str = "xla"  # `layers.resolve_impl`; see `style_transfer.Config.conv_impl`

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:  # x: [B, H, W, 3], normalised
        outs = []
        for i, (kind, channels) in enumerate(LAYERS[: self.depth]):
            if kind == "conv":
                x = _conv3x3(channels, self.conv_impl, f"features_{i}")(x)
            elif kind == "relu":
                x = nn.relu(x)
            else:
                x = max_pool(x, (2, 2), impl=self.conv_impl)  # torch's MaxPool2d(2, 2)
            outs.append(x)
        return outs


def depth_for(layers: Sequence[str]) -> int:
    """How many `features` layers must run to reach every layer in `layers`."""
    return max(layer_index(n) for n in layers) + 1


def init_vgg19(seed: int = 0, layers: Sequence[str] | None = None) -> dict:
    """Random VGG19 params with torchvision's init (kernels N(0, 2 / fan_out), fan_out =
    out·3·3; zero biases), only as deep as `layers` need (all 16 convolutions if None).

    Drawn with NumPy: compiling JAX's threefry for each kernel takes seconds on a CPU."""
    depth = NUM_LAYERS if layers is None else depth_for(layers)
    rng = np.random.default_rng(seed)
    params = {}
    for i in CONV_INDICES:
        if i < depth:
            out_ch = LAYERS[i][1]
            std = np.sqrt(2.0 / (out_ch * 9))
            kernel = rng.normal(0.0, std, (3, 3, _IN_CHANNELS[i], out_ch)).astype(np.float32)
            params[f"features_{i}"] = {"kernel": kernel, "bias": np.zeros(out_ch, np.float32)}
    return {"params": params}


def features(
    params: Mapping, images: jax.Array, layers: Sequence[str], conv_impl: str = "xla"
) -> dict[str, jax.Array]:
    """The activations of `layers` (names) for normalised NHWC `images` [B, H, W, 3]."""
    if np.ndim(images) != 4 or np.shape(images)[-1] != 3:
        raise ValueError(f"images must be RGB [B, H, W, 3], got shape {np.shape(images)}")
    outs = VGG19(depth_for(layers), conv_impl).apply(params, images)
    return {name: outs[layer_index(name)] for name in layers}


def truncate(params: Mapping, layers: Sequence[str]) -> dict:
    """Only the convolutions `layers` need (smaller to move to a device and to close over)."""
    depth = depth_for(layers)
    inner = params["params"]
    return {"params": {k: v for k, v in inner.items() if int(k.split("_")[1]) < depth}}


def missing_hint() -> str:
    """How to give the weights, for the error that finds none."""
    return (
        f"pass torchvision's {TORCHVISION_FILE} ({TORCHVISION_URL}) "
        "or an .npz from jaxunsup.vgg.save_npz as --vgg-weights PATH"
    )


def default_weight_paths() -> list[Path]:
    """Where pretrained weights are looked for when no path is given."""
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return [
        torch_home / "hub" / "checkpoints" / TORCHVISION_FILE,
        Path.home() / ".cache" / "jaxunsup" / "vgg19.npz",
    ]


def find_weights(path: str | os.PathLike | None = None) -> Path | None:
    """`path` if given (it must exist), else the first default location that exists."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"no VGG19 weights file {p};\n{missing_hint()}")
        return p
    return next((p for p in default_weight_paths() if p.is_file()), None)


def params_from_state_dict(state_dict: Mapping) -> dict:
    """torchvision VGG19 state_dict (`features.<i>.weight` …, or the bare `features` module's
    `<i>.weight` …; `classifier.*` ignored) → params; checks every key and shape."""
    arrays = {}
    for name, value in state_dict.items():
        if name.startswith("classifier."):
            continue
        key = name.removeprefix("features.")
        arrays[key] = value.detach().cpu().numpy() if hasattr(value, "detach") else value
    params = {}
    for i in CONV_INDICES:
        out_ch, in_ch = LAYERS[i][1], _IN_CHANNELS[i]
        for leaf, shape in (("weight", (out_ch, in_ch, 3, 3)), ("bias", (out_ch,))):
            if f"{i}.{leaf}" not in arrays:
                raise ValueError(
                    f"VGG19 weights lack features.{i}.{leaf}; expected torchvision's vgg19 "
                    f"state_dict ({TORCHVISION_FILE}), got keys {sorted(state_dict)[:4]}…"
                )
            if tuple(np.shape(arrays[f"{i}.{leaf}"])) != shape:
                raise ValueError(
                    f"features.{i}.{leaf} has shape {tuple(np.shape(arrays[f'{i}.{leaf}']))}, "
                    f"VGG19 needs {shape}; is this a VGG19 (not VGG16/VGG19-BN) state_dict?"
                )
        w = np.asarray(arrays[f"{i}.weight"], np.float32)
        params[f"features_{i}"] = {
            "kernel": w.transpose(2, 3, 1, 0),  # [O, I, kh, kw] → [kh, kw, I, O]
            "bias": np.asarray(arrays[f"{i}.bias"], np.float32),
        }
    return {"params": params}


def load_torchvision(path: str | os.PathLike) -> dict:
    """Params from a torchvision VGG19 `.pth` state_dict file (needs torch)."""
    try:
        import torch
    except ImportError as err:
        raise ImportError(
            f"reading {path} needs torch; convert it once where torch is installed with "
            f"jaxunsup.vgg.save_npz(jaxunsup.vgg.load_vgg19(path), 'vgg19.npz') and pass the .npz"
        ) from err
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's message advises weights_only=False: unsafe, left out
        raise ValueError(
            f"cannot read {path} as a torch state_dict (damaged, or not a .pth of tensors);\n"
            f"{missing_hint()}"
        ) from err
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{path} holds a {type(state_dict).__name__}, not a state_dict")
    return params_from_state_dict(state_dict)


def save_npz(params: Mapping, path: str | os.PathLike) -> Path:
    """Writes params as an `.npz` (`features_0/kernel` …) that `load_vgg19` reads without torch."""
    from jaxunsup.files import atomic_write_bytes

    flat = {f"{layer}/{leaf}": np.asarray(v) for layer, d in params["params"].items()
            for leaf, v in d.items()}  # fmt: skip
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict:
    """Params from an `.npz` written by `save_npz`; checks every key and shape."""
    try:
        with np.load(path) as f:
            flat = {k: f[k] for k in f.files}
    except Exception as err:  # numpy's message may advise allow_pickle=True: left out
        raise ValueError(
            f"cannot read {path} as an .npz of VGG19 params (damaged, or another format);\n"
            f"{missing_hint()}"
        ) from err
    torch_layout = {}
    for key, value in flat.items():
        layer, _, leaf = key.partition("/")
        if not layer.startswith("features_") or leaf not in ("kernel", "bias"):
            raise ValueError(f"{path}: unexpected entry {key!r}; write it with vgg.save_npz")
        i = layer.removeprefix("features_")
        torch_layout[f"{i}.{'weight' if leaf == 'kernel' else 'bias'}"] = (
            value.transpose(3, 2, 0, 1) if leaf == "kernel" else value
        )
    return params_from_state_dict(torch_layout)


def load_vgg19(path: str | os.PathLike) -> dict:
    """VGG19 params from torchvision's `.pth` (needs torch) or a `save_npz` `.npz`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no VGG19 weights file {path};\n{missing_hint()}")
    return load_npz(path) if path.suffix == ".npz" else load_torchvision(path)
