"""DCGAN of post 000 §5.2 — experiment `dcgan`.

Seed: post 000 §5.2 ("Deep Convolutional GAN"). Generator: z [B, 128] seen as a
1×1 image with 128 channels → ConvT(128,256,3,s1) → ConvT(256,128,3,s2) → ConvT(128,64,3,s2) →
ConvT(64,1,2,s2,p1) (1 → 3 → 7 → 15 → 28), ReLU between, Tanh last. Discriminator:
Conv(1,128,3,s2,p1) → Conv(128,256,3,s2,p1) → Conv(256,256,3,s2,p1) → Conv(256,1,3,s2)
(28 → 14 → 7 → 4 → 1), LeakyReLU(0.2) + Dropout(0.5) after the first three, Sigmoid last.
No layer has a bias. The post shows only the networks and says the rest is §5.1's GAN, so the
data ([-1, 1]), BCE, two Adam(2e-4), batch 100, the D-then-G step and the 151 epochs are those of
`jaxunsup.gan`, whose step (`gan.gan_step`) and run body (`gan.train_gan`) this module reuses.

Layers are `layers.conv` / `layers.conv_transpose` (torch's default init; torch's ConvTranspose
padding: padding p becomes k − 1 − p on each side of the dilated input, so the last layer's
(2, s2, p1) maps 15 to 28 exactly as torch does); `conv_impl` picks how they compute. Names
mirror the torch `nn.Sequential` indices (`conv.3` → `conv_3`).

Deviations: those of `jaxunsup.gan` (D returns a logit and the loss is the stable BCE; one D
forward on real and fake together; FashionMNIST only when local files exist, else MNIST; GIF
frames rescaled from [-1, 1]; the classifier-feature scores are added) and its options, off by
default: `adam_b1` (Adam's β1) and `label_smoothing` (one-sided, D's real target 1 − s); and
`use_bias` (off by default: the post's layers have none). Without biases both networks are
positively homogeneous (f(c·x) = c·f(x) for c > 0 before the Tanh/Sigmoid): G cannot draw the
digits' constant −1 background except through its ReLU features, starts near the grey 0
image, and D's logit for that image is ≈ 0 (D(fake) ≈ 0.5) whatever D learns, so the seed's
recipe stays a grey blob (README's dcgan row). torch's default bias on every layer lets G
draw the background at once (tests/test_dcgan.py).

The quick preset changes the post's recipe in five named ways so that recognisable digits come
within ~600 steps: `use_bias=True`, `adam_b1=0.5`, `label_smoothing=0.1`, `lr=1e-3` (not 2e-4)
and batch 32 (not 100), for 5 epochs of 4,000 images, without per-epoch scores. The default
(`full`) preset stays the post's recipe.

Run: `jaxunsup run dcgan --workdir runs/dcgan` (`--preset quick`: the few-minute recipe).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import flax.linen as nn
import jax.numpy as jnp

from jaxunsup import gan, layers, seeds
from jaxunsup.files import prepare_workdir, write_json
from jaxunsup.gan import generate, interpolate, sample, seed_arithmetic  # noqa: F401  (the API)


@dataclasses.dataclass(frozen=True)
class DCGANConfig(gan.GANConfig):
    """Post 000 §5.2's DCGAN with §5.1's training settings (the post's defaults); only the
    discriminator's dropout differs from `gan.GANConfig`."""

    dropout: float = 0.5
    conv_impl: layers.ConvImpl = "auto"  # "xla" | "matmul"; auto: matmul on CPU only
    use_bias: bool = False  # the post's layers have none; True: torch's default bias on each


# `reproduce --quick`: 5 epochs of 4,000 images at batch 32 (625 steps) with five named changes
# to the post's recipe: `use_bias` (torch's default bias on every layer; without it G stays a grey
# blob), Adam β1 0.5, one-sided label smoothing 0.1, lr 1e-3 (not 2e-4) and batch 32 (not 100);
# no per-epoch scores. Recognisable digits (README's dcgan row).
QUICK = {"use_bias": True, "adam_b1": 0.5, "label_smoothing": 0.1, "lr": 1e-3, "batch_size": 32,
         "n_train": 4000, "epochs": 5, "epoch_eval_samples": 0, "checkpoint_every": 5}  # fmt: skip


class Generator(nn.Module):
    """Post 000 §5.2's `Generator`: z [B, latent] → images [B, 28, 28, 1] in [-1, 1]."""

    latent_dim: int = 128
    conv_impl: str = "auto"  # `layers.resolve_impl`
    use_bias: bool = False  # the post: no bias

    def setup(self):
        ct = functools.partial(layers.conv_transpose, impl=self.conv_impl)
        self.conv_0 = ct(self.latent_dim, 256, 3, 1, use_bias=self.use_bias, name="conv_0")  # 1 → 3
        self.conv_2 = ct(256, 128, 3, 2, use_bias=self.use_bias, name="conv_2")  # 3 → 7
        self.conv_4 = ct(128, 64, 3, 2, use_bias=self.use_bias, name="conv_4")  # 7 → 15
        self.conv_6 = ct(64, 1, 2, 2, padding=1, use_bias=self.use_bias, name="conv_6")  # 15 → 28

    def __call__(self, z):
        h = z.reshape(z.shape[0], 1, 1, self.latent_dim)  # [B, 1, 1, 128] = torch's view
        for layer in (self.conv_0, self.conv_2, self.conv_4):
            h = nn.relu(layer(h))
        return jnp.tanh(self.conv_6(h))  # [B, 28, 28, 1]


class Discriminator(nn.Module):
    """Post 000 §5.2's `Discriminator` without its final Sigmoid: images → logits [B, 1]."""

    dropout: float = 0.5
    conv_impl: str = "auto"  # `layers.resolve_impl`
    use_bias: bool = False  # the post: no bias

    def setup(self):
        conv = functools.partial(layers.conv, impl=self.conv_impl)
        self.conv_0 = conv(1, 128, 3, 2, 1, use_bias=self.use_bias, name="conv_0")  # 28 → 14
        self.conv_3 = conv(128, 256, 3, 2, 1, use_bias=self.use_bias, name="conv_3")  # 14 → 7
        self.conv_6 = conv(256, 256, 3, 2, 1, use_bias=self.use_bias, name="conv_6")  # 7 → 4
        self.conv_9 = conv(256, 1, 3, 2, use_bias=self.use_bias, name="conv_9")  # 4 → 1
        self.drop = nn.Dropout(self.dropout)

    def __call__(self, x, train: bool = False):
        h = x
        for layer in (self.conv_0, self.conv_3, self.conv_6):
            h = self.drop(nn.leaky_relu(layer(h), 0.2), deterministic=not train)
        return self.conv_9(h).reshape(x.shape[0], 1)  # [B, 1, 1, 1] → [B, 1]


def create_state(key, cfg: DCGANConfig) -> gan.GANState:
    return gan.create_gan_state(
        key, Generator(cfg.latent_dim, cfg.conv_impl, cfg.use_bias),
        Discriminator(cfg.dropout, cfg.conv_impl, cfg.use_bias),
        gan.optimizer(cfg), gan.optimizer(cfg), cfg.latent_dim,
    )  # fmt: skip


train_step = gan.step_for(gan.StepSpec(latent_dim=128))  # the same step as the MLP GAN's


def run(cfg: DCGANConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the post's DCGAN; writes the same artefacts as `gan.run` into `workdir`."""
    gan.check_config(cfg)
    data = gan.checked_data(*(data if data is not None else gan.load_data(cfg)), cfg.n_train)
    workdir = Path(prepare_workdir(workdir, cfg))
    key_init, key_fit = seeds.split(seeds.keys(cfg.seed, cfg.n_seeds))
    state = seeds.create(lambda key: create_state(key, cfg), key_init)
    spec = gan.GANRun("dcgan", gan.step_spec(cfg), (-1.0, 1.0), gan.bce_lines())
    results = gan.train_gan(spec, cfg, workdir, state, data, key_fit)
    write_json(workdir / "results.json", results)
    return results
