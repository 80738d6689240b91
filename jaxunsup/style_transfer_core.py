"""Style transfer's pure part: ImageNet normalisation, gram matrices, the content and style
losses, and the three optimiser loops, each one compiled call (`RUNNERS`).

Optimisers (`optimizer`):
- "torch-lbfgs" (default): `jaxunsup.lbfgs`, torch's L-BFGS restated, the post's loop, clamp and
  all, as one compiled call. The post's loop (`while iteration <= 300`) starts one more outer
  step after the 300th evaluation, so it makes 320 evaluations; so does ours.
- "optax-lbfgs": `optax.lbfgs` with its zoom line search and `history_size` memory, in one
  `while_loop`; the clamp is applied after every step and, straight-through, before every
  evaluation (value at the clamped point, gradient passed through unmasked), which is the
  post's clamp-then-evaluate. Runs until `steps` evaluations are used.
- "adam": Adam(`adam_lr`) with the same clamp, one evaluation per step, for comparison.

`jaxunsup.style_transfer` checks the inputs and calls these; `Config` is its Config.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxunsup import lbfgs, vgg

if TYPE_CHECKING:
    from jaxunsup.style_transfer import Config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def clamp01(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 1.0)


def _straight_through_clamp(x: jax.Array) -> jax.Array:
    """Value clamp(x), gradient passed through: evaluating here is the post's clamp-then-call."""
    return x + lax.stop_gradient(clamp01(x) - x)


def closure(image, vgg_params, targets, seed_compat, *, cfg: Config):
    """The post's closure at the (already clamped) image: value, gradient, style/content.
    `seed_compat` (traced, so both settings share one program) returns the post's value."""
    (loss, parts), grad = jax.value_and_grad(loss_fn, has_aux=True)(image, vgg_params, targets, cfg)
    value = jnp.where(seed_compat, parts["style"] + parts["content"], loss)  # the post's bug
    return value, grad, {"loss": loss, **parts}


@functools.partial(jax.jit, static_argnames="cfg")
def run_torch_lbfgs(image0, vgg_params, targets, seed_compat, cfg: Config):
    config = lbfgs.LBFGSConfig(
        lr=cfg.lr, history_size=cfg.history_size,
        line_search_fn="strong_wolfe" if cfg.line_search else None,
    )  # fmt: skip
    res = lbfgs.minimize(
        functools.partial(closure, cfg=cfg), image0, vgg_params, targets, seed_compat,
        config=config,
        max_evals=cfg.steps + 1, projection=clamp01,  # the post's `while iteration <= steps`
    )  # fmt: skip
    evals = jnp.arange(1, res.values.shape[0] + 1)
    hist = {"evals": evals, "value": res.values, **res.aux}
    return clamp01(res.x), res.num_evals, res.num_evals, hist, res.nonfinite


def _records(n: int, dtype) -> dict:
    nan = jnp.full((n,), jnp.nan, dtype)
    return {"evals": jnp.zeros((n,), jnp.int32), "loss": nan, "style": nan, "content": nan}


@functools.partial(jax.jit, static_argnames="cfg")
def run_optax_lbfgs(image0, vgg_params, targets, seed_compat, cfg: Config):
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
        x = clamp01(optax.apply_updates(x, updates))
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
def run_adam(image0, vgg_params, targets, seed_compat, cfg: Config):
    del seed_compat  # Adam ignores the value
    opt = optax.adam(cfg.adam_lr)

    def step(carry, _):
        x, state = carry
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, parts), grad = grad_fn(x, vgg_params, targets, cfg)
        updates, state = opt.update(grad, state, x)
        return (clamp01(optax.apply_updates(x, updates)), state), {"loss": loss, **parts}

    (x, _), hist = lax.scan(step, (image0, opt.init(image0)), length=cfg.steps)
    hist["evals"] = jnp.arange(1, cfg.steps + 1)
    n = jnp.asarray(cfg.steps)
    return x, n, n, hist, ~jnp.all(jnp.isfinite(hist["loss"]))


RUNNERS = {"torch-lbfgs": run_torch_lbfgs, "optax-lbfgs": run_optax_lbfgs, "adam": run_adam}
