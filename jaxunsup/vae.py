"""Convolutional VAE of post 003 (AEVB / SGVB) — experiments `vae-z2` and `vae-z4`.

Seed: post 003, sections "Model" (the flexible `ConvVAE`, revised 21/07/26),
"Loss Function", "Train" and "Result". `ConvVAE(input_size, channels, kernel_size=3, stride=2,
latent_dim)`: encoder Conv2d(padding 1) + ReLU per channel step, Flatten, Linear to
2·latent (mean, log-variance); decoder Linear → ReLU → Unflatten → ConvTranspose2d layers with
ReLU → a final Conv2d (or ConvTranspose2d) whose kernel makes the output exactly `input_size`,
Sigmoid. Loss: Bernoulli cross-entropy summed over pixels plus the Gaussian KL, both averaged
over the batch; Adam(1e-3), batch 100, 50 epochs, latent 2 and 4. The post prints no numbers.

Deviations:
- The post hard-codes `nn.Unflatten(1, (64, 7, 7))`, right only for `channels=[1, 32, 64]` and
  28×28 inputs; we compute the shape, so other channel lists and input sizes work (for the
  post's configuration the model is identical). The post also reverses the caller's channel
  list in place; ours takes a tuple and never mutates it.
- The cross-entropy is computed from the decoder's logits (`softplus(l) − x·l`), not as
  `BCELoss(sigmoid(l))`: equal away from saturation, finite where torch's would clamp log(0).
- `conv_impl` picks how the convolutions compute (`layers.resolve_impl`): "auto" takes
  `patch_conv`'s matmul forms on CPU, where XLA's backward of a transposed (lhs-dilated)
  convolution, a Cout=1 convolution and, inside `fit`'s `lax.scan`, the kernel gradient of a
  strided convolution are slow paths; XLA's own convolutions elsewhere. Same parameters.
- Evaluation adds what the post does not print: the test loss (−ELBO) per epoch with a fixed
  noise key, and an importance-weighted (IWAE, k=100) estimate of the test NLL in nats.
  Figures: loss curves, latent means coloured by label and the decoded 20×20 manifold (z=2),
  t-SNE of the latent means (z>2), 100 prior samples, 10 test images over reconstructions.
- Each epoch drops the remainder of the shuffled data (none for 60,000 or 4,000 images).
- On CPU `train_step` computes each batch's gradient as the mean over micro-batches of 20
  rows (`Config.micro_batch`; `training.mean_over_micro_batches`), with the ε the whole batch
  would draw: the post's gradient up to float rounding (tested), faster on CPU. On an
  accelerator the whole batch is one computation (its activations fit in no CPU cache anyway,
  and five sequential pieces would only add launches). Evaluation (`elbo`, `iwae_nll`,
  `encode`, `decode`) runs its rows in parts of 20 the same way (`in_parts`), on CPU only.
  The measurements behind both are in benchmarks/README.md.

Run: `jaxunsup run vae-z2 --workdir runs/vae-z2` (`vae-z4` for latent 4; `--preset quick`;
`--n-seeds S`: seeds `seed..seed+S-1` as one vmapped program, mean/std in the table, the
figures of the first seed).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import layers, seeds, training
from jaxunsup.data import Source
from jaxunsup.files import prepare_workdir, write_json
from jaxunsup.vae_eval import (  # noqa: F401  (the experiment's API)
    LOG_2PI,
    check_input,
    decode,
    elbo,
    encode,
    iwae_nll,
    iwae_nll_from_eps,
    log_importance_weights,
    manifold_latents,
    reconstruct,
    sample,
)  # fmt: skip
from jaxunsup.vae_model import (  # noqa: F401  (the experiment's API)
    MICRO_BATCH,
    ConvVAE,
    architecture,
    bernoulli_nll,
    check_shape,
    conv_out_size,
    create_state,
    deconv_out_size,
    default_micro_batch,
    in_parts,
    kl_divergence,
    latent_dim_of,
    loss_fn,
    loss_from_eps,
    make_model,
    negative_elbo_terms,
    train_step,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Config:
    """Post 003's ConvVAE with latent 2; defaults are the post's settings."""

    latent_dim: int = 2
    channels: tuple[int, ...] = (1, 32, 64)
    kernel_size: int = 3
    stride: int = 2
    lr: float = 1e-3
    batch_size: int = 100
    epochs: int = 50
    iwae_samples: int = 100
    iwae_images: int | None = None  # test images for the IWAE estimate; None = all
    tsne_points: int = 2000
    conv_impl: layers.ConvImpl = "auto"  # "xla" | "matmul"; auto: matmul on CPU only
    micro_batch: int | None = None  # rows per gradient micro-batch; None: `train_step`'s default
    seed: int = 0
    n_seeds: int = 1
    source: Source = "auto"  # `data.load_mnist`'s
    data_dir: str | None = None
    checkpoint_every: int = 10


@dataclasses.dataclass(frozen=True)
class Z4Config(Config):
    """Post 003's ConvVAE with latent 4."""

    latent_dim: int = 4


# `reproduce --quick`: the post's recipe (batch 100, Adam 1e-3) for 20 epochs of the embedded
# 4,000 digits instead of 50, about a minute each on a 2-core machine. Six epochs left the z=2
# manifold grey blobs (test −ELBO 183); by 20 its digits are recognisable and the z=2 test
# −ELBO is under 170 nats (tests/test_vae.py, slow). The IWAE estimate (k=100 samples an
# image) runs on the first 500 test images (shuffled classes).
QUICK = {"epochs": 20, "iwae_images": 500, "tsne_points": 200, "checkpoint_every": 10}


def check_config(cfg: Config) -> None:
    training.check_positive("lr", cfg.lr)
    architecture(28, cfg.channels, 1, 1)  # channels: >= 2 positive sizes (any size passes)
    for name in ("latent_dim", "kernel_size", "stride", "batch_size", "epochs", "iwae_samples",
                 "tsne_points", "checkpoint_every", "n_seeds"):  # fmt: skip
        training.check_positive(name, getattr(cfg, name), integer=True)
    for name in ("iwae_images", "micro_batch"):  # None: all test images / the default
        if getattr(cfg, name) is not None:
            training.check_positive(name, getattr(cfg, name), integer=True)


def check_data(name: str, images, cfg: Config) -> np.ndarray:
    """Square NHWC images with `cfg.channels[0]` channels, finite, in [0, 1] (Bernoulli targets)."""
    arr = training.check_images(name, images)
    check_shape(name, arr, cfg)
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(
            f"{name} must lie in [0, 1] (Bernoulli targets), got [{arr.min()}, {arr.max()}]"
        )
    return arr


def load_data(cfg: Config):
    from jaxunsup import data as data_lib

    train = data_lib.load_mnist("train", source=cfg.source, data_dir=cfg.data_dir)
    test = data_lib.load_mnist("test", source=cfg.source, data_dir=cfg.data_dir)
    return train, test


def _figures(workdir: Path, cfg: Config, state, history, test, key) -> list[str]:
    """Loss curves, latent map (scatter + manifold for z=2, t-SNE for z>2), 100 prior
    samples, 10 test images over their reconstructions. One decode call for every image."""
    from jaxunsup import plots

    curves = {"train": [r["loss"] for r in history], "test": [r["test_loss"] for r in history]}
    plots.save_loss_curves(workdir / "loss.png", curves, ylabel="−ELBO (nats)")
    names = ["loss.png"]
    mean, _ = encode(state, test.images)  # [N, latent]
    prior = jax.random.normal(key, (100, cfg.latent_dim))
    grid = manifold_latents(20) if cfg.latent_dim == 2 else np.zeros((0, cfg.latent_dim))
    decoded = decode(state, np.concatenate([prior, mean[:10], grid]))  # [110 + 400·(z=2), ...]
    if cfg.latent_dim == 2:
        plots.save_scatter(workdir / "latent.png", mean, test.labels, title="test latent means")
        plots.save_grid(workdir / "manifold.png", decoded[110:], nrow=20, padding=0)
        names += ["latent.png", "manifold.png"]
    elif cfg.latent_dim > 2:
        title = f"t-SNE of test latent means (z={cfg.latent_dim})"
        plots.save_tsne(workdir / "latent_tsne.png", mean, test.labels,
                        max_points=cfg.tsne_points, title=title)  # fmt: skip
        names.append("latent_tsne.png")
    plots.save_grid(workdir / "samples.png", decoded[:100], nrow=10)
    rows = [test.images[:10], decoded[100:110]]
    plots.save_image_rows(workdir / "reconstructions.png", rows, ["input", "output"])
    return [*names, "samples.png", "reconstructions.png"]


def _checked_data(cfg: Config, data):
    """(train, test, train images) after checking both image sets against `cfg`."""
    train, test = data if data is not None else load_data(cfg)
    images = check_data("train images", train.images, cfg)
    test = test._replace(images=check_data("test images", test.images, cfg))
    if test.images.shape[1:] != images.shape[1:]:
        raise ValueError(
            f"test images {test.images.shape[1:]} differ from train {images.shape[1:]}"
        )
    return train, test, images


def _final_scores(cfg: Config, state, test, key_iwae, key_eval) -> dict:
    """Per seed: the IWAE NLL of the first `iwae_images` test images and their −ELBO."""
    n_iwae = min(cfg.iwae_images or len(test.images), len(test.images))

    def final(state, k_iwae, k_eval):
        nll = float(np.mean(iwae_nll(state, test.images[:n_iwae], k_iwae, cfg.iwae_samples)))
        # image i's noise depends on i only, so this is the −ELBO of the IWAE images
        return {"nll": nll, "subset": -float(np.mean(elbo(state, test.images, k_eval)[:n_iwae]))}

    return {**seeds.evaluate(final, state, key_iwae, key_eval), "n_iwae": n_iwae}


def run(cfg: Config, workdir: str | os.PathLike, data=None) -> dict:
    """Trains the ConvVAE; writes config.json, metrics.jsonl, checkpoints, figures and
    results.json (train/test −ELBO curves, test −ELBO, IWAE test NLL) into `workdir`."""
    check_config(cfg)
    train, test, images = _checked_data(cfg, data)
    workdir = prepare_workdir(workdir, cfg)
    key_init, key_fit, key_eval, key_iwae, key_sample = seeds.split(
        seeds.keys(cfg.seed, cfg.n_seeds), 5
    )  # per seed when n_seeds > 1: seed i's are those of the run with seed + i
    example = jnp.asarray(images[:1])
    state = seeds.create(lambda key: create_state(key, cfg, example), key_init)

    def scored(state, key):  # fixed noise: the curve moves with the model only
        return {"test_loss": -float(np.mean(elbo(state, test.images, key)))}

    step = functools.partial(train_step, micro_batch=cfg.micro_batch)
    state, history = training.fit(
        state, seeds.step_for(step, state), images, key=key_fit, epochs=cfg.epochs,
        batch_size=cfg.batch_size, workdir=workdir, checkpoint_every=cfg.checkpoint_every,
        eval_fn=lambda state: seeds.evaluate(scored, state, key_eval),
    )  # fmt: skip
    scores = _final_scores(cfg, state, test, key_iwae, key_eval)
    if cfg.n_seeds > 1:  # figures of the first seed
        state, key_sample = seeds.unstack(state, 0), key_sample[0]
    figures = _figures(workdir, cfg, state, history, test, key_sample)
    results = _results(cfg, train.source, len(images), len(test.images), history, scores)
    results["figures"] = figures
    if cfg.n_seeds > 1:
        _add_seed_results(results, history, scores, cfg)
    write_json(workdir / "results.json", results)
    return results


def _results(cfg: Config, source: str, n_train: int, n_test: int, history, scores) -> dict:
    """results.json's numbers and table (one seed's, or the seeds' means)."""
    nll, subset_loss, n_iwae = scores["nll"], scores["subset"], scores["n_iwae"]
    test_loss = history[-1]["test_loss"]
    where = f"{source}; {cfg.epochs} epochs"
    return {
        "experiment": f"vae-z{cfg.latent_dim}",
        "data": source,
        "n_train": n_train,
        "n_test": n_test,
        "epochs": cfg.epochs,
        "latent_dim": cfg.latent_dim,
        "train_loss": [r["loss"] for r in history],
        "test_loss_curve": [r["test_loss"] for r in history],
        "test_loss": test_loss,
        "iwae_samples": cfg.iwae_samples,
        "iwae_images": n_iwae,
        "test_nll_iwae": nll,
        "test_loss_on_iwae_images": subset_loss,
        "figures": [],
        "table": [
            {"metric": f"test −ELBO, nats ({where})", "ours": round(test_loss, 2), "seed": None},
            {"metric": f"test NLL, IWAE k={cfg.iwae_samples}, first {n_iwae} test images "
                       f"(−ELBO on them {subset_loss:.2f})", "ours": round(nll, 2), "seed": None},
        ],
    }  # fmt: skip


def _add_seed_results(results: dict, history: list[dict], scores: dict, cfg: Config) -> None:
    """Per-seed numbers and the table's mean/std over the seeds."""
    last = history[-1]["test_loss_per_seed"]
    results.update(
        seeds=[cfg.seed + i for i in range(cfg.n_seeds)],
        train_loss_per_seed=[r["loss_per_seed"] for r in history],  # [epoch][seed]
        test_loss_per_seed=last,
        test_nll_iwae_per_seed=scores["nll_per_seed"],
        test_loss_on_iwae_images_per_seed=scores["subset_per_seed"],
    )
    over = f", mean/std over {cfg.n_seeds} seeds"
    for row, values in zip(results["table"], (last, scores["nll_per_seed"]), strict=True):
        row["metric"] += over
        row["ours"] = seeds.mean_std(values, 2)
