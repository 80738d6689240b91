"""Autoencoders of post 000 (§2 stacked) — experiment `ae-stacked`.

Seed: `000_1926af310522df2b.txt` §2.1 ("스택 오토인코더"). An MLP 784-128-32-10 encoder and
10-32-128-784 decoder, ReLU after every hidden layer *including the 10-unit code* (as the post
has it), Sigmoid output, MSE between input and reconstruction, Adam(1e-4), batch 50, 51 epochs.
The post prints the mean training loss of epochs 1-4 on the 60,000 MNIST training images:
0.083, 0.060, 0.051, 0.044.

Deviations:
- Each epoch drops the remainder of the shuffled data (N mod 50 images) instead of a smaller last
  batch; with 60,000 or 4,000 training images there is no remainder.
- Without local MNIST files the experiment trains on the embedded MNIST-5k (4,000 training
  images, 80 steps per epoch instead of 1,200). `results.json` then also reports the mean loss
  over each 1,200-step window, the number of steps one of the post's epochs takes, so the two
  curves can be compared step for step.

Run: `jaxunsup run ae-stacked --workdir runs/ae-stacked` (add `--epochs 60` for the embedded set).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxunsup import data as data_lib
from jaxunsup import layers, training
from jaxunsup.files import prepare_workdir, write_json

SEED_EPOCH_LOSSES = (0.083, 0.060, 0.051, 0.044)  # post 000 §2, epochs 1-4
SEED_STEPS_PER_EPOCH = 60_000 // 50


@dataclasses.dataclass(frozen=True)
class StackedConfig:
    """Post 000 §2's stacked autoencoder; defaults are the post's settings."""

    hidden: tuple[int, ...] = (128, 32, 10)
    lr: float = 1e-4
    batch_size: int = 50
    epochs: int = 51
    seed: int = 0
    source: str = "auto"
    data_dir: str | None = None
    checkpoint_every: int = 10


class StackedAE(nn.Module):
    """MLP autoencoder; layer names mirror the torch `nn.Sequential` indices (`encoder.0` ...)
    and weights start as torch's `nn.Linear` defaults."""

    hidden: tuple[int, ...] = (128, 32, 10)
    out_dim: int = 784

    def setup(self):
        enc = (self.out_dim, *self.hidden)
        dec = (*reversed(self.hidden), self.out_dim)
        self.encoder = [
            layers.dense(enc[i], enc[i + 1], name=f"encoder_{2 * i}") for i in range(len(enc) - 1)
        ]
        self.decoder = [
            layers.dense(dec[i], dec[i + 1], name=f"decoder_{2 * i}") for i in range(len(dec) - 1)
        ]

    def encode(self, x):
        h = x.reshape(x.shape[0], -1)  # [B, 784]; C=1 so NHWC and NCHW flatten agree
        for layer in self.encoder:
            h = nn.relu(layer(h))  # the post's ReLU follows the code layer too
        return h

    def decode(self, z):
        h = z
        for layer in self.decoder[:-1]:
            h = nn.relu(layer(h))
        return nn.sigmoid(self.decoder[-1](h))  # [B, 784]

    def __call__(self, x):
        return self.decode(self.encode(x)).reshape(x.shape)  # [B, 28, 28, 1]


def create_state(key: jax.Array, cfg: StackedConfig, example: jax.Array):
    model = StackedAE(hidden=tuple(cfg.hidden), out_dim=int(np.prod(example.shape[1:])))
    params = model.init(key, example[:1])
    return training.create_train_state(model.apply, params, optax.adam(cfg.lr))


def loss_fn(params, apply_fn, batch, key):
    """MSE between the batch and its reconstruction (the post's `nn.MSELoss()`)."""
    del key  # deterministic model
    recon = apply_fn(params, batch)
    return jnp.mean((recon - batch) ** 2), {}


train_step = functools.partial(training.gradient_step, loss_fn=loss_fn)


@functools.partial(jax.jit, static_argnames="apply_fn")
def _recon_and_mse(params, apply_fn, images):
    recon = apply_fn(params, images)
    return recon, jnp.mean((recon - images) ** 2, axis=(1, 2, 3))  # [B]


def reconstruct(state, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions and per-image MSE for `images` [N, 28, 28, 1]."""
    fn = functools.partial(_recon_and_mse, state.params, state.apply_fn)
    return training.batched_apply(fn, images)


@functools.partial(jax.jit, static_argnames="apply_fn")
def _encode(params, apply_fn, images):
    return apply_fn(params, images, method="encode")


def encode(state, images: np.ndarray) -> np.ndarray:
    """The codes of `images` [N, 28, 28, 1] → [N, hidden[-1]]."""
    return training.batched_apply(functools.partial(_encode, state.params, state.apply_fn), images)


def window_means(values: list[float], window: int) -> list[float]:
    """Means over consecutive windows of `window` epochs (complete windows only)."""
    n = len(values) // window
    return [float(np.mean(values[i * window : (i + 1) * window])) for i in range(n)]


def _validate(cfg: StackedConfig) -> None:
    training.check_positive("lr", cfg.lr)
    training.check_positive("batch_size", cfg.batch_size, integer=True)
    training.check_positive("epochs", cfg.epochs, integer=True)
    training.check_positive("checkpoint_every", cfg.checkpoint_every, integer=True)
    if not cfg.hidden or any(int(h) <= 0 for h in cfg.hidden):
        raise ValueError(f"hidden must be a non-empty tuple of positive sizes, got {cfg.hidden}")


def load_data(cfg) -> tuple[data_lib.ImageData, data_lib.ImageData]:
    train = data_lib.load_mnist("train", source=cfg.source, data_dir=cfg.data_dir)
    test = data_lib.load_mnist("test", source=cfg.source, data_dir=cfg.data_dir)
    return train, test


def run(cfg: StackedConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the stacked AE; writes config.json, metrics.jsonl, checkpoints, figures and
    results.json into `workdir`; returns the results dict."""
    from jaxunsup import plots

    _validate(cfg)
    train, test = data if data is not None else load_data(cfg)
    images = training.check_images("train images", train.images, (28, 28, 1))
    test_images = training.check_images("test images", test.images, (28, 28, 1))
    workdir = prepare_workdir(workdir, cfg)

    key_init, key_fit = jax.random.split(jax.random.key(cfg.seed))
    state = create_state(key_init, cfg, jnp.asarray(images[:1]))

    def eval_fn(state):
        return {"test_mse": float(np.mean(reconstruct(state, test_images)[1]))}

    state, history = training.fit(
        state, train_step, images, key=key_fit, epochs=cfg.epochs, batch_size=cfg.batch_size,
        workdir=workdir, checkpoint_every=cfg.checkpoint_every, eval_fn=eval_fn,
    )  # fmt: skip
    recon, per_image = reconstruct(state, test_images[:10])
    figures = [
        plots.save_image_rows(
            workdir / "reconstructions.png", [test_images[:10], recon], ["input", "output"]
        ).name,
        plots.save_loss_curves(
            workdir / "loss.png",
            {"train": [r["loss"] for r in history], "test": [r["test_mse"] for r in history]},
            ylabel="MSE",
        ).name,
    ]
    train_loss = [r["loss"] for r in history]
    steps_per_epoch = len(images) // cfg.batch_size
    window = max(1, round(SEED_STEPS_PER_EPOCH / steps_per_epoch))
    results = {
        "experiment": "ae-stacked",
        "data": train.source,
        "n_train": len(images),
        "n_test": len(test_images),
        "steps_per_epoch": steps_per_epoch,
        "train_loss": train_loss,
        "test_mse_curve": [r["test_mse"] for r in history],
        "test_mse": history[-1]["test_mse"],
        "loss_per_seed_epoch": window_means(train_loss, window),
        "seed_epoch_losses": list(SEED_EPOCH_LOSSES),
        "figures": figures,
        "table": [
            {
                "metric": "train loss per 1,200 steps (the post's epochs 1-4)",
                "ours": [round(v, 3) for v in window_means(train_loss, window)[:4]],
                "seed": list(SEED_EPOCH_LOSSES),
            },
            {"metric": "test MSE", "ours": round(history[-1]["test_mse"], 4), "seed": None},
        ],
    }
    write_json(Path(workdir) / "results.json", results)
    return results
