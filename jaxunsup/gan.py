"""MLP GAN of post 000 §5.1 — experiment `gan-mlp` — and the machinery every GAN here shares.

Seed: `000_1926af310522df2b.txt` §5.1 ("Vanilla GAN"). Images normalised to [-1, 1]; generator
128 → 256 → 512 → 1024 → 784 with LeakyReLU(0.2) and Tanh; discriminator 784 → 1024 → 512 → 256
→ 1 with LeakyReLU(0.2) + Dropout(0.3) and a Sigmoid; `nn.BCELoss`; two Adam(2e-4); batch 100;
151 epochs. Each step trains D on a real batch (label 1) plus the generator's detached output on
fresh N(0, 1) noise (label 0), then G on new noise with label 1 through the *updated* D (still in
train mode, so with dropout). After every epoch the post renders 64 fixed-noise samples into a
grid and makes a GIF of the grids; it plots the two loss curves.

The shared machinery (`dcgan` and `gan_simple` use it): `GANState` (two TrainStates), the losses,
`gan_step` (one jitted D-then-G step, described by a hashable `StepSpec`), sampling, the latent
tools of post 001 (`interpolate`, `seed_arithmetic`) and `train_gan`, the run body that writes
samples per epoch, the GIF, loss curves and classifier-feature scores (`jaxunsup.fid`).

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
  and at the end (on `eval_samples`), with the same numbers for real images as a reference.

`--n-seeds S` trains seeds `seed..seed+S-1` as one vmapped program (`train_gan` with a stacked
`GANState`): each seed's curves and scores, the table's scores as mean/std, seed 0's figures.

Run: `jaxunsup run gan-mlp --workdir runs/gan-mlp` (`--preset quick` for a one-minute run).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from pathlib import Path
from typing import Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxunsup import data as data_lib
from jaxunsup import fid, layers, seeds, training
from jaxunsup.files import prepare_workdir, write_json

LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """Post 000 §5.1's vanilla GAN; defaults are the post's settings."""

    latent_dim: int = 128
    dropout: float = 0.3
    lr: float = 2e-4
    batch_size: int = 100
    epochs: int = 151
    seed: int = 0
    n_seeds: int = 1
    dataset: Literal["auto", "fashion_mnist", "mnist"] = "auto"  # auto: FashionMNIST if local
    source: str = "auto"
    data_dir: str | None = None
    n_train: int | None = None  # None: every training image
    checkpoint_every: int = 10
    eval_samples: int = 10_000  # samples scored at the end
    epoch_eval_samples: int = 1_000  # samples scored after each epoch (0: none)
    classifier_epochs: int = 3
    classifier_dir: str | None = None  # None: the workdir


# `reproduce --quick`: 8 epochs of 4,000 images (320 steps) in about a minute on 2 CPU cores.
QUICK = {"n_train": 4000, "epochs": 8, "checkpoint_every": 4}


# --- losses --------------------------------------------------------------------------------------
def bce(probs, targets):
    """torch's `nn.BCELoss()` (mean), log clamped at −100 as torch clamps it."""
    p = jnp.asarray(probs)
    t = jnp.broadcast_to(jnp.asarray(targets, p.dtype), p.shape)
    log_p = jnp.maximum(jnp.log(p), -100.0)
    log_q = jnp.maximum(jnp.log1p(-p), -100.0)
    return -jnp.mean(t * log_p + (1 - t) * log_q)


def bce_with_logits(logits, targets):
    """`bce(sigmoid(logits), targets)` computed from the logits (stable; clamp kept)."""
    x = jnp.asarray(logits)
    t = jnp.broadcast_to(jnp.asarray(targets, x.dtype), x.shape)
    log_p = jnp.maximum(jax.nn.log_sigmoid(x), -100.0)
    log_q = jnp.maximum(jax.nn.log_sigmoid(-x), -100.0)
    return -jnp.mean(t * log_p + (1 - t) * log_q)


def gan_loss(logits, target: float, kind: str):
    """The discriminator criterion on logits: "bce" (BCELoss) or "mse" (MSE of the sigmoid)."""
    if kind == "bce":
        return bce_with_logits(logits, target)
    return jnp.mean((jax.nn.sigmoid(logits) - target) ** 2)


def bce_lines() -> dict[str, float]:
    """Post 000's equilibrium losses (D outputs 1/2): D's sum of two BCEs 2 ln 2, G's ln 2."""
    return {"D at equilibrium (2 ln 2)": 2 * LN2, "G at equilibrium (ln 2)": LN2}


# --- state and step ------------------------------------------------------------------------------
class GANState(NamedTuple):
    """Generator and discriminator train states; `step` counts D-then-G iterations."""

    g: training.TrainState
    d: training.TrainState

    @property
    def step(self):
        return self.g.step


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """What `gan_step` does, as a hashable static argument.

    latent_dim: noise size per sample. noise: "normal" (torch.randn) or "uniform" (torch.rand).
    loss: "bce" or "mse". separate_d_steps: post 001's two D updates (real, then fake) instead of
    post 000's one update on the sum of both losses.
    """

    latent_dim: int = 128
    noise: Literal["normal", "uniform"] = "normal"
    loss: Literal["bce", "mse"] = "bce"
    separate_d_steps: bool = False


def noise(key, n: int, spec: StepSpec):
    """`n` latent vectors [n, latent_dim] from the spec's distribution."""
    shape = (n, spec.latent_dim)
    if spec.noise == "uniform":
        return jax.random.uniform(key, shape)
    return jax.random.normal(key, shape)


def step_keys(key, step):
    """The keys of iteration `step`: (D-step noise, G-step noise, D-step dropout, G-step
    dropout). Parity checks draw the same noise with them and hand it to torch."""
    return tuple(jax.random.split(jax.random.fold_in(key, step), 4))


def _d_loss(params, apply_fn, x, target, key, kind):
    logits = apply_fn(params, x, train=True, rngs={"dropout": key})
    return gan_loss(logits, target, kind), jnp.mean(jax.nn.sigmoid(logits))


def _d_update(d, real, fake, key, spec: StepSpec):
    grad_fn = jax.value_and_grad(_d_loss, has_aux=True)
    k_real, k_fake = jax.random.split(key)
    if spec.separate_d_steps:  # post 001: D.train(real, 1), then D.train(fake, 0)
        (l_real, p_real), grads = grad_fn(d.params, d.apply_fn, real, 1.0, k_real, spec.loss)
        d = d.apply_gradients(grads=grads)
        (l_fake, p_fake), grads = grad_fn(d.params, d.apply_fn, fake, 0.0, k_fake, spec.loss)
        return d.apply_gradients(grads=grads), (l_real + l_fake) / 2, p_real, p_fake

    def loss(params):  # post 000: one backward through loss(real, 1) + loss(fake, 0)
        x = jnp.concatenate([real, fake])  # [2B, ...]: one forward pass for both halves
        logits = d.apply_fn(params, x, train=True, rngs={"dropout": k_real})
        n = real.shape[0]
        l_total = gan_loss(logits[:n], 1.0, spec.loss) + gan_loss(logits[n:], 0.0, spec.loss)
        probs = jax.nn.sigmoid(logits)
        return l_total, (jnp.mean(probs[:n]), jnp.mean(probs[n:]))

    (l_total, (p_real, p_fake)), grads = jax.value_and_grad(loss, has_aux=True)(d.params)
    return d.apply_gradients(grads=grads), l_total, p_real, p_fake


def _g_loss(g_params, g, d, z, key, kind):
    fake = g.apply_fn(g_params, z)
    return _d_loss(d.params, d.apply_fn, fake, 1.0, key, kind)[0]


@functools.partial(jax.jit, static_argnames="spec", donate_argnums=0)
def gan_step(state: GANState, batch, key, *, spec: StepSpec):
    """One iteration: D on `batch` and detached fakes, then G (fresh noise, label 1) through
    the updated D. Returns (state, {"loss": d_loss + g_loss, "d_loss", "g_loss", "d_real",
    "d_fake"}); d_real / d_fake are D's mean probabilities before its update."""
    k_zd, k_zg, k_dd, k_dg = step_keys(key, state.step)
    n = batch.shape[0]
    fake = jax.lax.stop_gradient(state.g.apply_fn(state.g.params, noise(k_zd, n, spec)))
    d, d_loss, d_real, d_fake = _d_update(state.d, batch, fake, k_dd, spec)
    g_loss, grads = jax.value_and_grad(_g_loss)(
        state.g.params, state.g, d, noise(k_zg, n, spec), k_dg, spec.loss
    )
    g = state.g.apply_gradients(grads=grads)
    metrics = {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}
    return GANState(g, d), {**metrics, "d_real": d_real, "d_fake": d_fake}


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


def create_gan_state(key, generator, discriminator, g_tx, d_tx, latent_dim: int) -> GANState:
    """Initialises both networks (torch's default init) and their optimisers, as one compiled
    function (eagerly, every initialiser shape would compile on its own)."""

    @jax.jit
    def init(key):
        k_g, k_d = jax.random.split(key)
        g_params = generator.init(k_g, jnp.zeros((1, latent_dim)))
        d_params = discriminator.init(k_d, jnp.zeros((1, 28, 28, 1)))
        return GANState(
            training.create_train_state(generator.apply, g_params, g_tx),
            training.create_train_state(discriminator.apply, d_params, d_tx),
        )

    return init(key)


def create_state(key, cfg: GANConfig) -> GANState:
    return create_gan_state(
        key, Generator(cfg.latent_dim), Discriminator(dropout=cfg.dropout),
        optax.adam(cfg.lr), optax.adam(cfg.lr), cfg.latent_dim,
    )  # fmt: skip


@functools.cache
def step_for(spec: StepSpec):
    """The module-level step for `spec` (one object per spec, so `fit` compiles it once)."""
    return functools.partial(gan_step, spec=spec)


train_step = step_for(StepSpec(latent_dim=128))


# --- sampling and the latent tools of post 001 ---------------------------------------------------
@functools.partial(jax.jit, static_argnames="apply_fn")
def _generate(params, apply_fn, z):
    return apply_fn(params, z)


GENERATE_BATCH = 256


def generate(g: training.TrainState, z) -> np.ndarray:
    """Generator output for latent vectors `z` [N, latent], in padded batches of 256 so every
    call (a 64-image grid, 12 interpolation steps, 10,000 samples) shares one compilation."""
    z = np.asarray(z, np.float32)
    try:  # shapes only: nothing is compiled for the check
        jax.eval_shape(g.apply_fn, g.params, jax.ShapeDtypeStruct((1, *z.shape[1:]), z.dtype))
        assert z.ndim >= 2 and len(z) > 0
    except Exception:  # flax's ScopeParamShapeError, a shape TypeError, a scalar z
        raise ValueError(
            f"z of shape {z.shape} does not fit the generator; pass latents [N, latent_dim] "
            "(as noise() draws them)"
        ) from None
    n = len(z)
    padded = np.concatenate([z, np.zeros((-n % GENERATE_BATCH, *z.shape[1:]), np.float32)])
    fn = functools.partial(_generate, g.params, g.apply_fn)
    return training.batched_apply(fn, padded, batch_size=GENERATE_BATCH)[:n]


def sample(g: training.TrainState, key, n: int, spec: StepSpec) -> np.ndarray:
    """`n` samples from fresh noise of the spec's distribution."""
    return generate(g, noise(key, n, spec))


def interpolate(g: training.TrainState, z_a, z_b, steps: int = 12) -> np.ndarray:
    """Images along the straight line from seed `z_a` to `z_b` [latent], `steps` points."""
    training.check_positive("steps", steps, integer=True)
    z_a, z_b = np.asarray(z_a, np.float32), np.asarray(z_b, np.float32)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]  # [steps, 1]
    return generate(g, (1 - t) * z_a[None, :] + t * z_b[None, :])  # [steps, 28, 28, 1]


def seed_arithmetic(g: training.TrainState, z_a, z_b) -> dict[str, np.ndarray]:
    """The images of seeds A, B, A + B and A − B (post 001's "GAN and SEED"), each [N, ...]
    for seed batches `z_a`, `z_b` [N, latent]."""
    z_a, z_b = np.asarray(z_a, np.float32), np.asarray(z_b, np.float32)
    out = generate(g, np.concatenate([z_a, z_b, z_a + z_b, z_a - z_b]))
    return dict(zip(("A", "B", "A+B", "A−B"), np.split(out, 4), strict=True))


# --- data and the shared run body ---------------------------------------------------------------
def load_data(cfg) -> tuple[data_lib.ImageData, data_lib.ImageData]:
    """FashionMNIST when `cfg.dataset` asks for it (or "auto" and files are local), else MNIST."""
    if cfg.dataset not in ("auto", "fashion_mnist", "mnist"):
        raise ValueError(f"dataset must be auto, fashion_mnist or mnist, got {cfg.dataset!r}")
    if cfg.dataset == "fashion_mnist" or (cfg.dataset == "auto" and cfg.source != "embedded"):
        try:
            load = functools.partial(
                data_lib.load_fashion_mnist, source=cfg.source, data_dir=cfg.data_dir
            )
            return load("train"), load("test")
        except FileNotFoundError:
            if cfg.dataset == "fashion_mnist":
                raise
    load = functools.partial(data_lib.load_mnist, source=cfg.source, data_dir=cfg.data_dir)
    return load("train"), load("test")


def check_config(cfg) -> None:
    """ValueErrors for the fields GAN configs share (those `cfg` has)."""
    if hasattr(cfg, "lr"):
        training.check_positive("lr", cfg.lr)
    for name in ("batch_size", "epochs", "checkpoint_every", "classifier_epochs", "latent_dim",
                 "n_seeds"):  # fmt: skip
        if hasattr(cfg, name):
            training.check_positive(name, getattr(cfg, name), integer=True)
    dropout = getattr(cfg, "dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, float | int) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if not isinstance(cfg.eval_samples, int) or cfg.eval_samples < 10:
        raise ValueError(f"eval_samples must be an integer >= 10, got {cfg.eval_samples!r}")
    ees = cfg.epoch_eval_samples
    if not isinstance(ees, int) or ees < 0 or ees == 1:
        raise ValueError(f"epoch_eval_samples must be 0 (off) or an integer >= 2, got {ees!r}")
    if cfg.n_train is not None:
        training.check_positive("n_train", cfg.n_train, integer=True)


def checked_data(train, test, n_train: int | None = None):
    """The first `n_train` training images, both splits validated before any compilation."""
    train = train._replace(images=train.images[:n_train], labels=train.labels[:n_train])
    images = training.check_images("train images", train.images, (28, 28, 1))
    test_images = training.check_images("test images", test.images, (28, 28, 1))
    for name, d in (("train", train), ("test", test)):
        if np.shape(d.labels) != (len(d.images),):
            raise ValueError(f"{name} labels must have shape ({len(d.images)},)")
    return train._replace(images=images), test._replace(images=test_images)


def _grid_frames(samples_dir: Path) -> list[np.ndarray]:
    import imageio.v3 as iio

    return [iio.imread(p) for p in sorted(samples_dir.glob("epoch_*.png"))]


def train_gan(
    name: str,
    cfg,
    workdir: Path,
    state: GANState,
    step,
    spec: StepSpec,
    train: data_lib.ImageData,
    test: data_lib.ImageData,
    *,
    key: jax.Array,
    value_range: tuple[float, float],
    loss_lines: dict[str, float] | None = None,
) -> dict:
    """The run body every GAN shares: fit with per-epoch sample grids and scores, then the
    GIF, loss curves, latent figures and the final scores. Returns the results dict.

    Args:
      cfg: a config with epochs, batch_size, checkpoint_every, seed, eval_samples,
        epoch_eval_samples, classifier_epochs and classifier_dir.
      state, step, spec: the initial `GANState`, its module-level step and the `StepSpec`;
        a stacked state (`seeds.create` over `seeds.keys`, with `key` the stacked fit keys)
        trains every seed at once: scores per seed and their mean (every seed scored with
        the feature classifier of `cfg.seed`, one yardstick), seed 0's figures.
      train, test: images in [0, 1]; the model sees them mapped onto `value_range`.
      value_range: the generator's output range ((-1, 1) for Tanh, (0, 1) for Sigmoid).
      loss_lines: equilibrium reference lines for the loss plot (label → loss).
    """
    from jaxunsup import plots

    lo, hi = value_range
    k_fixed, k_pairs, k_eval, k_fit = seeds.split(key, 4)
    first = _first if seeds.count(state) is not None else (lambda tree: tree)  # the figures'
    clf = fid.load_or_train_classifier(
        cfg.classifier_dir or workdir, train, test, seed=cfg.seed, epochs=cfg.classifier_epochs
    )
    reference = fid.gaussian_stats(fid.predict(clf.params, test.images)[1])
    fixed_z = noise(first(k_fixed), 64, spec)
    steps_per_epoch = len(train.images) // cfg.batch_size
    samples_dir = workdir / "samples"

    def score(state, key, n: int):  # one model's scores of n samples
        scores = fid.score(clf, (sample(state.g, key, n, spec) - lo) / (hi - lo), reference)
        return {k: v for k, v in scores.items() if k != "n"}

    def eval_fn(state):
        epoch = int(first(state).step) // steps_per_epoch
        grid = generate(first(state).g, fixed_z)
        plots.save_grid(samples_dir / f"epoch_{epoch:03d}.png", grid, value_range=value_range)
        if not cfg.epoch_eval_samples:
            return {}
        return seeds.evaluate(
            lambda st, k: score(st, jax.random.fold_in(k, epoch), cfg.epoch_eval_samples),
            state, k_eval,
        )  # fmt: skip

    state, history = training.fit(
        state, seeds.step_for(step, state), train.images * (hi - lo) + lo, key=k_fit,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size, workdir=workdir, checkpoint_every=cfg.checkpoint_every,
        eval_fn=eval_fn,
    )  # fmt: skip
    curves = {k: [r[k] for r in history] for k in ("d_loss", "g_loss", "d_real", "d_fake")}
    loss_curves = {"generator": curves["g_loss"], "discriminator": curves["d_loss"]}
    z_a, z_b = np.split(np.asarray(noise(first(k_pairs), 16, spec)), 2)  # [8, latent] each
    stacked, state = state, first(state)
    arithmetic = seed_arithmetic(state.g, z_a, z_b)
    plots.save_grid(workdir / "samples.png", generate(state.g, fixed_z), value_range=value_range)
    figures = [
        "samples.png",
        plots.save_gif(workdir / "samples.gif", _grid_frames(samples_dir), (0, 255)).name,
        plots.save_loss_curves(
            workdir / "loss.png", loss_curves, hlines=loss_lines, title=f"{name} losses",
        ).name,
        plots.save_image_rows(
            workdir / "interpolation.png",
            [interpolate(state.g, z_a[i], z_b[i], steps=12) for i in range(4)],
            value_range=value_range,
        ).name,
        plots.save_image_rows(
            workdir / "seed_arithmetic.png", list(arithmetic.values()), list(arithmetic),
            value_range=value_range,
        ).name,
    ]  # fmt: skip
    final = seeds.evaluate(
        lambda st, k: score(st, jax.random.fold_in(k, 0), cfg.eval_samples), stacked, k_eval
    )
    real = fid.score(clf, train.images[: cfg.eval_samples], reference)
    final["n"] = cfg.eval_samples
    results = {
        "experiment": name,
        "data": train.source,
        "n_train": len(train.images),
        "steps_per_epoch": steps_per_epoch,
        "classifier": {"test_accuracy": clf.accuracy, "trained_on": clf.source},
        **curves,
        "fid_curve": [r.get("fid") for r in history],
        "label_entropy_curve": [r.get("label_entropy") for r in history],
        "scores": final,
        "real_scores": real,
        "figures": figures,
        "table": score_table(curves, final, real, clf.accuracy),
    }
    if seeds.count(stacked) is not None:
        _add_seed_results(results, history, cfg.seed)
    return results


def _first(tree):
    return seeds.unstack(tree, 0)


def _add_seed_results(results: dict, history: list[dict], seed: int) -> None:
    """Per-seed curves and scores; the table's scores as mean/std over the seeds."""
    final = results["scores"]
    n = len(history[-1]["g_loss_per_seed"])
    results["seeds"] = [seed + i for i in range(n)]
    for name in ("d_loss", "g_loss"):
        results[f"{name}_per_seed"] = [r[f"{name}_per_seed"] for r in history]  # [epoch][seed]
    rows = results["table"]
    for row, name in zip(rows[1:4], ("fid", "label_entropy", "mean_pairwise_distance"),
                         strict=True):  # fmt: skip
        row["metric"] += f", mean/std over {n} seeds"
        row["ours"] = seeds.mean_std(final[f"{name}_per_seed"], 3)


def score_table(curves: dict, final: dict, real: dict, accuracy: float) -> list[dict]:
    """The README/report rows of one GAN run (the posts print no such numbers); each metric
    names the value real training images get, for scale."""
    n, f, r = final["n"], final, real
    return [
        {"metric": "final epoch D / G loss", "seed": None,
         "ours": [round(curves["d_loss"][-1], 3), round(curves["g_loss"][-1], 3)]},
        {"metric": f"classifier-feature FD, {n} samples vs test (real images {r['fid']:.2f})",
         "ours": round(f["fid"], 2), "seed": None},
        {"metric": f"predicted-label entropy, nats (real {r['label_entropy']:.3f}, max 2.303)",
         "ours": round(f["label_entropy"], 3), "seed": None},
        {"metric": f"mean pairwise distance (real {r['mean_pairwise_distance']:.2f})",
         "ours": round(f["mean_pairwise_distance"], 2), "seed": None},
        {"metric": "feature classifier's test accuracy", "ours": round(accuracy, 4), "seed": None},
    ]  # fmt: skip


def run(cfg: GANConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the post's MLP GAN; writes config.json, metrics.jsonl, checkpoints, per-epoch
    sample grids, the GIF, loss curves, latent figures and results.json into `workdir`."""
    check_config(cfg)
    train, test = checked_data(*(data if data is not None else load_data(cfg)), cfg.n_train)
    workdir = prepare_workdir(workdir, cfg)
    key_init, key_fit = seeds.split(seeds.keys(cfg.seed, cfg.n_seeds))
    spec = StepSpec(latent_dim=cfg.latent_dim)
    state = seeds.create(lambda key: create_state(key, cfg), key_init)
    results = train_gan(
        "gan-mlp", cfg, Path(workdir), state, step_for(spec), spec,
        train, test, key=key_fit, value_range=(-1.0, 1.0), loss_lines=bce_lines(),
    )  # fmt: skip
    write_json(Path(workdir) / "results.json", results)
    return results
