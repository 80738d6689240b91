"""Post 002 §3.2 — image restoration by gradient descent, experiment `restore-image`.

Seed: post 002 ("3분 딥러닝" ch. 3), §3.2. A 100×100 image, flattened to 10,000
values, was corrupted by `weird_function` (a 3-tap filter [-1/3, 1/3, -1/3] applied 5 times over
the zero-padded vector, swapping its halves after passes 0, 2 and 4). Starting from
`randn(10000)`, plain gradient descent on `torch.dist(weird_function(x), broken)` (lr 0.8,
20,000 iterations, loss printed every 1,000) recovers the image (`recover_image`). Here the
20,000 steps run as one compiled `lax.scan`, cut into chunks of 1,000 only so the loss can be
printed as the post prints it.
Deviations:
- The post's broken image (a pickled photo of Times Square) does not ship; we corrupt a real
  photo instead: scikit-learn's china.jpg, centre square, greyscale (ITU-R 601 luma), resized to
  100×100 with antialiasing, values in [0, 1].
- The start is `jax.random.normal(key(seed))`, not torch's stream.
- `weird_function` carries its hand-written VJP (the adjoint: transposed taps, swaps undone in
  reverse order): it equals autodiff's to float rounding and runs ~3× faster on CPU than XLA's
  transpose of the concatenations. Forward-mode differentiation (`jax.jvp`) is not defined.
- `distance_loss`'s gradient at distance 0 is 0 (as torch's), not NaN.

Run: `jaxunsup run restore-image --workdir runs/restore-image`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import backend, training
from jaxunsup import data as data_lib
from jaxunsup.files import prepare_workdir, write_json, write_jsonl

FILTER = (-1.0 / 3, 1.0 / 3, -1.0 / 3)  # the post's `filt`: (own, right, left) weights
LUMA = (0.299, 0.587, 0.114)


@dataclasses.dataclass(frozen=True)
class RestoreConfig:
    """Post 002 §3.2's restoration; defaults are the post's settings."""

    image: str = "china"  # a sample name ("china", "flower") or an image file
    size: int = 100  # the image is size × size, a vector of size² values
    lr: float = 0.8
    iterations: int = 20_000
    log_every: int = 1_000
    n_iter: int = 5  # passes of the corrupting filter
    seed: int = 0


def _shift_right(h):
    return jnp.concatenate([jnp.zeros_like(h[..., :1]), h[..., :-1]], axis=-1)  # h[i-1], 0 in


def _shift_left(h):
    return jnp.concatenate([h[..., 1:], jnp.zeros_like(h[..., :1])], axis=-1)  # h[i+1], 0 in


def _rotate(h, k: int):
    return jnp.concatenate([h[..., k:], h[..., :k]], axis=-1)  # h[(i + k) mod n]


def _weird_forward(x, n_iter: int):
    f0, f1, f2 = FILTER
    h, n = x, x.shape[-1]
    for i in range(n_iter):
        h = f0 * h + f2 * _shift_right(h) + f1 * _shift_left(h)
        if i % 2 == 0:
            h = _rotate(h, n // 2)  # the post's swap of the two halves
    return h


@functools.partial(jax.jit, static_argnames="n_iter")
def weird_function_adjoint(g, n_iter: int = 5):
    """The transpose of `weird_function` (a linear map) applied to `g` [..., n]."""
    f0, f1, f2 = FILTER
    n = g.shape[-1]
    for i in reversed(range(n_iter)):
        if i % 2 == 0:
            g = _rotate(g, n - n // 2)  # undoes the swap
        g = f0 * g + f2 * _shift_left(g) + f1 * _shift_right(g)
    return g


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _weird_function(x, n_iter: int):
    return _weird_forward(x, n_iter)


_weird_function.defvjp(
    lambda x, n_iter: (_weird_forward(x, n_iter), None),
    lambda n_iter, _, g: (weird_function_adjoint(g, n_iter),),
)


@functools.partial(jax.jit, static_argnames="n_iter")
def weird_function(x, n_iter: int = 5):
    """The post's corrupting function on the last axis of `x` [..., n].

    Each of `n_iter` passes computes h = f0·h + f2·h_left + f1·h_right with (f0, f1, f2) =
    (-1/3, 1/3, -1/3), h_left[i] = h[i-1] and h_right[i] = h[i+1] (zero beyond the ends); after
    passes 0, 2, 4, ... the halves swap: h = concat(h[n//2:], h[:n//2]). Linear; its VJP is
    `weird_function_adjoint`.
    """
    if backend.on_cpu():  # the CPU-only hand-written VJP (DESIGN.md, "CPU-only paths")
        return _weird_function(x, n_iter)
    return _weird_forward(x, n_iter)


def distance_loss(hypothesis, broken):
    """`torch.dist`: the Euclidean distance; its gradient at distance 0 is 0, not NaN."""
    d = hypothesis - broken
    sq = jnp.sum(d * d)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


@functools.partial(jax.jit, static_argnames="n_iter")
def restoration_loss(x, broken, n_iter: int = 5):
    """The post's loss: `distance_loss(weird_function(x), broken)`."""
    return distance_loss(weird_function(x, n_iter), broken)


@functools.partial(jax.jit, static_argnames=("n_steps", "n_iter"))
def descend(x, broken, lr, *, n_steps: int, n_iter: int = 5):
    """`n_steps` of x ← x − lr·∇distance, one compiled scan; returns (x, losses [n_steps]),
    each loss measured before its step (the value the post prints)."""

    def body(x, _):
        loss, grad = jax.value_and_grad(restoration_loss)(x, broken, n_iter)
        return x - lr * grad, loss

    return jax.lax.scan(body, x, None, length=n_steps)


def recover_image(
    broken, x0, *, lr=0.8, iterations=20_000, log_every=1_000, n_iter=5, verbose=True
):
    """Gradient descent from `x0` towards weird_function(x) = broken, as the post's loop.

    Returns (x, losses [iterations]); prints "Loss at i = ..." every `log_every` iterations.
    """
    training.check_positive("lr", lr)
    training.check_positive("iterations", iterations, integer=True)
    training.check_positive("log_every", log_every, integer=True)
    training.check_positive("n_iter", n_iter, integer=True)
    broken, x0 = np.asarray(broken, np.float32), np.asarray(x0, np.float32)
    if broken.ndim != 1 or x0.shape != broken.shape:
        raise ValueError(
            f"broken must be a vector [n] and x0 the same shape, got {broken.shape} and {x0.shape}"
        )
    if not (np.all(np.isfinite(broken)) and np.all(np.isfinite(x0))):
        raise ValueError("broken and x0 must be finite; they contain NaN or inf")
    x, broken = jnp.asarray(x0), jnp.asarray(broken)
    losses = []
    for start in range(0, iterations, log_every):
        n_steps = min(log_every, iterations - start)
        x, chunk = descend(x, broken, jnp.float32(lr), n_steps=n_steps, n_iter=n_iter)
        losses.append(np.asarray(chunk))
        if verbose:
            print(f"Loss at {start} = {float(chunk[0])}", file=sys.stderr)
    return x, np.concatenate(losses)


def grey_square(image, size: int) -> np.ndarray:
    """Centre square of an image [H, W] or [H, W, C] (C in 1, 3; floats in [0, 1] or integers
    in 0..255), greyscale, resized to [size, size] with antialiasing; float32."""
    arr = np.asarray(image)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"image must be numeric, got dtype {arr.dtype}")
    scale = 1 / 255 if np.issubdtype(arr.dtype, np.integer) else 1.0  # uint8 → [0, 1]
    arr = arr.astype(np.float32) * np.float32(scale)
    if arr.ndim == 3 and arr.shape[-1] in (1, 3):
        arr = arr[..., 0] if arr.shape[-1] == 1 else arr @ np.asarray(LUMA, np.float32)
    elif arr.ndim != 2:
        raise ValueError(
            f"image must be [H, W] or [H, W, C] with C in (1, 3), got shape {arr.shape}"
        )
    if min(arr.shape) < 2:
        raise ValueError(f"image must be at least 2×2 pixels, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("image contains NaN or inf values; clean it first")
    h, w = arr.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = jnp.asarray(arr[top : top + s, left : left + s], jnp.float32)  # [s, s]
    return np.array(jax.image.resize(square, (size, size), "linear", antialias=True))


def check_config(cfg: RestoreConfig) -> None:
    """Raises ValueError naming the field of a bad `cfg`."""
    training.check_positive("lr", cfg.lr)
    training.check_positive("iterations", cfg.iterations, integer=True)
    training.check_positive("log_every", cfg.log_every, integer=True)
    training.check_positive("n_iter", cfg.n_iter, integer=True)
    training.check_positive("size", cfg.size, integer=True)
    if cfg.size < 2:
        raise ValueError(f"size must be at least 2, got {cfg.size}")


def run_restore(cfg: RestoreConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Corrupts the image with `weird_function` and restores it by gradient descent; writes
    config.json, metrics.jsonl, restoration.png, loss.png and results.json into `workdir`.

    Args:
      data: an image [H, W] or [H, W, C] in [0, 1] to use instead of `cfg.image`.
    """
    check_config(cfg)
    image = data if data is not None else data_lib.load_image(cfg.image)
    original = grey_square(image, cfg.size).reshape(-1)  # [size²]
    workdir = prepare_workdir(workdir, cfg)
    broken = weird_function(jnp.asarray(original), cfg.n_iter)
    x0 = jax.random.normal(jax.random.key(cfg.seed), original.shape, jnp.float32)
    run = dict(lr=cfg.lr, iterations=cfg.iterations, log_every=cfg.log_every, n_iter=cfg.n_iter)
    x, losses = recover_image(broken, x0, **run)
    restored = np.asarray(x)
    final = float(restoration_loss(x, broken, cfg.n_iter))
    rmse = float(np.sqrt(np.mean((restored - original) ** 2)))
    trace = [
        {"iteration": i, "loss": float(losses[i])} for i in range(0, len(losses), cfg.log_every)
    ]
    write_jsonl(workdir / "metrics.jsonl", trace)

    figures = _figures(workdir, cfg, original, np.asarray(broken), restored, losses)
    last = trace[-1]["iteration"]
    results = {
        "experiment": "restore-image",
        "data": f"{cfg.image if data is None else 'array'}: centre square, greyscale, "
        f"{cfg.size}×{cfg.size}",
        "loss_trace": trace,
        "final_loss": final,
        "restoration_rmse": rmse,
        "restoration_max_abs": float(np.max(np.abs(restored - original))),
        "figures": figures,
        "table": [
            {
                "metric": f"distance at iterations 0, {last:,} and after the last",
                "ours": [
                    round(float(losses[0]), 3),
                    round(float(losses[last]), 4),
                    round(final, 4),
                ],
                "seed": None,
            },
            {
                "metric": "restoration RMSE vs original (pixels in [0, 1])",
                "ours": round(rmse, 4),
                "seed": None,
            },
        ],  # fmt: skip
    }
    write_json(workdir / "results.json", results)
    return results


def _figures(workdir, cfg: RestoreConfig, original, broken, restored, losses) -> list[str]:
    """restoration.png (original, broken min-max rescaled for display, restored) and loss.png."""
    from jaxunsup import plots

    shown = [original, (broken - broken.min()) / max(float(broken.max() - broken.min()), 1e-12),
             restored]  # fmt: skip
    titles = ["original", "broken", "restored"]
    curve = {"distance": (np.arange(cfg.iterations), losses)}
    return [
        plots.save_image_rows(
            workdir / "restoration.png", [v.reshape(1, cfg.size, cfg.size) for v in shown], titles
        ).name,
        plots.save_loss_curves(
            workdir / "loss.png", curve, xlabel="iteration", ylabel="distance", logy=True
        ).name,
    ]
