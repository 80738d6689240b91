"""Autoencoders of post 000 (§2 stacked) — experiment `ae-stacked`.

Seed: post 000 §2.1 ("스택 오토인코더"). An MLP 784-128-32-10 encoder and
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

The test images' codes are clustered with post 004's k-means and scored against the labels
(`jaxunsup.latent_clustering`), as for every autoencoder of the family.

This module also holds the model API the family shares: `encode`, `decode` and `reconstruct`
work for any state whose model has `encode`/`decode` methods (`ae_denoising`, `ae_conv`,
`ae_keras`), `loss_fn` / `train_step` are every plain autoencoder's MSE step, `restore_run`
loads a finished run back and `check_training` checks the fields every family Config has. The
family's `run` body is `ae_run`.

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

from jaxunsup import backend, layers, seeds, training
from jaxunsup.data import Source
from jaxunsup.files import prepare_workdir, read_json, write_json

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
    n_seeds: int = 1
    source: Source = "auto"  # `data.load_mnist`'s
    data_dir: str | None = None
    checkpoint_every: int = 10


class StackedAE(nn.Module):
    """MLP autoencoder; layer names mirror the torch `nn.Sequential` indices (`encoder.0` ...)
    and weights start as torch's `nn.Linear` defaults."""

    hidden: tuple[int, ...] = (128, 32, 10)
    out_dim: int = 784
    image_shape: tuple[int, ...] | None = None  # `decode`'s output shape; None: flat [B, out_dim]

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
        out = nn.sigmoid(self.decoder[-1](h))  # [B, 784]
        return (
            out if self.image_shape is None else out.reshape(-1, *self.image_shape)
        )  # [B, H, W, C]

    def __call__(self, x):
        return self.decode(self.encode(x)).reshape(x.shape)  # [B, 28, 28, 1]


def init_params(model: nn.Module, key: jax.Array, example: jax.Array):
    """`model.init(key, example)` as one compiled call, built without XLA's optimisation
    passes: it runs once, and optimising the unrolled random-number code of every parameter
    costs seconds of compile time (3-4x the unoptimised build) on CPU (a CPU-only option)."""
    if isinstance(key, jax.core.Tracer):  # inside a caller's jit (seeds.create): its options
        return model.init(key, example)
    return jax.jit(model.init, compiler_options=init_compiler_options())(key, example)


def init_compiler_options() -> dict | None:
    """XLA's optimisation passes off for an init program on CPU (a CPU-only path)."""
    return {"xla_backend_optimization_level": 0} if backend.on_cpu() else None


def create_state(key: jax.Array, cfg: StackedConfig, example: jax.Array):
    """The stacked AE of `cfg.hidden` for images shaped like `example` [N, H, W, C]."""
    training.check_shape(
        "example", example, (None, None, None), "NHWC images",
        "pass a batch of the training images, e.g. images[:1]",
    )  # fmt: skip
    model = StackedAE(
        hidden=tuple(cfg.hidden),
        out_dim=int(np.prod(example.shape[1:])),
        image_shape=tuple(example.shape[1:]),
    )
    params = init_params(model, key, example[:1])
    return training.create_train_state(model.apply, params, optax.adam(cfg.lr))


def create_states(create_fn, key: jax.Array, cfg, example: jax.Array):
    """`create_fn(key, cfg, example)`, or for stacked keys [S] (`seeds.keys`) the S models
    stacked on a leading axis, built by one compiled init (`seeds.create`)."""
    return seeds.create(lambda k: create_fn(k, cfg, example), key, init_compiler_options())


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


def input_shape(state) -> tuple[int, ...]:
    """The per-image shape `state`'s model takes: a stacked AE's own (its example's), else
    28×28×1 (the conv and Keras AEs, whose layers fix it)."""
    shape = getattr(getattr(state.apply_fn, "__self__", None), "image_shape", None)
    return tuple(shape) if shape is not None else (28, 28, 1)


def check_inputs(state, images, name: str = "images") -> np.ndarray:
    """`images` as float32 after checking that `state`'s model takes their shape."""
    shape = input_shape(state)
    what = f"images of the model's {'×'.join(map(str, shape))} input"
    training.check_shape(name, images, shape, what, "pass images shaped like the training data")
    return np.asarray(images, np.float32)


def reconstruct(state, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions and per-image MSE for `images` [N, 28, 28, 1]."""
    fn = functools.partial(_recon_and_mse, state.params, state.apply_fn)
    return training.batched_apply(fn, check_inputs(state, images))


@functools.partial(jax.jit, static_argnames="apply_fn")
def _encode(params, apply_fn, images):
    return apply_fn(params, images, method="encode")


def encode(state, images: np.ndarray) -> np.ndarray:
    """The codes of `images` [N, 28, 28, 1] → [N, latent] (any model with an `encode` method)."""
    fn = functools.partial(_encode, state.params, state.apply_fn)
    return training.batched_apply(fn, check_inputs(state, images))


@functools.partial(jax.jit, static_argnames="apply_fn")
def _decode(params, apply_fn, codes):
    return apply_fn(params, codes, method="decode")


def decode(state, codes: np.ndarray) -> np.ndarray:
    """Images decoded from `codes` [N, latent] → [N, 28, 28, 1] (any model with `decode`)."""
    example = jax.ShapeDtypeStruct((1, *input_shape(state)), jnp.float32)
    code = jax.eval_shape(lambda p, x: state.apply_fn(p, x, method="encode"), state.params, example)
    what = f"codes of the model's {code.shape[1:]} latent"
    training.check_shape("codes", codes, code.shape[1:], what, "pass codes that encode returned")
    fn = functools.partial(_decode, state.params, state.apply_fn)
    return training.batched_apply(fn, np.asarray(codes, np.float32))


def load_config(config_cls: type, workdir: str | os.PathLike):
    """The Config a run wrote to `workdir/config.json` (JSON lists back to tuples)."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no config.json in {workdir}; pass the workdir of a finished run")
    names = {f.name for f in dataclasses.fields(config_cls)}
    raw = read_json(path)
    return config_cls(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names}
    )


def restore(workdir: str | os.PathLike, cfg: StackedConfig | None = None):
    """The trained stacked AE in `workdir` (its latest checkpoint); returns (state, cfg)."""
    return restore_run(create_state, workdir, StackedConfig if cfg is None else cfg)


def restore_run(create_fn, workdir: str | os.PathLike, cfg):
    """(state, cfg) of the finished run in `workdir`: its latest checkpoint of `create_fn`'s
    model. `cfg` is the run's Config, or a Config class filled from its `config.json`."""
    if isinstance(cfg, type):
        cfg = load_config(cfg, workdir)
    return restore_states(create_fn, workdir, cfg), cfg


def restore_states(create_fn, workdir: str | os.PathLike, cfg):
    """The latest checkpoint in `workdir` of `create_fn`'s model (S stacked ones for a run
    with `n_seeds` = S; `seeds.unstack` picks one)."""
    key = seeds.keys(0, getattr(cfg, "n_seeds", 1))
    state = create_states(create_fn, key, cfg, jnp.zeros((1, 28, 28, 1), jnp.float32))
    return training.restore_latest(workdir, state)[0]


def window_means(values: list[float], window: int) -> list[float]:
    """Means over consecutive windows of `window` epochs (complete windows only)."""
    n = len(values) // window
    return [float(np.mean(values[i * window : (i + 1) * window])) for i in range(n)]


def check_training(cfg, *sizes: str) -> None:
    """Raises ValueError naming the field unless the training fields every autoencoder's
    Config has (lr, batch_size, epochs, checkpoint_every, n_seeds) and the model sizes named
    in `sizes` are positive."""
    training.check_positive("lr", cfg.lr)
    for name in ("batch_size", "epochs", "checkpoint_every", "n_seeds", *sizes):
        training.check_positive(name, getattr(cfg, name), integer=True)


def check_config(cfg: StackedConfig) -> None:
    """Raises ValueError naming the field of a bad `cfg` (also a DenoisingConfig's)."""
    check_training(cfg)
    if not cfg.hidden or any(int(h) <= 0 for h in cfg.hidden):
        raise ValueError(f"hidden must be a non-empty tuple of positive sizes, got {cfg.hidden}")


def run(cfg: StackedConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the stacked AE; writes config.json, metrics.jsonl, checkpoints, figures and
    results.json into `workdir`; returns the results dict."""
    check_config(cfg)
    from jaxunsup import ae_run  # the family's run body (it imports this module)

    train, test = ae_run.checked_data(*(data if data is not None else ae_run.load_data(cfg)))
    workdir = prepare_workdir(workdir, cfg)

    key_init, key_fit = seeds.split(seeds.keys(cfg.seed, cfg.n_seeds))
    state = create_states(create_state, key_init, cfg, jnp.asarray(train.images[:1]))
    state, results = ae_run.train_and_evaluate(
        "ae-stacked", cfg, workdir, state, train_step, train.images, test.images, test,
        key=key_fit,
    )  # fmt: skip
    train_loss = results["train_loss"]
    window = max(1, round(SEED_STEPS_PER_EPOCH / results["steps_per_epoch"]))
    results["data"] = train.source
    results["loss_per_seed_epoch"] = window_means(train_loss, window)
    results["seed_epoch_losses"] = list(SEED_EPOCH_LOSSES)
    results["table"].insert(
        0,
        {
            "metric": "train loss per 1,200 steps (the post's epochs 1-4)",
            "ours": [round(v, 3) for v in window_means(train_loss, window)[:4]],
            "seed": list(SEED_EPOCH_LOSSES),
        },
    )
    write_json(workdir / "results.json", results)
    return results
