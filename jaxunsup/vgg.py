"""VGG19's convolutional trunk (torchvision's `vgg19().features`) with every activation named.

Seed: `000_1926af310522df2b.txt` §6 uses `models.vgg19(pretrained=True).features.eval()` and
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
import jax.numpy as jnp
import numpy as np

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


_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DIMS
    )


@jax.custom_vjp
def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """torch's `Conv2d(k=3, padding=1)` without bias, NHWC, kernel [3, 3, I, O].

    Autodiff's input gradient is a convolution with the kernel flipped and its in/out axes
    swapped, which XLA folds into the convolution's dimension numbers; inside a `while_loop`
    (an L-BFGS run) XLA:CPU then falls back to a convolution several times slower. Here the
    flipped kernel is an array of its own, so the backward convolution is a plain one.
    """
    return _conv(x, kernel)


def _conv3x3_fwd(x, kernel):
    kernel_t = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)  # [3, 3, O, I]
    return _conv(x, kernel), (x, kernel, kernel_t)


def _conv3x3_bwd(res, g):
    x, kernel, kernel_t = res
    grad_kernel = jax.vjp(lambda k: _conv(x, k), kernel)[1](g)[0]  # dropped when unused
    return _conv(g, kernel_t), grad_kernel


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def _windows(x: jax.Array) -> jax.Array:
    """[B, H, W, C] → [B, H/2, W/2, C, 4]: each 2×2 window in row-major order (floor mode)."""
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    x = x.reshape(b, h // 2, 2, w // 2, 2, c)  # [B, H/2, 2, W/2, 2, C]
    return x.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // 2, w // 2, c, 4)


@jax.custom_vjp
def max_pool2x2(x: jax.Array) -> jax.Array:
    """torch's `MaxPool2d(2, 2)` on NHWC: floor mode (an odd last row/column is dropped) and
    torch's gradient, which goes to the first maximum of each window in row-major order.

    Ties are common here: clamped images have flat regions whose activations repeat exactly,
    and autodiff of a max would split the gradient between them. The windows come from a
    reshape, so forward and backward are elementwise (much faster on CPU than `nn.max_pool`).
    """
    return jnp.max(_windows(x), axis=-1)


def _max_pool_fwd(x):
    win = _windows(x)
    return jnp.max(win, axis=-1), (jnp.argmax(win, axis=-1), x.shape)


def _max_pool_bwd(res, g):
    first, (b, h, w, c) = res
    grad = jax.nn.one_hot(first, 4, dtype=g.dtype) * g[..., None]  # [B, H/2, W/2, C, 4]
    grad = grad.reshape(b, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    grad = grad.reshape(b, h // 2 * 2, w // 2 * 2, c)  # [B, H', W', C]
    return (jnp.pad(grad, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


class Conv3x3(nn.Module):
    """`nn.Conv(features, (3, 3), padding=1)`'s params (`kernel`, `bias`), torchvision's init."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # torchvision's
        kernel = self.param("kernel", init, (3, 3, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        y = conv3x3(x, kernel.astype(x.dtype))
        return y + bias.astype(x.dtype).reshape(1, 1, 1, -1)


class VGG19(nn.Module):
    """`torchvision.models.vgg19().features[:depth]`; returns every layer's output, in order."""

    depth: int = NUM_LAYERS

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:  # x: [B, H, W, 3], normalised
        outs = []
        for i, (kind, channels) in enumerate(LAYERS[: self.depth]):
            if kind == "conv":
                x = Conv3x3(channels, name=f"features_{i}")(x)
            elif kind == "relu":
                x = nn.relu(x)
            else:
                x = max_pool2x2(x)
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


def features(params: Mapping, images: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
    """The activations of `layers` (names) for normalised NHWC `images` [B, H, W, 3]."""
    outs = VGG19(depth_for(layers)).apply(params, images)
    return {name: outs[layer_index(name)] for name in layers}


def truncate(params: Mapping, layers: Sequence[str]) -> dict:
    """Only the convolutions `layers` need (smaller to move to a device and to close over)."""
    depth = depth_for(layers)
    inner = params["params"]
    return {"params": {k: v for k, v in inner.items() if int(k.split("_")[1]) < depth}}


def _missing_hint() -> str:
    return (
        f"torchvision keeps the ImageNet weights at "
        f"$TORCH_HOME/hub/checkpoints/{TORCHVISION_FILE} (TORCH_HOME defaults to ~/.cache/torch; "
        f"`torchvision.models.vgg19(weights='IMAGENET1K_V1')` downloads them there, or fetch "
        f"{TORCHVISION_URL}); pass the file (or an .npz made by jaxunsup.vgg.save_npz) as "
        f"--vgg-weights PATH"
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
            raise FileNotFoundError(f"no VGG19 weights file {p}; {_missing_hint()}")
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
    except Exception as err:  # a corrupt or non-torch file
        raise ValueError(
            f"cannot read {path} as a torch state_dict ({err}); {_missing_hint()}"
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
    except Exception as err:
        raise ValueError(f"cannot read {path} as an .npz of VGG19 params ({err})") from err
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
        raise FileNotFoundError(f"no VGG19 weights file {path}; {_missing_hint()}")
    return load_npz(path) if path.suffix == ".npz" else load_torchvision(path)
