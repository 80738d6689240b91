"""Neural style transfer of post 000 §6 — experiment `style-transfer`, command `style-transfer`.

Seed: `000_1926af310522df2b.txt` §6 ("이미지 스타일 변이"), after Gatys et al. (2016). The image
itself is optimised: it starts as the content image; VGG19's `features` (torchvision, eval) see
it after ImageNet normalisation; the content loss is the MSE between its `conv_4` activations
and the content image's; the style loss sums, over `conv_1` … `conv_5`, the MSE between gram
matrices G = F·Fᵀ / (a·b·c·d) of its activations and the style image's; the loss is
1e5 · style + 1 · content; `optim.LBFGS([img])` with torch's defaults runs while at most 300
closure calls were made, each call clamping the image to [0, 1] in place first. Both images are
256×256. The post prints at evaluation 300: style 0.000018, content 27.525640.

Optimisers (`optimizer`):
- "torch-lbfgs" (default): `jaxunsup.lbfgs`, torch's L-BFGS restated, the post's loop, clamp and
  all, as one compiled call. The post's loop (`while iteration <= 300`) starts one more outer
  step after the 300th evaluation, so it makes 320 evaluations; so does ours.
- "optax-lbfgs": `optax.lbfgs` with its zoom line search and `history_size` memory, in one
  `while_loop`; the clamp is applied after every step and, straight-through, before every
  evaluation (value at the clamped point, gradient passed through unmasked), which is the
  post's clamp-then-evaluate. Runs until `steps` evaluations are used.
- "adam": Adam(`adam_lr`) with the same clamp, one evaluation per step, for comparison.

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

Run: `jaxunsup run style-transfer --workdir runs/style --vgg-weights PATH`, or
`jaxunsup style-transfer --content A --style B [--vgg-weights PATH] --out C.png`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import sys
import time
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxunsup import layers, lbfgs, vgg
from jaxunsup.files import check_output_file, prepare_workdir, user_message, write_json

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
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


@dataclasses.dataclass(frozen=True)
class Config:
    """Post 000 §6; defaults are the post's settings."""

    content: str = "china"  # a sample name ("china", "flower") or an image file
    style: str = "flower"
    size: int = 256
    steps: int = 300  # closure evaluations (the post's num_steps)
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
    seed_compat: bool = False
    vgg_weights: str | None = None  # torchvision .pth or a converted .npz; None → look
    random_vgg: bool = False
    seed: int = 0
    log_every: int = 50
    # XLA's convolutions everywhere: inside the L-BFGS loop on CPU the matmul form's im2col of
    # VGG's 64-channel maps is slower than XLA's (benchmarks/README.md); "auto" is matmul on CPU
    conv_impl: layers.ConvImpl = "xla"


class StylizeResult(NamedTuple):
    image: np.ndarray  # [H, W, 3] in [0, 1]
    history: dict  # per evaluation (or iteration): "evals", "loss", "style", "content"
    log: list  # every `log_every` evaluations: {"evaluation", "style", "content", "loss"}


def normalize(images: jax.Array) -> jax.Array:
    """The post's `Normalization`: (img − mean) / std per channel, NHWC."""
    mean = jnp.asarray(IMAGENET_MEAN, images.dtype).reshape(1, 1, 1, 3)
    std = jnp.asarray(IMAGENET_STD, images.dtype).reshape(1, 1, 1, 3)
    return (images - mean) / std


def gram_matrix(feats: jax.Array) -> jax.Array:
    """The post's gram: F·Fᵀ / (a·b·c·d) with F the [a·b, c·d] view of NCHW features."""
    a, h, w, c = feats.shape
    f = jnp.transpose(feats, (0, 3, 1, 2)).reshape(a * c, h * w)  # [B·C, H·W]
    return (f @ f.T) / (a * c * h * w)  # [B·C, B·C]


class Targets(NamedTuple):
    content: dict  # layer → the content image's activations
    style: dict  # layer → the style image's gram matrix


def compute_targets(vgg_params, content: jax.Array, style: jax.Array, cfg: Config) -> Targets:
    """Targets from NHWC `content` and `style` [1, H, W, 3] (the post's `target.detach()`)."""
    fc = vgg.features(vgg_params, normalize(content), cfg.content_layers, cfg.conv_impl)
    fs = vgg.features(vgg_params, normalize(style), cfg.style_layers, cfg.conv_impl)
    return Targets(fc, {k: gram_matrix(v) for k, v in fs.items()})


def _weighted_sum(layers: tuple[str, ...], weights: tuple[float, ...], term) -> jax.Array:
    weights = weights if weights else (1.0,) * len(layers)
    return sum((w * term(n) for n, w in zip(layers, weights, strict=True)), jnp.zeros(()))


def loss_fn(image: jax.Array, vgg_params, targets: Targets, cfg: Config):
    """style_weight · Σ MSE(gram) + content_weight · Σ MSE(features) for `image` [1, H, W, 3].

    Returns `(loss, {"style": …, "content": …})`: the unweighted sums the post prints.
    """
    layers = tuple(dict.fromkeys(cfg.content_layers + cfg.style_layers))
    feats = vgg.features(vgg_params, normalize(image), layers, cfg.conv_impl)

    def content_term(n):
        return jnp.mean((feats[n] - targets.content[n]) ** 2)

    def style_term(n):
        return jnp.mean((gram_matrix(feats[n]) - targets.style[n]) ** 2)

    content = _weighted_sum(cfg.content_layers, cfg.content_layer_weights, content_term)
    style = _weighted_sum(cfg.style_layers, cfg.style_layer_weights, style_term)
    content, style = content.astype(image.dtype), style.astype(image.dtype)
    loss = cfg.style_weight * style + cfg.content_weight * content
    return loss, {"style": style, "content": content}


def _clamp01(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 1.0)


def _straight_through_clamp(x: jax.Array) -> jax.Array:
    """Value clamp(x), gradient passed through: evaluating here is the post's clamp-then-call."""
    return x + lax.stop_gradient(_clamp01(x) - x)


def _closure(image, vgg_params, targets, seed_compat, *, cfg: Config):
    """The post's closure at the (already clamped) image: value, gradient, style/content.
    `seed_compat` (traced, so both settings share one program) returns the post's value."""
    (loss, parts), grad = jax.value_and_grad(loss_fn, has_aux=True)(image, vgg_params, targets, cfg)
    value = jnp.where(seed_compat, parts["style"] + parts["content"], loss)  # the post's bug
    return value, grad, {"loss": loss, **parts}


@functools.partial(jax.jit, static_argnames="cfg")
def _run_torch_lbfgs(image0, vgg_params, targets, seed_compat, cfg: Config):
    config = lbfgs.LBFGSConfig(
        lr=cfg.lr, history_size=cfg.history_size,
        line_search_fn="strong_wolfe" if cfg.line_search else None,
    )  # fmt: skip
    res = lbfgs.minimize(
        functools.partial(_closure, cfg=cfg), image0, vgg_params, targets, seed_compat,
        config=config,
        max_evals=cfg.steps + 1, projection=_clamp01,  # the post's `while iteration <= steps`
    )  # fmt: skip
    evals = jnp.arange(1, res.values.shape[0] + 1)
    hist = {"evals": evals, "value": res.values, **res.aux}
    return _clamp01(res.x), res.num_evals, res.num_evals, hist, res.nonfinite


def _records(n: int, dtype) -> dict:
    nan = jnp.full((n,), jnp.nan, dtype)
    return {"evals": jnp.zeros((n,), jnp.int32), "loss": nan, "style": nan, "content": nan}


@functools.partial(jax.jit, static_argnames="cfg")
def _run_optax_lbfgs(image0, vgg_params, targets, seed_compat, cfg: Config):
    del seed_compat  # optax's line search uses the loss it differentiates

    def value_fn(x):
        return loss_fn(_straight_through_clamp(x), vgg_params, targets, cfg)[0]

    def parts_at(x):
        return loss_fn(x, vgg_params, targets, cfg)[1]

    def no_parts(x):
        return {"style": jnp.full((), jnp.nan, x.dtype), "content": jnp.full((), jnp.nan, x.dtype)}

    opt = optax.lbfgs(memory_size=cfg.history_size)
    (value, parts), grad = jax.value_and_grad(loss_fn, has_aux=True)(
        image0, vgg_params, targets, cfg
    )
    rec = _records(cfg.steps, image0.dtype)  # ≥ 1 evaluation per iteration
    row = {"evals": 1, "loss": value, **parts}
    rec = {k: rec[k].at[0].set(row[k]) for k in rec}

    def cond(c):
        x, value, grad, state, evals, i, rec = c
        return (evals < cfg.steps) & (i < cfg.steps) & jnp.isfinite(value)

    def body(c):
        x, value, grad, state, evals, i, rec = c
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=value_fn)
        x = _clamp01(optax.apply_updates(x, updates))
        value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
        new_evals = evals + optax.tree.get(state, "num_linesearch_steps").astype(evals.dtype)
        crossed = new_evals // cfg.log_every > evals // cfg.log_every
        parts = lax.cond(crossed, parts_at, no_parts, x)  # style/content at the log points
        row = {"evals": new_evals, "loss": value, **parts}
        rec = {k: rec[k].at[i].set(row[k]) for k in rec}
        return x, value, grad, state, new_evals, i + 1, rec

    c = (image0, value, grad, opt.init(image0), jnp.asarray(1, jnp.int32), jnp.asarray(1), rec)
    x, value, _, _, evals, i, rec = lax.while_loop(cond, body, c)
    return x, evals, i, rec, ~jnp.isfinite(value)


@functools.partial(jax.jit, static_argnames="cfg")
def _run_adam(image0, vgg_params, targets, seed_compat, cfg: Config):
    del seed_compat  # Adam ignores the value
    opt = optax.adam(cfg.adam_lr)

    def step(carry, _):
        x, state = carry
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, parts), grad = grad_fn(x, vgg_params, targets, cfg)
        updates, state = opt.update(grad, state, x)
        return (_clamp01(optax.apply_updates(x, updates)), state), {"loss": loss, **parts}

    (x, _), hist = lax.scan(step, (image0, opt.init(image0)), length=cfg.steps)
    hist["evals"] = jnp.arange(1, cfg.steps + 1)
    n = jnp.asarray(cfg.steps)
    return x, n, n, hist, ~jnp.all(jnp.isfinite(hist["loss"]))


_RUNNERS = {"torch-lbfgs": _run_torch_lbfgs, "optax-lbfgs": _run_optax_lbfgs, "adam": _run_adam}
_targets = jax.jit(compute_targets, static_argnames="cfg")


def validate_config(cfg: Config) -> None:
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
    validate_config(cfg)
    c = jnp.asarray(_check_image("content", content, min_side(cfg))[None])  # [1, H, W, 3]
    s = jnp.asarray(_check_image("style", style, min_side(cfg))[None])
    params = _check_params(vgg_params, cfg)
    # the fields that only choose inputs stay out of the compiled functions' cache keys
    static = dataclasses.replace(cfg, content="", style="", size=1, vgg_weights=None,
                                 random_vgg=False, seed=0, seed_compat=False)  # fmt: skip
    targets = _targets(params, c, s, static)
    runner = _RUNNERS[cfg.optimizer]
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
            f"{vgg._missing_hint()}, or --random-vgg for random ones (a texture-only result)"
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
    from jaxunsup.training import _write_history

    validate_config(cfg)
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


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `jaxunsup style-transfer`."""
    d = Config()
    add = parser.add_argument
    add("--content", default=d.content, help="content image file or sample name (china, flower)")
    add("--style", default=d.style, help="style image file or sample name")
    add("--vgg-weights", default=None, help=f"torchvision {vgg.TORCHVISION_FILE} or a .npz")
    add("--random-vgg", action="store_true", help="random VGG19 weights (texture-only result)")
    add("--size", type=int, default=d.size, help="both images are resized to SIZE×SIZE")
    add("--steps", type=int, default=d.steps, help="closure evaluations (the post's 300)")
    add("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    add("--style-weight", type=float, default=d.style_weight)
    add("--content-weight", type=float, default=d.content_weight)
    add("--conv-impl", choices=layers.IMPLS, default=d.conv_impl,
        help="convolutions: XLA's, the matmul form, or auto (matmul on CPU only)")  # fmt: skip
    add(
        "--seed-compat",
        action="store_true",
        help="closure returns the unweighted loss, as the post",
    )
    add("--out", type=Path, default=Path("stylized.png"), help="where to write the result PNG")
    add("--save-vgg-npz", type=Path, default=None,
        help="also write the converted VGG19 weights as .npz (usable without torch)")  # fmt: skip


def cli_command(args: argparse.Namespace) -> int:
    """Runs `jaxunsup style-transfer` from parsed arguments; returns the exit status."""
    from jaxunsup import data as data_lib
    from jaxunsup import plots

    try:
        cfg = Config(
            content=args.content, style=args.style, size=args.size, steps=args.steps,
            optimizer=args.optimizer, style_weight=args.style_weight,
            content_weight=args.content_weight, seed_compat=args.seed_compat,
            vgg_weights=args.vgg_weights, random_vgg=args.random_vgg,
            conv_impl=args.conv_impl,
        )  # fmt: skip
        validate_config(cfg)
        check_output_file(args.out, "--out")
        if args.save_vgg_npz is not None:
            check_output_file(args.save_vgg_npz, "--save-vgg-npz")
            if cfg.random_vgg or vgg.find_weights(cfg.vgg_weights) is None:
                raise ValueError("--save-vgg-npz needs pretrained weights (--vgg-weights PATH)")
            full = vgg.load_vgg19(vgg.find_weights(cfg.vgg_weights))
            print(f"wrote {vgg.save_npz(full, args.save_vgg_npz)}")
        params, label = load_vgg_params(cfg)
        content = data_lib.load_image(cfg.content, cfg.size)
        style = data_lib.load_image(cfg.style, cfg.size)
        print(f"{cfg.optimizer}, {cfg.steps} evaluations at {cfg.size}×{cfg.size}; {label}")
        result = stylize(content, style, params, cfg)
        print(f"wrote {plots.save_image(args.out, result.image)}")
        return 0
    except (ValueError, OSError, ImportError) as err:  # FileNotFoundError is an OSError
        print(f"jaxunsup style-transfer: error: {user_message(err)}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"jaxunsup style-transfer: stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jaxunsup style-transfer: interrupted; no image written", file=sys.stderr)
        return 130


def main_style_transfer(argv: list[str] | None = None) -> int:
    """`jaxunsup style-transfer --content A --style B [--vgg-weights PATH] --out C.png`."""
    parser = argparse.ArgumentParser(
        prog="jaxunsup style-transfer", description="Neural style transfer (post 000 §6)."
    )
    add_cli_arguments(parser)
    return cli_command(parser.parse_args(argv))
