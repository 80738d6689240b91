"""Denoising autoencoder of post 000 §3 — experiment `ae-denoising`.

Seed: post 000 §3 ("디노이징 오토인코더"). The stacked AE of §2
(`autoencoder.StackedAE`, 784-128-32-10 / 10-32-128-784, Adam 1e-4, batch 50, 51 epochs) trained
on inputs with Gaussian noise N(0, 0.5²) added (`torch.normal(0, 0.5, size)`: std 0.5, no
clipping) and the clean image as the MSE target. The post shows clean images over noisy ones and
the denoiser's reconstructions; it prints no number.

Deviations and the seed's bug:
- The post's loop computes `dirty_inputs` but feeds the clean `inputs` to the model, so it
  trains a plain autoencoder. jaxunsup feeds the noisy images; `seed_compat=True` reproduces the
  post (noise drawn, never used).
- The noise is drawn from the step key (`jax.random.normal(fold_in(key, step))`), not torch's
  global generator.
- To show what denoising buys, `run` also trains the plain stacked AE with the same
  initialisation and batch order (`baseline=True`, into `workdir/baseline/`) and reports both
  models' test MSE on the clean test images and on the same noisy test images.
- Each epoch drops the remainder of the shuffled data (none with 60,000 or 4,000 images); the
  test codes are clustered with post 004's k-means (`jaxunsup.latent_clustering`).

Run: `jaxunsup run ae-denoising --workdir runs/ae-denoising`.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import ae_run, autoencoder, seeds, training
from jaxunsup.autoencoder import decode, encode, reconstruct  # noqa: F401  (the model's API)
from jaxunsup.data import Source
from jaxunsup.files import prepare_workdir, write_json


@dataclasses.dataclass(frozen=True)
class DenoisingConfig:
    """Post 000 §3's denoising AE; defaults are the post's settings (with its bug fixed)."""

    hidden: tuple[int, ...] = (128, 32, 10)
    noise_std: float = 0.5
    seed_compat: bool = False  # True: the post's loop, which trains on the clean inputs
    baseline: bool = True  # also train the plain stacked AE for the noisy-input comparison
    lr: float = 1e-4
    batch_size: int = 50
    epochs: int = 51
    seed: int = 0
    n_seeds: int = 1
    source: Source = "auto"  # `data.load_mnist`'s
    data_dir: str | None = None
    n_train: int | None = None  # None: every training image
    n_test: int | None = None
    checkpoint_every: int = 10


def add_noise(key: jax.Array, images: jax.Array, std: float) -> jax.Array:
    """`images + N(0, std²)` noise, unclipped (the post's `torch.normal(0, std, size)`)."""
    return images + std * jax.random.normal(key, images.shape, images.dtype)


def loss_fn(params, apply_fn, batch, key, *, noise_std: float = 0.5, seed_compat: bool = False):
    """MSE between the clean batch and the reconstruction of its noisy copy.

    With `seed_compat=True` the noise is drawn but the clean batch goes in, as in the post.
    """
    noisy = add_noise(key, batch, noise_std)
    recon = apply_fn(params, batch if seed_compat else noisy)
    return jnp.mean((recon - batch) ** 2), {}


@functools.cache
def make_train_step(noise_std: float = 0.5, seed_compat: bool = False):
    """The jitted `(state, batch, key) -> (state, metrics)` for these settings (one object per
    setting, so each compiles once)."""
    loss = functools.partial(loss_fn, noise_std=float(noise_std), seed_compat=bool(seed_compat))
    return functools.partial(training.gradient_step, loss_fn=loss)


train_step = make_train_step(0.5, False)  # the post's noise, bug fixed


def create_state(key: jax.Array, cfg: DenoisingConfig, example: jax.Array):
    """The stacked AE of §2 with `cfg.hidden` and Adam(`cfg.lr`)."""
    stacked = autoencoder.StackedConfig(hidden=tuple(cfg.hidden), lr=cfg.lr)
    return autoencoder.create_state(key, stacked, example)


@functools.partial(jax.jit, static_argnames="apply_fn")
def _denoise_mse(params, apply_fn, batch):
    noisy, clean = batch
    recon = apply_fn(params, noisy)
    return recon, jnp.mean((recon - clean) ** 2, axis=(1, 2, 3))  # [B]


def denoise(state, noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions of `noisy` [N, 28, 28, 1] and their per-image MSE to `clean`."""
    noisy = autoencoder.check_inputs(state, noisy, "noisy")
    clean = autoencoder.check_inputs(state, clean, "clean")
    if len(noisy) != len(clean):
        raise ValueError(f"noisy and clean must hold as many images: {len(noisy)} vs {len(clean)}")
    fn = functools.partial(_denoise_mse, state.params, state.apply_fn)
    return training.batched_apply(fn, (noisy, clean))


def restore(workdir: str | os.PathLike, cfg: DenoisingConfig | None = None):
    """The trained denoiser in `workdir` (its latest checkpoint); returns (state, cfg)."""
    return autoencoder.restore_run(create_state, workdir, DenoisingConfig if cfg is None else cfg)


def check_config(cfg: DenoisingConfig) -> None:
    """Raises ValueError naming the field of a bad `cfg`."""
    training.check_positive("noise_std", cfg.noise_std)
    autoencoder.check_config(cfg)  # the stacked AE's fields


def _noisy_test_mse(state, noisy, clean) -> dict:
    return {
        "test_mse": float(np.mean(reconstruct(state, clean)[1])),
        "test_mse_noisy": float(np.mean(denoise(state, noisy, clean)[1])),
    }


def _first(state):
    """The state shown in figures: seed 0's of a stacked one."""
    return state if seeds.count(state) is None else seeds.unstack(state, 0)


def _over(cfg: DenoisingConfig) -> str:
    return "" if cfg.n_seeds == 1 else f", mean/std over {cfg.n_seeds} seeds"


def _stat(scores: dict, name: str):
    """A table's number: rounded, or [mean, std] over the seeds of a stacked run."""
    per_seed = scores.get(f"{name}_per_seed")
    return round(scores[name], 4) if per_seed is None else seeds.mean_std(per_seed)


def _baseline_rows(base: dict, cfg: DenoisingConfig) -> list[dict]:
    return [
        {"metric": "plain stacked AE: test MSE, noisy inputs" + _over(cfg),
         "ours": _stat(base, "test_mse_noisy"), "seed": None},
        {"metric": "plain stacked AE: test MSE" + _over(cfg), "ours": _stat(base, "test_mse"),
         "seed": None},
    ]  # fmt: skip


def run(cfg: DenoisingConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the denoiser (and the plain AE as the baseline); writes config.json,
    metrics.jsonl, checkpoints, figures and results.json into `workdir`; returns the results."""
    from jaxunsup import plots

    check_config(cfg)
    raw = data if data is not None else ae_run.load_data(cfg)
    train, test = ae_run.checked_data(*raw, n_train=cfg.n_train, n_test=cfg.n_test)
    workdir = prepare_workdir(workdir, cfg)
    key_init, key_fit, key_test = seeds.split(seeds.keys(cfg.seed, cfg.n_seeds), 3)
    if cfg.n_seeds > 1:  # every seed is scored on seed `cfg.seed`'s noisy test set
        key_test = key_test[0]
    noisy = np.asarray(add_noise(key_test, jnp.asarray(test.images), cfg.noise_std))
    example = jnp.asarray(train.images[:1])

    def eval_fn(state):
        return _noisy_test_mse(state, noisy, test.images)

    step = make_train_step(float(cfg.noise_std), bool(cfg.seed_compat))
    state, results = ae_run.train_and_evaluate(
        "ae-denoising", cfg, workdir, autoencoder.create_states(create_state, key_init, cfg,
        example), step, train.images, test.images, test, key=key_fit, eval_fn=eval_fn,
    )  # fmt: skip
    ours = seeds.evaluate(eval_fn, state)
    rows = [noisy[:10], denoise(_first(state), noisy, test.images)[0][:10]]  # compiled already
    titles = ["noisy input", "denoiser" if not cfg.seed_compat else "seed_compat AE"]
    results.update(ours, noise_std=cfg.noise_std, seed_compat=cfg.seed_compat)
    results["table"] = [
        {"metric": "test MSE, noisy inputs" + _over(cfg), "ours": _stat(ours, "test_mse_noisy"),
         "seed": None},
        *results["table"],
    ]  # fmt: skip
    if cfg.baseline:  # the plain AE: same init, same batch order, clean inputs
        plain = autoencoder.create_states(create_state, key_init, cfg, example)
        plain, _ = training.fit(
            plain, seeds.step_for(autoencoder.train_step, plain), train.images,
            key=key_fit, epochs=cfg.epochs, batch_size=cfg.batch_size,
            workdir=workdir / "baseline", checkpoint_every=cfg.checkpoint_every,
            eval_fn=functools.partial(seeds.evaluate, eval_fn),
        )  # fmt: skip
        results["baseline"] = seeds.evaluate(eval_fn, plain)
        results["table"][1:1] = _baseline_rows(results["baseline"], cfg)
        rows.append(denoise(_first(plain), noisy, test.images)[0][:10])
        titles.append("plain AE")
    figure = plots.save_image_rows(
        workdir / "denoising.png", [test.images[:10], *rows], ["clean", *titles]
    )
    results["figures"].insert(0, figure.name)
    write_json(workdir / "results.json", results)
    return results
