"""Post 004's Keras autoencoders — experiments `ae-keras-mlp` and `ae-keras-cnn`.

Seed: post 004 ("AutoEncoder: dimensionality reduction", TensorFlow 2.2).
Both train on the first 3,000 MNIST images for 500 epochs, batch 300, MSE, and cluster the
latents with k-means (`jaxunsup.latent_clustering`); the post prints no number.

- §1 FFN (`ae-keras-mlp`): each image standardised over its own 784 pixels (`StandardScaler`
  on the transpose: own mean, own population std); 784 → Dense 256 ReLU → Dense 100 ReLU
  (the latent) → Dense 256 ReLU → Dense 784 linear; Adam(0.01). `linear_latent=True` is the
  post's variant (§1.3): an extra linear Dense(100) after the ReLU code is the latent.
- §2 CNN (`ae-keras-cnn`): pixels / 255; Conv2D(10, 5×5, SAME, ReLU) → MaxPooling2D(5×5,
  stride 1, VALID) (28 → 24) → Flatten (5,760, Keras's NHWC order) → Dense(196) linear, the
  latent → Reshape(14, 14, 1) → Conv2DTranspose(10, 4×4, stride 2, SAME, ReLU) (14 → 28) →
  Conv2D(1, 4×4, SAME) linear; Adam(0.005).

Keras defaults the post relied on, kept: Glorot-uniform kernels and zero biases; Adam with
β = (0.9, 0.999) and ε = 1e-7; SAME padding of an even kernel pads one more pixel on the high
side (flax's "SAME" does the same); `fit(shuffle=True)`. Layer names follow the post's
variables (`e_conv`, `e_latent`, `d_conv_t`, `x_output`; `encoder_1`, `encoder_2`,
`decoder_1`, `decoder_2` for its "layer 1/2" comments).

Deviations:
- Keras's Adam adds ε to the uncorrected √v (its "ε-hat"); optax adds it to the bias-corrected
  √v̂ (as torch does). Keras's update equals optax's with ε/√(1 − β₂ᵗ) in place of ε: 3.2e-6 at
  the first step, 1e-7 after a few thousand; next to √v̂ of gradients ≳ 1e-3 that changes the
  first updates by ≲ 0.3 % and later ones not at all. Parity is checked against torch's Adam.
- The encoder computes ReLU(pool(conv(x)) + b) (`layers.ConvMaxPool`), which equals the
  post's pool(ReLU(conv(x) + b)) (ReLU is monotone, the bias per channel), values and
  gradients; convolutions and the pool come from `layers` (`conv_impl`: on CPU the matmul
  forms, several times faster inside `fit`'s scanned epochs).
- The post's §2 code uses `MaxPooling2D` without importing it (a NameError); jaxunsup has it.
- k-means runs on the held-out test images' latents (the post clusters its training images).
- Each epoch drops the remainder of the shuffled data (none with 3,000 images at batch 300).

Run: `jaxunsup run ae-keras-mlp --workdir runs/ae-keras-mlp` (or `ae-keras-cnn`).
"""

from __future__ import annotations

import dataclasses
import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxunsup import ae_run, autoencoder, layers, seeds, training
from jaxunsup.autoencoder import (  # noqa: F401  (the model's API; Keras's loss='mse' step)
    decode,
    encode,
    loss_fn,
    reconstruct,
    train_step,
)
from jaxunsup.data import Source
from jaxunsup.files import prepare_workdir, write_json

KERAS_ADAM_EPS = 1e-7  # tf.keras.optimizers.Adam's default epsilon


@dataclasses.dataclass(frozen=True)
class KerasMLPConfig:
    """Post 004 §1's FFN autoencoder; defaults are the post's settings."""

    hidden: int = 256
    latent: int = 100
    linear_latent: bool = False  # the post's §1.3 variant: an extra linear Dense(latent)
    lr: float = 0.01
    batch_size: int = 300
    epochs: int = 500
    seed: int = 0
    n_seeds: int = 1
    source: Source = "auto"  # `data.load_mnist`'s
    data_dir: str | None = None
    n_train: int | None = 3000  # the post's `mnist.data[:3000]`; None: every training image
    n_test: int | None = None
    checkpoint_every: int = 100


@dataclasses.dataclass(frozen=True)
class KerasCNNConfig:
    """Post 004 §2's CNN autoencoder; defaults are the post's settings."""

    filters: int = 10
    lr: float = 0.005
    batch_size: int = 300
    epochs: int = 500
    seed: int = 0
    n_seeds: int = 1
    source: Source = "auto"  # `data.load_mnist`'s
    data_dir: str | None = None
    n_train: int | None = 3000
    n_test: int | None = None
    checkpoint_every: int = 100
    conv_impl: layers.ConvImpl = "auto"  # "xla" | "matmul"; auto: matmul on CPU only


def _dense(features: int, name: str) -> nn.Dense:
    """Keras's `Dense` defaults: Glorot-uniform kernel, zero bias."""
    return nn.Dense(features, kernel_init=nn.initializers.glorot_uniform(), name=name)


class KerasMLPAE(nn.Module):
    """Post 004 §1: 784 → 256 → 100 (ReLU latent) [→ 100 linear] → 256 → 784 linear."""

    hidden: int = 256
    latent: int = 100
    linear_latent: bool = False

    def setup(self):
        self.encoder_1 = _dense(self.hidden, "encoder_1")
        self.encoder_2 = _dense(self.latent, "encoder_2")
        self.e_latent = _dense(self.latent, "e_latent") if self.linear_latent else None
        self.decoder_1 = _dense(self.hidden, "decoder_1")
        self.decoder_2 = _dense(784, "decoder_2")

    def encode(self, x):
        h = x.reshape(x.shape[0], -1)  # [B, 784]
        h = nn.relu(self.encoder_2(nn.relu(self.encoder_1(h))))
        return self.e_latent(h) if self.linear_latent else h  # [B, latent]

    def decode(self, z):
        h = nn.relu(self.decoder_1(z))
        return self.decoder_2(h).reshape(z.shape[0], 28, 28, 1)  # [B, 28, 28, 1]

    def __call__(self, x):
        return self.decode(self.encode(x))


class KerasCNNAE(nn.Module):
    """Post 004 §2: Conv 5×5 → MaxPool 5×5/1 → Dense(196) latent → ConvT 4×4/2 → Conv 4×4."""

    filters: int = 10
    conv_impl: str = "auto"  # `layers.resolve_impl`

    def setup(self):
        glorot, impl = nn.initializers.glorot_uniform(), self.conv_impl
        conv = functools.partial(layers.Conv, padding="SAME", kernel_init=glorot, impl=impl)
        self.e_conv = layers.ConvMaxPool(
            self.filters, (5, 5), padding="SAME", kernel_init=glorot, impl=impl,
            window=(5, 5), pool_strides=(1, 1),
        )  # fmt: skip
        self.e_latent = _dense(14 * 14, "e_latent")
        self.d_conv_t = layers.ConvTranspose(
            self.filters, (4, 4), (2, 2), padding="SAME", kernel_init=glorot, impl=impl
        )
        self.x_output = conv(1, (4, 4))

    def encode(self, x):
        h = nn.relu(self.e_conv(x))  # conv 28×28, then the 5×5/1 pool: [B, 24, 24, filters]
        h = h.reshape(h.shape[0], -1)  # [B, 24·24·filters], Keras's NHWC Flatten
        return self.e_latent(h)  # [B, 196]

    def decode(self, z):
        h = z.reshape(z.shape[0], 14, 14, 1)  # [B, 14, 14, 1], Keras's Reshape
        h = nn.relu(self.d_conv_t(h))  # [B, 28, 28, filters]
        return self.x_output(h)  # [B, 28, 28, 1]

    def __call__(self, x):
        return self.decode(self.encode(x))


def standardize_per_image(images) -> np.ndarray:
    """Each image minus its own mean over its own population std (`StandardScaler` on the
    transpose, as post 004 §1; a constant image maps to zeros)."""
    arr = np.asarray(images, dtype=np.float64)
    flat = arr.reshape(len(arr), -1)  # [N, H·W·C]
    std = flat.std(axis=1, keepdims=True)
    out = (flat - flat.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
    return out.reshape(arr.shape).astype(np.float32)


def _model(cfg):
    if isinstance(cfg, KerasMLPConfig):
        return KerasMLPAE(hidden=cfg.hidden, latent=cfg.latent, linear_latent=cfg.linear_latent)
    return KerasCNNAE(filters=cfg.filters, conv_impl=cfg.conv_impl)


def create_state(key: jax.Array, cfg: KerasMLPConfig | KerasCNNConfig, example: jax.Array):
    """The model `cfg` describes with Keras's init, and Adam(cfg.lr, eps=1e-7)."""
    training.check_shape(
        "example", example, (28, 28, 1), "28×28×1 images (the post's models fix the size)",
        "pass a batch of the training images, e.g. images[:1]",
    )  # fmt: skip
    model = _model(cfg)
    params = autoencoder.init_params(model, key, example[:1])
    tx = optax.adam(cfg.lr, eps=KERAS_ADAM_EPS)
    return training.create_train_state(model.apply, params, tx)


def restore(workdir: str | os.PathLike, cfg: KerasMLPConfig | KerasCNNConfig):
    """The trained model in `workdir` (its latest checkpoint); returns (state, cfg).

    `cfg` is a Config instance or class (`KerasMLPConfig` / `KerasCNNConfig`); a class is
    filled from the run's `config.json`.
    """
    return autoencoder.restore_run(create_state, workdir, cfg)


def check_config(cfg: KerasMLPConfig | KerasCNNConfig) -> None:
    """Raises ValueError naming the field of a bad `cfg`."""
    sizes = ("hidden", "latent") if isinstance(cfg, KerasMLPConfig) else ("filters",)
    autoencoder.check_training(cfg, *sizes)


def _run(name: str, cfg, workdir, data, preprocess) -> dict:
    check_config(cfg)
    raw = data if data is not None else ae_run.load_data(cfg)
    train, test = ae_run.checked_data(*raw, n_train=cfg.n_train, n_test=cfg.n_test)
    if cfg.batch_size > len(train.images):
        raise ValueError(
            f"batch_size={cfg.batch_size} is larger than the {len(train.images)} training "
            "images; lower batch_size or raise n_train"
        )
    images, test_inputs = preprocess(train.images), preprocess(test.images)
    workdir = prepare_workdir(workdir, cfg)
    key_init, key_fit = seeds.split(seeds.keys(cfg.seed, cfg.n_seeds))
    state = autoencoder.create_states(create_state, key_init, cfg, jnp.asarray(images[:1]))
    shown = (float(test_inputs[:10].min()), float(test_inputs[:10].max()))
    state, results = ae_run.train_and_evaluate(
        name, cfg, workdir, state, train_step, images, test_inputs, test, key=key_fit,
        value_range=shown,
    )  # fmt: skip
    write_json(workdir / "results.json", results)
    return results


def run_mlp(cfg: KerasMLPConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains post 004 §1's FFN AE on per-image standardised digits; writes config.json,
    metrics.jsonl, checkpoints, figures and results.json; returns the results dict."""
    return _run("ae-keras-mlp", cfg, workdir, data, standardize_per_image)


def run_cnn(cfg: KerasCNNConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains post 004 §2's CNN AE on pixels / 255 (our images are already in [0, 1])."""
    return _run("ae-keras-cnn", cfg, workdir, data, lambda x: x)
