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

The test images' codes are clustered with post 004's k-means and scored against the labels
(`jaxunsup.latent_clustering`), as for every autoencoder of the family.

This module also holds what the family shares: `encode`, `decode` and `reconstruct` work for
any state whose model has `encode`/`decode` methods (`ae_denoising`, `ae_conv`, `ae_keras`),
and `load_config` reads a run's `config.json` back for `restore`.

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

from jaxunsup import backend, latent_clustering, layers, seeds, training
from jaxunsup import data as data_lib
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
    source: str = "auto"
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
    cfg = cfg if cfg is not None else load_config(StackedConfig, workdir)
    return restore_states(create_state, workdir, cfg), cfg


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


def _validate(cfg: StackedConfig) -> None:
    training.check_positive("lr", cfg.lr)
    training.check_positive("batch_size", cfg.batch_size, integer=True)
    training.check_positive("epochs", cfg.epochs, integer=True)
    training.check_positive("checkpoint_every", cfg.checkpoint_every, integer=True)
    training.check_positive("n_seeds", cfg.n_seeds, integer=True)
    if not cfg.hidden or any(int(h) <= 0 for h in cfg.hidden):
        raise ValueError(f"hidden must be a non-empty tuple of positive sizes, got {cfg.hidden}")


def load_data(cfg) -> tuple[data_lib.ImageData, data_lib.ImageData]:
    train = data_lib.load_mnist("train", source=cfg.source, data_dir=cfg.data_dir)
    test = data_lib.load_mnist("test", source=cfg.source, data_dir=cfg.data_dir)
    return train, test


def checked_data(
    train: data_lib.ImageData,
    test: data_lib.ImageData,
    n_train: int | None = None,
    n_test: int | None = None,
) -> tuple[data_lib.ImageData, data_lib.ImageData]:
    """The first `n_train` / `n_test` images (None: all), validated before any compilation:
    [N, 28, 28, 1] finite images and one integer label per test image."""
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if n is not None:
            training.check_positive(name, n, integer=True)
    train = train._replace(images=train.images[:n_train], labels=train.labels[:n_train])
    test = test._replace(images=test.images[:n_test], labels=test.labels[:n_test])
    images = training.check_images("train images", train.images, (28, 28, 1))
    test_images = training.check_images("test images", test.images, (28, 28, 1))
    labels = latent_clustering.check_labels("test labels", test.labels, len(test_images))
    return train._replace(images=images), test._replace(images=test_images, labels=labels)


def train_and_evaluate(
    name: str,
    cfg,
    workdir: Path,
    state,
    step,
    images: np.ndarray,
    test_inputs: np.ndarray,
    test: data_lib.ImageData,
    *,
    key: jax.Array,
    value_range: tuple[float, float] = (0.0, 1.0),
    eval_fn=None,
) -> tuple[object, dict]:
    """The family's shared `run` body: fit, per-epoch test MSE, figures, latent clustering.

    Args:
      name: the experiment's name (results.json's "experiment").
      cfg: a Config with `epochs`, `batch_size`, `checkpoint_every` and `seed`.
      state, step: the initial train state and its module-level `train_step`; a stacked
        state (`create_states` from `seeds.keys`) trains every seed at once with `key` the
        stacked fit keys, and results gain per-seed numbers and mean/std rows.
      images, test_inputs: the model's training and test inputs (after any preprocessing).
      test: the raw test set (shown in the cluster figure; labels score the clustering).
      key: the `fit` key.
      value_range: the range of `test_inputs` shown as black..white in the figures.
      eval_fn: `state -> dict` with at least "test_mse", run after every epoch; default the
        MSE of `test_inputs`' reconstructions.

    Returns:
      (state, results) with the keys every autoencoder reports; the caller adds its own and
      writes results.json.
    """
    from jaxunsup import plots

    def test_mse(state):
        return {"test_mse": float(np.mean(reconstruct(state, test_inputs)[1]))}

    eval_fn = functools.partial(seeds.evaluate, eval_fn or test_mse)
    state, history = training.fit(
        state, seeds.step_for(step, state), images, key=key, epochs=cfg.epochs,
        batch_size=cfg.batch_size, workdir=workdir, checkpoint_every=cfg.checkpoint_every,
        eval_fn=eval_fn,
    )  # fmt: skip
    n_seeds = seeds.count(state)
    shown = state if n_seeds is None else seeds.unstack(state, 0)  # seed 0's figures
    recon = reconstruct(shown, test_inputs)[0][:10]  # the shape eval_fn compiled for
    train_loss, test_mse = [r["loss"] for r in history], [r["test_mse"] for r in history]
    figures = [
        plots.save_image_rows(
            workdir / "reconstructions.png", [test_inputs[:10], recon], ["input", "output"],
            value_range=value_range,
        ).name,
        plots.save_loss_curves(
            workdir / "loss.png", {"train": train_loss, "test": test_mse}, ylabel="MSE"
        ).name,
    ]  # fmt: skip
    clusters = latent_clustering.evaluate(
        workdir, encode(shown, test_inputs), test.images, test.labels, seed=cfg.seed
    )
    results = {
        "experiment": name,
        "data": test.source,
        "n_train": len(images),
        "n_test": len(test_inputs),
        "steps_per_epoch": len(images) // cfg.batch_size,
        "train_loss": train_loss,
        "test_mse_curve": test_mse,
        "test_mse": test_mse[-1],
        "clustering": {k: clusters[k] for k in ("latent", "pixels")},
        "figures": figures + clusters["figures"],
        "table": [
            {"metric": "test MSE", "ours": round(test_mse[-1], 4), "seed": None},
            *clusters["table"],
        ],
    }
    if n_seeds is not None:
        _add_seed_results(results, state, history, test_inputs, test.labels, cfg.seed)
    return state, results


def _add_seed_results(results, state, history, test_inputs, labels, seed: int) -> None:
    """Per-seed curves and scores, and mean/std rows in the table (seed 0 fills the rest)."""
    n = seeds.count(state)
    final = history[-1]["test_mse_per_seed"]
    latent = [results["clustering"]["latent"]]
    from threadpoolctl import threadpool_limits  # as latent_clustering.evaluate: one thread

    for i in range(1, n):  # seed 0's scores came with its figures
        codes = encode(seeds.unstack(state, i), test_inputs)
        with threadpool_limits(limits=1):
            assignments, inertia = latent_clustering.kmeans(codes, **latent_clustering.KMEANS_ARGS)
        latent.append({**latent_clustering.scores(labels, assignments), "inertia": inertia})
    results.update(
        seeds=[seed + i for i in range(n)],
        train_loss_per_seed=[r["loss_per_seed"] for r in history],  # [epoch][seed]
        test_mse_per_seed=final,
        test_mse_std=seeds.summary(final)["std"],
    )
    results["clustering"]["latent_per_seed"] = latent
    acc = [s["acc"] for s in latent]
    results["table"][:2] = [
        {"metric": f"test MSE, mean/std over {n} seeds", "ours": seeds.mean_std(final),
         "seed": None},
        {"metric": f"test MSE per seed ({seed}..{seed + n - 1})",
         "ours": [round(v, 4) for v in final], "seed": None},
        {"metric": "k-means on test latents: acc, mean/std over seeds",
         "ours": seeds.mean_std(acc), "seed": None},
    ]  # fmt: skip


def run(cfg: StackedConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the stacked AE; writes config.json, metrics.jsonl, checkpoints, figures and
    results.json into `workdir`; returns the results dict."""
    _validate(cfg)
    train, test = checked_data(*(data if data is not None else load_data(cfg)))
    workdir = prepare_workdir(workdir, cfg)

    key_init, key_fit = seeds.split(seeds.keys(cfg.seed, cfg.n_seeds))
    state = create_states(create_state, key_init, cfg, jnp.asarray(train.images[:1]))
    state, results = train_and_evaluate(
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
