"""MLP GAN of post 000 §5.1 — experiment `gan-mlp` — and the machinery every GAN here shares.

Seed: post 000 §5.1 ("Vanilla GAN"). Images normalised to [-1, 1]; generator
128 → 256 → 512 → 1024 → 784 with LeakyReLU(0.2) and Tanh; discriminator 784 → 1024 → 512 → 256
→ 1 with LeakyReLU(0.2) + Dropout(0.3) and a Sigmoid; `nn.BCELoss`; two Adam(2e-4); batch 100;
151 epochs. Each step trains D on a real batch (label 1) plus the generator's detached output on
fresh N(0, 1) noise (label 0), then G on new noise with label 1 through the *updated* D (still in
train mode, so with dropout). After every epoch the post renders 64 fixed-noise samples into a
grid and makes a GIF of the grids; it plots the two loss curves.

This module is the GAN family's face: it re-exports the shared machinery that `dcgan` and
`gan_simple` use. `gan_core`: `GANState` (two TrainStates), the losses, `gan_step` (one jitted
D-then-G step, described by a hashable `StepSpec`), sampling and the latent tools of post 001
(`interpolate`, `seed_arithmetic`). `gan_train`: `train_gan`, the run body that writes samples
per epoch, the GIF, loss curves and classifier-feature scores (`jaxunsup.fid`).

Deviations:
- D returns a logit and the loss is `bce_with_logits`, the post's BCELoss on the sigmoid computed
  stably; it equals torch's value, log clamp at −100 included, except where float32's sigmoid
  saturates (a logit above ≈ 17 with label 0), where torch's gives 100 and ours the exact value.
  `bce` is torch's BCELoss on probabilities, exactly (tested against torch).
- D sees the real and the fake batch in one forward pass of 2B images (torch makes two); without
  batch statistics the losses and gradients are the same, and dropout masks are independent
  per image either way. Dropout masks come from the step key, so they differ from torch's.
- The post trains on FashionMNIST. Without local FashionMNIST files (`data.load_fashion_mnist`)
  the run uses MNIST (the embedded 4,000 digits when no MNIST files are local); `results.json`'s
  "data" says which.
- GIF frames are mapped from [-1, 1] to [0, 255]; the post's `ToPILImage` on [-1, 1] tensors
  clipped every negative pixel to black.
- Each epoch drops the remainder of the shuffled data (none for 60,000 or 4,000 images).
- Added: the Fréchet distance in a digit classifier's feature space, the entropy of its
  predicted labels and the mean pairwise sample distance, per epoch (on `epoch_eval_samples`)
  and at the end (on `eval_samples`), with the same numbers for real images as a reference,
  and the histogram of the final samples' predicted digits.
- Options beyond the post, off by default (the post's values): `adam_b1` (Adam's β1 for both
  networks; the post uses torch's 0.9, the DCGAN paper 0.5) and `label_smoothing` (one-sided:
  D's target for real images 1 − s, Salimans et al. 2016, "Improved techniques for training
  GANs"). The quick preset changes the post's recipe in three named ways, because the post's
  recipe on 4,000 digits sits mode-collapsed for its first ~2,300 steps: batch 25 (not 100),
  `adam_b1=0.5` and `label_smoothing=0.1`, for 40 epochs (6,400 steps), without per-epoch
  scores. The default (`full`) preset stays the post's recipe.

`--n-seeds S` trains seeds `seed..seed+S-1` as one vmapped program (`train_gan` with a stacked
`GANState`): each seed's curves and scores, the table's scores as mean/std, seed 0's figures.

Run: `jaxunsup run gan-mlp --workdir runs/gan-mlp` (`--preset quick`: the few-minute recipe).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal

import flax.linen as nn
import jax.numpy as jnp
import optax

from jaxunsup import layers, seeds
from jaxunsup.data import Source
from jaxunsup.files import prepare_workdir, write_json
from jaxunsup.gan_core import (  # noqa: F401  (the GAN family's API)
    GENERATE_BATCH,
    LN2,
    GANState,
    StepSpec,
    bce,
    bce_lines,
    bce_with_logits,
    create_gan_state,
    gan_loss,
    gan_step,
    generate,
    interpolate,
    noise,
    sample,
    seed_arithmetic,
    step_for,
    step_keys,
)
from jaxunsup.gan_train import (  # noqa: F401  (the GAN family's API)
    GANRun,
    check_config,
    checked_data,
    load_data,
    score_table,
    train_gan,
)


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """Post 000 §5.1's vanilla GAN; defaults are the post's settings."""

    latent_dim: int = 128
    dropout: float = 0.3
    lr: float = 2e-4
    adam_b1: float = 0.9  # Adam's β1 for both networks (torch's default; DCGAN's paper: 0.5)
    label_smoothing: float = 0.0  # one-sided: D's target for real images is 1 − this
    batch_size: int = 100
    epochs: int = 151
    seed: int = 0
    n_seeds: int = 1
    dataset: Literal["auto", "fashion_mnist", "mnist"] = "auto"  # auto: FashionMNIST if local
    source: Source = "auto"  # `data.load_mnist`'s
    data_dir: str | None = None
    n_train: int | None = None  # None: every training image
    checkpoint_every: int = 10
    eval_samples: int = 10_000  # samples scored at the end
    epoch_eval_samples: int = 1_000  # samples scored after each epoch (0: none)
    classifier_epochs: int = 3
    classifier_dir: str | None = None  # None: the workdir


# `reproduce --quick`: 40 epochs of 4,000 images at batch 25 (6,400 steps) with Adam β1 = 0.5
# and one-sided label smoothing 0.1, no per-epoch scoring: every digit drawn (the seed's
# recipe sits collapsed for its first ~2,300 steps and needs ~4,600 at batch 100).
QUICK = {"n_train": 4000, "epochs": 40, "batch_size": 25, "adam_b1": 0.5,
         "label_smoothing": 0.1, "epoch_eval_samples": 0, "checkpoint_every": 20}  # fmt: skip


def optimizer(cfg) -> optax.GradientTransformation:
    """Each network's Adam(lr, β1 = cfg.adam_b1) (the post: torch's Adam(2e-4), β1 0.9)."""
    return optax.adam(cfg.lr, b1=cfg.adam_b1)


def step_spec(cfg) -> StepSpec:
    """The `StepSpec` of a `GANConfig` (and its subclasses)."""
    return StepSpec(cfg.latent_dim, real_label=1.0 - cfg.label_smoothing)


# --- the post's networks -------------------------------------------------------------------------
class Generator(nn.Module):
    """Post 000 §5.1's `Generator`: z [B, latent] → images [B, 28, 28, 1] in [-1, 1]."""

    latent_dim: int = 128
    hidden: tuple[int, ...] = (256, 512, 1024)

    @nn.compact
    def __call__(self, z):
        sizes = (self.latent_dim, *self.hidden, 784)
        h = z
        for i in range(len(sizes) - 1):
            h = layers.dense(sizes[i], sizes[i + 1], name=f"linear_{2 * i}")(h)
            h = nn.leaky_relu(h, 0.2) if i < len(sizes) - 2 else jnp.tanh(h)
        return h.reshape(z.shape[0], 28, 28, 1)  # [B, 784] → [B, 28, 28, 1]


class Discriminator(nn.Module):
    """Post 000 §5.1's `Discriminator` without its final Sigmoid: images → logits [B, 1]."""

    hidden: tuple[int, ...] = (1024, 512, 256)
    dropout: float = 0.3

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = x.reshape(x.shape[0], -1)  # [B, 784]; C=1 so NHWC and NCHW flatten agree
        sizes = (784, *self.hidden)
        for i in range(len(self.hidden)):
            h = nn.leaky_relu(layers.dense(sizes[i], sizes[i + 1], name=f"linear_{3 * i}")(h), 0.2)
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return layers.dense(sizes[-1], 1, name=f"linear_{3 * len(self.hidden)}")(h)


def create_state(key, cfg: GANConfig) -> GANState:
    return create_gan_state(
        key, Generator(cfg.latent_dim), Discriminator(dropout=cfg.dropout),
        optimizer(cfg), optimizer(cfg), cfg.latent_dim,
    )  # fmt: skip


train_step = step_for(StepSpec(latent_dim=128))


def run(cfg: GANConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the post's MLP GAN; writes config.json, metrics.jsonl, checkpoints, per-epoch
    sample grids, the GIF, loss curves, latent figures and results.json into `workdir`."""
    check_config(cfg)
    data = checked_data(*(data if data is not None else load_data(cfg)), cfg.n_train)
    workdir = Path(prepare_workdir(workdir, cfg))
    key_init, key_fit = seeds.split(seeds.keys(cfg.seed, cfg.n_seeds))
    state = seeds.create(lambda key: create_state(key, cfg), key_init)
    spec = GANRun("gan-mlp", step_spec(cfg), (-1.0, 1.0), bce_lines())
    results = train_gan(spec, cfg, workdir, state, data, key_fit)
    write_json(workdir / "results.json", results)
    return results
