"""The autoencoder family's shared `run` body: data, training, figures, latent clustering.

Every autoencoder experiment (`autoencoder`, `ae_denoising`, `ae_conv`, `ae_keras`) loads and
checks MNIST with `load_data` / `checked_data` and trains and scores its model with
`train_and_evaluate`: `training.fit` with the test MSE after every epoch, the reconstruction
and loss figures, post 004's k-means on the test codes (`latent_clustering`), and for a run
of several seeds (`n_seeds` > 1) the per-seed numbers and mean/std rows.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import numpy as np

from jaxunsup import data as data_lib
from jaxunsup import latent_clustering, seeds, training
from jaxunsup.autoencoder import encode, reconstruct


def load_data(cfg) -> tuple[data_lib.ImageData, data_lib.ImageData]:
    """MNIST's (train, test) from `cfg.source` / `cfg.data_dir`."""
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
    name: str, cfg, workdir: Path, state, step, images: np.ndarray, test_inputs: np.ndarray,
    test: data_lib.ImageData, *, key: jax.Array, value_range: tuple[float, float] = (0.0, 1.0),
    eval_fn=None,
) -> tuple[object, dict]:  # fmt: skip
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
    train_loss, test_mse = [r["loss"] for r in history], [r["test_mse"] for r in history]
    figures = _figures(workdir, shown, test_inputs, train_loss, test_mse, value_range)
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


def _figures(workdir: Path, state, test_inputs, train_loss, test_mse, value_range) -> list[str]:
    """reconstructions.png (ten test inputs over their outputs) and loss.png."""
    from jaxunsup import plots

    recon = reconstruct(state, test_inputs)[0][:10]  # the shape eval_fn compiled for
    return [
        plots.save_image_rows(
            workdir / "reconstructions.png", [test_inputs[:10], recon], ["input", "output"],
            value_range=value_range,
        ).name,
        plots.save_loss_curves(
            workdir / "loss.png", {"train": train_loss, "test": test_mse}, ylabel="MSE"
        ).name,
    ]  # fmt: skip


def _add_seed_results(results, state, history, test_inputs, labels, seed: int) -> None:
    """Per-seed curves and scores, and mean/std rows in the table (seed 0 fills the rest)."""
    n = seeds.count(state)
    final = history[-1]["test_mse_per_seed"]
    latent = [results["clustering"]["latent"]]
    for i in range(1, n):  # seed 0's scores came with its figures
        codes = encode(seeds.unstack(state, i), test_inputs)
        latent.append(latent_clustering.cluster(codes, labels))
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
