"""Convolutional autoencoder of post 000 §4 — experiment `ae-conv`.

Seed: post 000 §4 ("합성곱 오토인코더"), with k = 16 channels:
encoder Conv(1,16,3,s2) → Conv(16,32,3,s2) → Conv(32,64,3,s1) (28 → 13 → 6 → 4, ReLU after
each) → `Flatten` (1024) → Linear(1024,10) + ReLU; decoder Linear(10,1024) + ReLU →
`Deflatten` (64,4,4) → ConvT(64,32,3,s1) → ConvT(32,16,3,s2) → ConvT(16,1,3,s2,output_padding=1)
(4 → 6 → 13 → 28, ReLU between, Sigmoid last). MSE, Adam(1e-3), batch 50 (the post's
`trainloader`), 51 epochs. The post prints losses every 10 epochs but its output is not shown,
so there is no seed number to compare with.

Layers have torch's default init and padding (`layers.dense`, `layers.conv`,
`layers.conv_transpose`; `conv_impl` picks how the convolutions compute, see `layers.py`).
Names mirror the torch
`nn.Sequential` indices (`encoder.7` → `encoder_7`). Inside the model activations are NHWC;
the code layer sees the feature map in torch's NCHW flatten order (and `Deflatten` restores it),
so a torch `state_dict` converts with `parity.convert` unchanged. The ConvTranspose with
`output_padding=1` pads the high side, as torch does.

Deviations: each epoch drops the remainder of the shuffled data (none with 60,000 or 4,000
images at batch 50); the test codes are clustered with post 004's k-means
(`jaxunsup.latent_clustering`), which the post does not do.

Some seeds stall (the codes die and the test MSE stays near a black image's 0.11): with
`--n-seeds S` the S seeds train as one vmapped program and `results.json` names the seeds whose
test MSE ends above 0.1 (`stalled_seeds`).

Run: `jaxunsup run ae-conv --workdir runs/ae-conv` (the embedded set when no MNIST is local);
`--n-seeds 8` trains seeds 0-7 at once.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxunsup import ae_run, autoencoder, layers, seeds, training
from jaxunsup.autoencoder import (  # noqa: F401  (the model's API; the family's MSE step)
    decode,
    encode,
    loss_fn,
    reconstruct,
    train_step,
)
from jaxunsup.data import Source
from jaxunsup.files import prepare_workdir, write_json

STALL_MSE = 0.1  # a seed whose test MSE stays above this has stalled (a black image: 0.11)


@dataclasses.dataclass(frozen=True)
class ConvConfig:
    """Post 000 §4's convolutional autoencoder; defaults are the post's settings."""

    channels: int = 16  # the post's k
    latent: int = 10
    lr: float = 1e-3
    batch_size: int = 50
    epochs: int = 51
    seed: int = 0
    n_seeds: int = 1
    source: Source = "auto"  # `data.load_mnist`'s
    data_dir: str | None = None
    n_train: int | None = None  # None: every training image
    n_test: int | None = None
    checkpoint_every: int = 10
    conv_impl: layers.ConvImpl = "auto"  # "xla" | "matmul"; auto: matmul on CPU only


class ConvAE(nn.Module):
    """The post's `Autoencoder` of §4 for 28×28×1 images (NHWC in, NHWC out)."""

    channels: int = 16
    latent: int = 10
    conv_impl: str = "auto"  # `layers.resolve_impl`
    code_relu: bool = True  # the post's ReLU on the code; False: a linear code

    def setup(self):
        k = self.channels
        conv = functools.partial(layers.conv, impl=self.conv_impl)
        conv_t = functools.partial(layers.conv_transpose, impl=self.conv_impl)
        self.encoder_0 = conv(1, k, 3, stride=2, name="encoder_0")  # 28 → 13
        self.encoder_2 = conv(k, 2 * k, 3, stride=2, name="encoder_2")  # 13 → 6
        self.encoder_4 = conv(2 * k, 4 * k, 3, stride=1, name="encoder_4")  # 6 → 4
        self.encoder_7 = layers.dense(16 * 4 * k, self.latent, name="encoder_7")
        self.decoder_0 = layers.dense(self.latent, 16 * 4 * k, name="decoder_0")
        self.decoder_3 = conv_t(4 * k, 2 * k, 3, stride=1, name="decoder_3")  # 4 → 6
        self.decoder_5 = conv_t(2 * k, k, 3, stride=2, name="decoder_5")  # 6 → 13
        self.decoder_7 = conv_t(k, 1, 3, stride=2, output_padding=1, name="decoder_7")  # 13 → 28

    def encode(self, x):
        h = nn.relu(self.encoder_0(x))
        h = nn.relu(self.encoder_2(h))
        h = nn.relu(self.encoder_4(h))  # [B, 4, 4, 4k]
        h = h.transpose(0, 3, 1, 2).reshape(h.shape[0], -1)  # [B, 4k·4·4], torch's NCHW order
        z = self.encoder_7(h)  # [B, latent]
        return nn.relu(z) if self.code_relu else z

    def decode(self, z):
        h = nn.relu(self.decoder_0(z))  # [B, 4k·16]
        h = h.reshape(z.shape[0], 4 * self.channels, 4, 4).transpose(0, 2, 3, 1)  # [B, 4, 4, 4k]
        h = nn.relu(self.decoder_3(h))  # [B, 6, 6, 2k]
        h = nn.relu(self.decoder_5(h))  # [B, 13, 13, k]
        return nn.sigmoid(self.decoder_7(h))  # [B, 28, 28, 1]

    def __call__(self, x):
        return self.decode(self.encode(x))


def create_state(key: jax.Array, cfg: ConvConfig, example: jax.Array):
    training.check_shape(
        "example", example, (28, 28, 1), "28×28×1 images (its Linear(1024) fixes the size)",
        "pass a batch of the training images, e.g. images[:1]",
    )  # fmt: skip
    model = ConvAE(channels=cfg.channels, latent=cfg.latent, conv_impl=cfg.conv_impl)
    params = autoencoder.init_params(model, key, example[:1])
    return training.create_train_state(model.apply, params, optax.adam(cfg.lr))


def restore(workdir: str | os.PathLike, cfg: ConvConfig | None = None):
    """The trained conv AE in `workdir` (its latest checkpoint); returns (state, cfg)."""
    return autoencoder.restore_run(create_state, workdir, ConvConfig if cfg is None else cfg)


def check_config(cfg: ConvConfig) -> None:
    """Raises ValueError naming the field of a bad `cfg`."""
    autoencoder.check_training(cfg, "channels", "latent")


def run(cfg: ConvConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the conv AE; writes config.json, metrics.jsonl, checkpoints, figures and
    results.json into `workdir`; returns the results dict."""
    check_config(cfg)
    raw = data if data is not None else ae_run.load_data(cfg)
    train, test = ae_run.checked_data(*raw, n_train=cfg.n_train, n_test=cfg.n_test)
    workdir = prepare_workdir(workdir, cfg)
    key_init, key_fit = seeds.split(seeds.keys(cfg.seed, cfg.n_seeds))
    state = autoencoder.create_states(create_state, key_init, cfg, jnp.asarray(train.images[:1]))
    state, results = ae_run.train_and_evaluate(
        "ae-conv", cfg, workdir, state, train_step, train.images, test.images, test, key=key_fit
    )
    if cfg.n_seeds > 1:  # the seeds where training stalls (worse than a black image: 0.11)
        stalled = [s for s, v in zip(results["seeds"], results["test_mse_per_seed"],
                                     strict=True) if v > STALL_MSE]  # fmt: skip
        results["stalled_seeds"] = stalled
        results["table"].insert(
            2,
            {
                "metric": f"seeds stalled (test MSE > {STALL_MSE})",
                "ours": f"{len(stalled)} of {cfg.n_seeds}",
                "seed": None,
            },
        )
    write_json(workdir / "results.json", results)
    return results
