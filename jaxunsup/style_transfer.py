"""Neural style transfer of post 000 §6 — experiment `style-transfer`, command `style-transfer`.

Seed: post 000 §6 ("이미지 스타일 변이"), after Gatys et al. (2016). The image
itself is optimised: it starts as the content image; VGG19's `features` (torchvision, eval) see
it after ImageNet normalisation; the content loss is the MSE between its `conv_4` activations
and the content image's; the style loss sums, over `conv_1` … `conv_5`, the MSE between gram
matrices G = F·Fᵀ / (a·b·c·d) of its activations and the style image's; the loss is
1e5 · style + 1 · content; `optim.LBFGS([img])` with torch's defaults runs while at most 300
closure calls were made, each call clamping the image to [0, 1] in place first. Both images are
256×256. The post prints at evaluation 300: style 0.000018, content 27.525640.

Deviations:
- The post's closure back-propagates the weighted loss but returns the unweighted
  style + content to L-BFGS (which only uses it for its `tolerance_change` test). By default
  the closure returns the loss it differentiates; `seed_compat=True` replays the post.
- The post's images were its own photos; the default here is scikit-learn's sample photos
  (china.jpg as content, flower.jpg as style), so its printed losses are a reference only.
- Without pretrained VGG19 weights the experiment refuses, unless `random_vgg=True`: random
  (torchvision-init) weights give a texture-only result, labelled as such in results.json.
- A run is one compiled call, so the post's "Iteration 50: …" lines are printed when it returns,
  not while it runs (same numbers). optax-lbfgs logs at the first iterate past each multiple of
  `log_every`, its line search counting evaluations in bursts.

The loss and the optimiser loops (torch-lbfgs, optax-lbfgs, adam) are in
`style_transfer_core.py`; this module holds the Config, the checks, `stylize`, `run` and the
`style-transfer` command.

Run: `jaxunsup run style-transfer --workdir runs/style --vgg-weights PATH`, or
`jaxunsup style-transfer --content A --style B [--vgg-weights PATH] --out C.png` (its flags
are the Config's fields plus `--out` and `--save-vgg-npz`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import layers, vgg
from jaxunsup.files import check_output_file, prepare_workdir, write_json
from jaxunsup.style_transfer_core import IMAGENET_MEAN as IMAGENET_MEAN
from jaxunsup.style_transfer_core import IMAGENET_STD as IMAGENET_STD
from jaxunsup.style_transfer_core import RUNNERS as RUNNERS
from jaxunsup.style_transfer_core import Targets as Targets
from jaxunsup.style_transfer_core import compute_targets as compute_targets
from jaxunsup.style_transfer_core import gram_matrix as gram_matrix
from jaxunsup.style_transfer_core import loss_fn as loss_fn
from jaxunsup.style_transfer_core import normalize as normalize

# The post's log, evaluation → (style, content), VGG19 ImageNet weights, its own 256×256 photos.
SEED_LOG = {
    50: (0.000169, 50.467072),
    100: (0.000041, 38.233650),
    150: (0.000028, 32.563766),
    200: (0.000022, 29.903051),
    250: (0.000019, 28.473398),
    300: (0.000018, 27.525640),
}
OPTIMIZERS = ("torch-lbfgs", "optax-lbfgs", "adam")
# `reproduce --quick`: 64×64, the post's 300 evaluations; random weights when none are found.
QUICK = {"size": 64, "random_vgg": vgg.find_weights() is None}


def _help(default, text: str):
    """A Config field with a default and the help line of its CLI flag."""
    return dataclasses.field(default=default, metadata={"help": text})


@dataclasses.dataclass(frozen=True)
class Config:
    """Post 000 §6; defaults are the post's settings."""

    content: str = _help("china", "content image file or sample name (china, flower)")
    style: str = _help("flower", "style image file or sample name")
    size: int = _help(256, "both images are resized to SIZE×SIZE")
    steps: int = _help(300, "closure evaluations (the post's num_steps)")
    optimizer: Literal["torch-lbfgs", "optax-lbfgs", "adam"] = "torch-lbfgs"
    style_weight: float = 1e5
    content_weight: float = 1.0
    content_layers: tuple[str, ...] = ("conv_4",)
    style_layers: tuple[str, ...] = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")
    content_layer_weights: tuple[float, ...] = ()  # () → 1 for every layer
    style_layer_weights: tuple[float, ...] = ()
    lr: float = 1.0  # torch's LBFGS lr
    history_size: int = 100  # torch's LBFGS history (also optax-lbfgs's memory)
    line_search: bool = False  # torch-lbfgs with line_search_fn="strong_wolfe"
    adam_lr: float = 0.02
    seed_compat: bool = _help(False, "the closure returns the unweighted loss, as the post's")
    vgg_weights: str | None = _help(None, f"torchvision {vgg.TORCHVISION_FILE} or an .npz")
    random_vgg: bool = _help(False, "random VGG19 weights (a texture-only result)")
    seed: int = 0
    log_every: int = 50
    # XLA's convolutions everywhere, on a CPU too: there the matmul form's im2col of VGG's
    # 64-channel maps is the slower one inside the L-BFGS loop (benchmarks/README.md)
    conv_impl: layers.ConvImpl = _help("xla", "XLA's, the matmul form, or auto (matmul on CPU)")


class StylizeResult(NamedTuple):
    image: np.ndarray  # [H, W, 3] in [0, 1]
    history: dict  # per evaluation (or iteration): "evals", "loss", "style", "content"
    log: list  # every `log_every` evaluations: {"evaluation", "style", "content", "loss"}


_targets = jax.jit(compute_targets, static_argnames="cfg")


def check_config(cfg: Config) -> None:
    """Raises ValueError naming the field for settings that cannot work."""
    from jaxunsup.training import check_positive

    for name in ("size", "steps", "history_size", "log_every"):
        check_positive(name, getattr(cfg, name), integer=True)
    for name in ("lr", "adam_lr"):
        check_positive(name, getattr(cfg, name))
    for name in ("style_weight", "content_weight"):
        value = getattr(cfg, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {cfg.optimizer!r}")
    if cfg.random_vgg and cfg.vgg_weights:  # the quick preset sets random_vgg without weights
        raise ValueError(
            f"vgg_weights {cfg.vgg_weights} would be ignored with random_vgg on; "
            "pass --no-random-vgg to load them, or drop --vgg-weights"
        )
    if not cfg.content_layers and not cfg.style_layers:
        raise ValueError("content_layers and style_layers are both empty; name some VGG layers")
    for kind in ("content", "style"):
        layers, weights = getattr(cfg, f"{kind}_layers"), getattr(cfg, f"{kind}_layer_weights")
        for name in layers:
            vgg.layer_index(name)
        if weights and len(weights) != len(layers):
            raise ValueError(
                f"{kind}_layer_weights has {len(weights)} values for {len(layers)} "
                f"{kind}_layers; give one per layer or none"
            )
        if any(not (math.isfinite(w) and w >= 0) for w in weights):
            raise ValueError(f"{kind}_layer_weights must be finite and >= 0, got {weights}")
    if cfg.size < min_side(cfg):
        raise ValueError(f"size must be >= {min_side(cfg)} for these layers, got {cfg.size}")


def min_side(cfg: Config) -> int:
    """The smallest image side whose deepest requested layer keeps a pixel: 2^(poolings up
    to it); below it that layer's Gram matrix is of nothing and the loss NaN."""
    deepest = max(vgg.layer_index(n) for n in cfg.content_layers + cfg.style_layers)
    return 2 ** sum(kind == "pool" for kind, _ in vgg.LAYERS[: deepest + 1])


def _check_image(name: str, image, side: int = 1) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be an RGB image [H, W, 3], got shape {arr.shape}")
    if min(arr.shape[:2]) < side or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(
            f"{name} must be a numeric image of side >= {side} (the deepest layer's pooling), "
            f"got {arr.dtype} {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; pass an image with values in [0, 1]")
    return arr if arr.dtype == np.float64 else arr.astype(np.float32)  # float64 kept (x64 runs)


def _check_params(vgg_params, cfg: Config) -> dict:
    depth = vgg.depth_for(cfg.content_layers + cfg.style_layers)
    inner = vgg_params.get("params", {}) if hasattr(vgg_params, "get") else {}
    missing = [
        f"features_{i}" for i in vgg.CONV_INDICES if i < depth and f"features_{i}" not in inner
    ]
    if missing:
        raise ValueError(f"vgg_params lack {missing}; load them with vgg.load_vgg19 or init_vgg19")
    return jax.tree.map(
        jnp.asarray, vgg.truncate(vgg_params, cfg.content_layers + cfg.style_layers)
    )


def _log_rows(history: dict, cfg: Config) -> list[dict]:
    """The post's print: style and content every `log_every` evaluations."""
    rows = []
    for i, k in enumerate(history["evals"]):
        due = k % cfg.log_every == 0 if cfg.optimizer != "optax-lbfgs" else k > 1
        if due and np.isfinite(history["style"][i]):
            rows.append({"evaluation": int(k), "style": float(history["style"][i]),
                         "content": float(history["content"][i]),
                         "loss": float(history["loss"][i])})  # fmt: skip
    return rows


def stylize(content, style, vgg_params, cfg: Config | None = None, *, verbose: bool = True,
            **overrides) -> StylizeResult:  # fmt: skip
    """Optimises an image that starts as `content` towards `style`'s textures.

    Args:
      content, style: RGB images [H, W, 3] in [0, 1] (sizes may differ); float32, or float64
        under `jax.enable_x64(True)`.
      vgg_params: VGG19 params (`vgg.load_vgg19`, or `vgg.init_vgg19` for random weights).
      cfg: the settings (defaults: the post's); `overrides` replace fields of it, e.g.
        `optimizer="optax-lbfgs"`, `steps=100`.
      verbose: print style and content every `log_every` evaluations, as the post does.

    Returns:
      `StylizeResult(image [H, W, 3] in [0, 1], history, log)`.

    Raises:
      ValueError: bad settings or images (before anything is compiled).
      TrainingDiverged: the loss became NaN or infinite.
    """
    from jaxunsup.training import TrainingDiverged

    cfg = dataclasses.replace(cfg or Config(), **overrides)
    check_config(cfg)
    c = jnp.asarray(_check_image("content", content, min_side(cfg))[None])  # [1, H, W, 3]
    s = jnp.asarray(_check_image("style", style, min_side(cfg))[None])
    params = _check_params(vgg_params, cfg)
    # the fields that only choose inputs stay out of the compiled functions' cache keys
    static = dataclasses.replace(cfg, content="", style="", size=1, vgg_weights=None,
                                 random_vgg=False, seed=0, seed_compat=False)  # fmt: skip
    targets = _targets(params, c, s, static)
    runner = RUNNERS[cfg.optimizer]
    image, num_evals, n, hist, nonfinite = runner(c, params, targets, cfg.seed_compat, static)
    n = int(n)
    history = {k: np.asarray(v)[:n] for k, v in hist.items()}
    if bool(nonfinite):
        raise TrainingDiverged(
            f"style transfer: the loss became NaN or infinite after {int(num_evals)} "
            f"evaluations; lower lr / style_weight or check the images"
        )
    log = _log_rows(history, cfg)
    if verbose:
        for r in log:
            print(f"Iteration {r['evaluation']}: Style Loss : {r['style']:4f} "
                  f"Content Loss: {r['content']:4f}")  # fmt: skip
    return StylizeResult(np.asarray(image[0]), history, log)


def load_vgg_params(cfg: Config) -> tuple[dict, str]:
    """VGG19 params for `cfg` and a label for the report: torchvision weights (from
    `vgg_weights` or the default places), or random ones only with `random_vgg=True`."""
    layers = cfg.content_layers + cfg.style_layers
    if cfg.random_vgg:
        params = vgg.init_vgg19(cfg.seed, layers)
        return params, "random VGG19 weights (texture-only result, no pretrained weights used)"
    path = vgg.find_weights(cfg.vgg_weights)
    if path is None:
        places = ", ".join(str(p) for p in vgg.default_weight_paths())
        raise FileNotFoundError(
            f"no pretrained VGG19 weights found (looked in {places});\n"
            f"{vgg.missing_hint()}, or --random-vgg for random ones (a texture-only result)"
        )
    return vgg.truncate(vgg.load_vgg19(path), layers), f"torchvision VGG19 weights ({path})"


def _table(log: list[dict], weights_label: str, cfg: Config) -> list[dict]:
    at = 300 if any(r["evaluation"] == 300 for r in log) else (log[-1]["evaluation"] if log else 0)
    row = next((r for r in log if r["evaluation"] == at), None)
    seed = SEED_LOG.get(at, (None, None))
    note = f"{cfg.content}/{cfg.style} {cfg.size}px, {weights_label.split(' (')[0]}"
    return [
        {"metric": f"style loss at evaluation {at} ({note})",
         "ours": row and row["style"], "seed": seed[0]},
        {"metric": f"content loss at evaluation {at} ({note})",
         "ours": row and row["content"], "seed": seed[1]},
    ]  # fmt: skip


def run(cfg: Config, workdir: str | os.PathLike, data=None) -> dict:
    """Stylises `cfg.content` with `cfg.style`; writes config.json, metrics.jsonl (the log),
    result.png, side_by_side.png (content, style, result), losses.png and results.json.

    `data`: optional `(content, style)` images [H, W, 3] instead of loading `cfg`'s."""
    from jaxunsup import data as data_lib
    from jaxunsup import plots
    from jaxunsup.files import write_jsonl as _write_history

    check_config(cfg)
    if data is None:
        data = (
            data_lib.load_image(cfg.content, cfg.size),
            data_lib.load_image(cfg.style, cfg.size),
        )
    content, style = (_check_image(n, im) for n, im in zip(("content", "style"), data, strict=True))
    params, weights_label = load_vgg_params(cfg)
    workdir = prepare_workdir(workdir, cfg)
    start = time.perf_counter()
    result = stylize(content, style, params, cfg)
    seconds = time.perf_counter() - start
    _write_history(workdir / "metrics.jsonl", result.log)
    h = result.history
    figures = [plots.save_image(workdir / "result.png", result.image).name]
    if content.shape == style.shape:
        trio = np.stack([content, style, result.image])  # [3, H, W, 3]
        plots.save_grid(workdir / "side_by_side.png", trio, nrow=3)
        figures.append("side_by_side.png")
    curves = {f"style × {cfg.style_weight:g}": (h["evals"], cfg.style_weight * h["style"]),
              "content": (h["evals"], h["content"]), "total": (h["evals"], h["loss"])}  # fmt: skip
    curves = {k: (x[np.isfinite(y)], y[np.isfinite(y)]) for k, (x, y) in curves.items()}
    figures.append(plots.save_loss_curves(workdir / "losses.png", curves,
                                          xlabel="closure evaluation", logy=True).name)  # fmt: skip
    results = {
        "experiment": "style-transfer",
        "data": f"content {cfg.content}, style {cfg.style}, {content.shape[0]}×{content.shape[1]}",
        "vgg": weights_label,
        "random_vgg": cfg.random_vgg,
        "optimizer": cfg.optimizer,
        "evaluations": int(h["evals"][-1]) if len(h["evals"]) else 0,
        "seconds": round(seconds, 2),
        "log": result.log,
        "seed_log": [
            {"evaluation": k, "style": v[0], "content": v[1]} for k, v in SEED_LOG.items()
        ],
        "figures": figures,
        "table": _table(result.log, weights_label, cfg),
    }
    write_json(Path(workdir) / "results.json", results)
    return results


def stylize_to_file(cfg: Config, out: str | os.PathLike, save_vgg_npz=None) -> Path:
    """`jaxunsup style-transfer`: stylises `cfg.content` with `cfg.style` into the PNG `out`.

    With `save_vgg_npz`, first writes the pretrained VGG19 weights as an .npz (usable without
    torch). Raises ValueError / OSError for bad settings, files or paths before any compile,
    TrainingDiverged if the loss stops being finite.
    """
    from jaxunsup import data as data_lib
    from jaxunsup import plots

    check_config(cfg)
    check_output_file(out, "--out")
    if save_vgg_npz is not None:
        check_output_file(save_vgg_npz, "--save-vgg-npz")
        if cfg.random_vgg or vgg.find_weights(cfg.vgg_weights) is None:
            raise ValueError("--save-vgg-npz needs pretrained weights (--vgg-weights PATH)")
        full = vgg.load_vgg19(vgg.find_weights(cfg.vgg_weights))
        print(f"wrote {vgg.save_npz(full, save_vgg_npz)}")
    params, label = load_vgg_params(cfg)
    content = data_lib.load_image(cfg.content, cfg.size)
    style = data_lib.load_image(cfg.style, cfg.size)
    print(f"{cfg.optimizer}, {cfg.steps} evaluations at {cfg.size}×{cfg.size}; {label}")
    result = stylize(content, style, params, cfg)
    path = plots.save_image(out, result.image)
    print(f"wrote {path}")
    return path
