"""The small MNIST GAN of post 001 and its sequence of fixes — experiment `gan-mnist-simple`.

Seed: post 001 ("MNIST GAN example", after T. Rashid's *Make Your First GAN
with PyTorch*). MNIST from a CSV file scaled to [0, 1] (`data.load_mnist(source="csv")` reads
it). Discriminator 784 → 200 → 1, generator seed → 200 → 784, Sigmoid activations and output,
MSE, SGD(0.01). One image per step and three updates per image: D on the real image (target 1),
D on the generator's detached output (target 0), then G through the updated D (target 1). The
post shows the result collapsing onto one digit shape and applies fixes in order; each fix is a
named *variant* here, cumulative like the post's:

| variant | change |
|---|---|
| `mse-sgd` | the first GAN: Sigmoid, MSE, SGD 0.01, a 1-number U[0, 1) seed |
| `bce` | BCE instead of MSE (equilibrium loss ln 2 instead of 0.25) |
| `leaky-layernorm` | LeakyReLU(0.02) + LayerNorm(200) (torch's eps 1e-5) after the first layer |
| `adam` | Adam(1e-4) for both networks |
| `seed100` | a 100-number seed |
| `randn` | the generator's seeds from N(0, 1) (`torch.randn`) instead of U[0, 1) |

The post's "D performance check" (D alone trained on real images against U[0, 1) noise images,
then shown both) is `discriminator_check`; those uniform "random images" are what the post keeps
uniform when it switches the generator's seeds to randn, so `randn` draws every generator seed
(in the D-fake and the G update) from N(0, 1), as the book's final code does.

`run` trains every variant in `cfg.variants` into `workdir/<variant>/` (its own checkpoints,
metrics, figures and scores) with one shared digit classifier, and reports the classifier-feature
Fréchet distance, predicted-label entropy and mean pairwise distance per variant: the post's
story (mode collapse until the fixes) in numbers.

Deviations:
- `batch_size` (default 1, the post's) averages the losses over a batch for speed; at 1 the
  scanned epoch runs the post's per-image loop.
- D returns a logit; the losses are `gan.bce_with_logits` and the MSE of its sigmoid.
- The post logs every 10th loss; `metrics.jsonl` has per-epoch means (D's is the mean of its two
  updates, so both equilibria, 0.25 and ln 2, hold for it).
- The post trains one pass over MNIST's 60,000 images. With the embedded 4,000 digits that is 15
  epochs (`--epochs 15`); the default stays 1 epoch, the post's loop.

Run: `jaxunsup run gan-mnist-simple --workdir runs/gan-simple [--variants mse-sgd,randn]`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxunsup import data as data_lib
from jaxunsup import gan, layers, training
from jaxunsup.data import Source
from jaxunsup.files import prepare_workdir, write_json

# `reproduce --quick`: every variant, one epoch of the embedded 4,000 digits at batch 1.
QUICK = {"n_train": 4000, "epochs": 1, "eval_samples": 5000, "epoch_eval_samples": 0}


class Variant(NamedTuple):
    loss: str  # "mse" | "bce"
    leaky_layernorm: bool
    optimizer: str  # "sgd" | "adam"
    lr: float
    seed_dim: int
    seed_noise: str  # "uniform" | "normal"


VARIANTS = {
    "mse-sgd": Variant("mse", False, "sgd", 0.01, 1, "uniform"),
    "bce": Variant("bce", False, "sgd", 0.01, 1, "uniform"),
    "leaky-layernorm": Variant("bce", True, "sgd", 0.01, 1, "uniform"),
    "adam": Variant("bce", True, "adam", 1e-4, 1, "uniform"),
    "seed100": Variant("bce", True, "adam", 1e-4, 100, "uniform"),
    "randn": Variant("bce", True, "adam", 1e-4, 100, "normal"),
}


@dataclasses.dataclass(frozen=True)
class SimpleGANConfig:
    """Post 001's GAN; defaults are the post's settings, every variant in the post's order."""

    variants: tuple[str, ...] = tuple(VARIANTS)
    batch_size: int = 1
    epochs: int = 1
    seed: int = 0
    source: Source = "auto"  # "csv" reads the post's mnist_train.csv / mnist_test.csv
    data_dir: str | None = None
    n_train: int | None = None
    checkpoint_every: int = 1
    eval_samples: int = 10_000
    epoch_eval_samples: int = 1_000
    classifier_epochs: int = 3
    classifier_dir: str | None = None  # None: the workdir (shared by the variants)
    d_check: bool = True  # run the post's discriminator check first


def _sequential(x, in_dim: int, out_dim: int, leaky_layernorm: bool):
    """The post's `self.model`: Linear → (Sigmoid | LeakyReLU(0.02) + LayerNorm) → Linear,
    created inside the caller's compact scope so the names are torch's (`model.0` → `model_0`)."""
    h = layers.dense(in_dim, 200, name="model_0")(x)
    if leaky_layernorm:
        h = nn.LayerNorm(epsilon=1e-5, name="model_2")(nn.leaky_relu(h, 0.02))
        return layers.dense(200, out_dim, name="model_3")(h)
    return layers.dense(200, out_dim, name="model_2")(nn.sigmoid(h))


class Discriminator(nn.Module):
    """Post 001's discriminator without its final Sigmoid: images → logits [B, 1]."""

    leaky_layernorm: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train  # no dropout
        h = x.reshape(x.shape[0], -1)  # [B, 784]
        return _sequential(h, 784, 1, self.leaky_layernorm)


class Generator(nn.Module):
    """Post 001's generator: seeds [B, seed_dim] → images [B, 28, 28, 1] in [0, 1]."""

    seed_dim: int = 1
    leaky_layernorm: bool = False

    @nn.compact
    def __call__(self, z):
        h = _sequential(z, self.seed_dim, 784, self.leaky_layernorm)
        return nn.sigmoid(h).reshape(z.shape[0], 28, 28, 1)  # [B, 784] → [B, 28, 28, 1]


def spec_of(variant: Variant) -> gan.StepSpec:
    return gan.StepSpec(
        latent_dim=variant.seed_dim, noise=variant.seed_noise, loss=variant.loss,
        separate_d_steps=True,
    )  # fmt: skip


def create_state(key, variant: Variant) -> gan.GANState:
    def tx():
        return optax.sgd(variant.lr) if variant.optimizer == "sgd" else optax.adam(variant.lr)

    return gan.create_gan_state(
        key, Generator(variant.seed_dim, variant.leaky_layernorm),
        Discriminator(variant.leaky_layernorm), tx(), tx(), variant.seed_dim,
    )  # fmt: skip


def train_step_for(variant: Variant):
    """The module-level step of `variant` (cached: one object, one compilation per variant)."""
    return gan.step_for(spec_of(variant))


# --- the post's discriminator check -----------------------------------------------------------
def _d_check_loss(params, apply_fn, batch, key):
    """D.train(real, 1.0) then D.train(rand(784), 0.0) — here the MSE of one of them."""
    x, target = batch
    return jnp.mean((jax.nn.sigmoid(apply_fn(params, x)) - target) ** 2), {}


_d_check_update = functools.partial(training.gradient_step, loss_fn=_d_check_loss)


@functools.partial(jax.jit, donate_argnums=0)
def d_check_step(state, batch, key):
    """The post's D check: an update on the real images (target 1), then one on U[0, 1) noise
    images (target 0); the loss reported is their mean."""
    key = jax.random.fold_in(key, state.step)
    ones, zeros = jnp.ones((batch.shape[0], 1)), jnp.zeros((batch.shape[0], 1))
    state, m_real = _d_check_update(state, (batch, ones), key)
    noise_images = jax.random.uniform(key, batch.shape)
    state, m_noise = _d_check_update(state, (noise_images, zeros), key)
    return state, {"loss": (m_real["loss"] + m_noise["loss"]) / 2}


def discriminator_check(images, test_images, *, key, batch_size: int = 1, epochs: int = 1) -> dict:
    """Trains the post's first D (Sigmoid, MSE, SGD 0.01) on `images` against uniform noise and
    returns its mean output on `test_images` and on as many noise images."""
    k_init, k_fit, k_noise = jax.random.split(key, 3)
    model = Discriminator()
    state = training.create_train_state(
        model.apply, model.init(k_init, jnp.zeros((1, 28, 28, 1))), optax.sgd(0.01)
    )
    state, history = training.fit(
        state, d_check_step, images, key=k_fit, epochs=epochs, batch_size=batch_size,
        verbose=False, progress=False,
    )  # fmt: skip
    noise_images = jax.random.uniform(k_noise, np.shape(test_images))
    d_real = jax.nn.sigmoid(model.apply(state.params, jnp.asarray(test_images)))
    d_noise = jax.nn.sigmoid(model.apply(state.params, noise_images))
    return {"d_real": float(d_real.mean()), "d_noise": float(d_noise.mean()),
            "loss": history[-1]["loss"]}  # fmt: skip


# --- run ----------------------------------------------------------------------------------------
def check_config(cfg: SimpleGANConfig) -> None:
    gan.check_config(cfg)
    if not cfg.variants or any(v not in VARIANTS for v in cfg.variants):
        raise ValueError(
            f"variants must be a non-empty subset of {', '.join(VARIANTS)}, got {cfg.variants!r}"
        )


def load_data(cfg: SimpleGANConfig):
    load = functools.partial(data_lib.load_mnist, source=cfg.source, data_dir=cfg.data_dir)
    return load("train"), load("test")


def run(cfg: SimpleGANConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains each variant of `cfg.variants` into `workdir/<variant>/` and writes the summary
    `results.json` (one table row per variant and score) into `workdir`."""
    check_config(cfg)
    train, test = gan.checked_data(*(data if data is not None else load_data(cfg)), cfg.n_train)
    workdir = Path(prepare_workdir(workdir, cfg))
    shared = dataclasses.replace(cfg, classifier_dir=cfg.classifier_dir or str(workdir))
    key = jax.random.key(cfg.seed)
    results: dict = {"experiment": "gan-mnist-simple", "data": train.source, "variants": {}}
    table, figures = [], []
    if cfg.d_check:
        check = discriminator_check(
            train.images, test.images, key=jax.random.fold_in(key, 999), batch_size=cfg.batch_size
        )
        results["d_check"] = check
        table.append({"metric": "D check (post's first D vs U[0,1) images): mean D(real), "
                      "D(noise)", "ours": [round(check["d_real"], 3), round(check["d_noise"], 3)],
                      "seed": "≈1, ≈0 (shown, not printed)"})  # fmt: skip
    for i, name in enumerate(cfg.variants):
        variant = VARIANTS[name]
        key_init, key_fit = jax.random.split(jax.random.fold_in(key, i))
        lines = {"MSE equilibrium 0.25": 0.25} if variant.loss == "mse" else {"ln 2": gan.LN2}
        sub = Path(prepare_workdir(workdir / name, dataclasses.replace(shared, variants=(name,))))
        spec = gan.GANRun(f"gan-mnist-simple/{name}", spec_of(variant), (0.0, 1.0), lines)
        res = gan.train_gan(
            spec, shared, sub, create_state(key_init, variant), (train, test), key_fit
        )
        write_json(sub / "results.json", res)
        results["variants"][name] = {k: res[k] for k in ("scores", "real_scores", "fid_curve")}
        s, r = res["scores"], res["real_scores"]
        table.append({"metric": f"{name}: FD / label entropy / pairwise distance (real "
                      f"{r['fid']:.2f} / {r['label_entropy']:.2f} / "
                      f"{r['mean_pairwise_distance']:.2f})",
                      "ours": [round(s["fid"], 2), round(s["label_entropy"], 3),
                               round(s["mean_pairwise_distance"], 2)], "seed": None})  # fmt: skip
        figures += [f"{name}/{f}" for f in ("samples.png", "loss.png", "interpolation.png")]
        results["classifier"] = res["classifier"]
    figures.append(f"{cfg.variants[-1]}/seed_arithmetic.png")
    acc = results["classifier"]["test_accuracy"]
    table.append({"metric": "feature classifier's test accuracy", "ours": round(acc, 4),
                  "seed": None})  # fmt: skip
    results.update(figures=figures, table=table)
    write_json(workdir / "results.json", results)
    return results
