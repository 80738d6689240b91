"""The run body every GAN here shares (`train_gan`): the feature classifier, a fit with
per-epoch sample grids and scores, then the GIF, loss curves, latent figures, the final scores
and the results table; plus the GAN configs' data loading and input checks.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxunsup import data as data_lib
from jaxunsup import fid, gan_core, seeds, training


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
    for name in ("dropout", "adam_b1", "label_smoothing"):  # fractions in [0, 1)
        value = getattr(cfg, name, 0.0)
        if isinstance(value, bool) or not isinstance(value, float | int) or not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
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


class GANRun(NamedTuple):
    """What a GAN experiment hands `train_gan` besides its config, state and data.

    name: the experiment's name (results and plot titles). spec: the `StepSpec` of its step.
    value_range: the generator's output range ((-1, 1) for Tanh, (0, 1) for Sigmoid); the
    model sees the [0, 1] images mapped onto it. loss_lines: equilibrium reference lines for
    the loss plot (label → loss).
    """

    name: str
    spec: gan_core.StepSpec
    value_range: tuple[float, float] = (-1.0, 1.0)
    loss_lines: dict[str, float] | None = None


def train_gan(
    run: GANRun, cfg, workdir: Path, state: gan_core.GANState, data, key: jax.Array
) -> dict:
    """The run body every GAN shares: fit with per-epoch sample grids and scores, then the
    GIF, loss curves, latent figures and the final scores. Returns the results dict.

    Args:
      run: the experiment's `GANRun`; its step is `step_for(run.spec)`.
      cfg: a config with epochs, batch_size, checkpoint_every, seed, eval_samples,
        epoch_eval_samples, classifier_epochs and classifier_dir.
      state: the initial `GANState`; a stacked one (`seeds.create` over `seeds.keys`, with
        `key` the stacked fit keys) trains every seed at once: scores per seed and their mean
        (every seed scored with the feature classifier of `cfg.seed`, one yardstick), seed
        0's figures.
      data: (train, test) `ImageData`, images in [0, 1].
    """
    train, test = data
    lo, hi = run.value_range
    k_fixed, k_pairs, k_eval, k_fit = seeds.split(key, 4)
    first = _first if seeds.count(state) is not None else (lambda tree: tree)  # the figures'
    clf = fid.load_or_train_classifier(
        cfg.classifier_dir or workdir, train, test, seed=cfg.seed, epochs=cfg.classifier_epochs
    )
    score = _scorer(clf, test.images, run)
    fixed_z = gan_core.noise(first(k_fixed), 64, run.spec)
    steps_per_epoch = len(train.images) // cfg.batch_size
    eval_fn = _epoch_eval(cfg, run, workdir / "samples", steps_per_epoch, first, fixed_z, score,
                          k_eval)  # fmt: skip
    stacked, history = training.fit(
        state, seeds.step_for(gan_core.step_for(run.spec), state), train.images * (hi - lo) + lo,
        key=k_fit, epochs=cfg.epochs, batch_size=cfg.batch_size, workdir=workdir,
        checkpoint_every=cfg.checkpoint_every, eval_fn=eval_fn,
    )  # fmt: skip
    curves = {k: [r[k] for r in history] for k in ("d_loss", "g_loss", "d_real", "d_fake")}
    pairs = np.split(np.asarray(gan_core.noise(first(k_pairs), 16, run.spec)), 2)  # 2 × [8, z]
    figures = _save_figures(run, workdir, first(stacked).g, fixed_z, pairs, curves)
    final = seeds.evaluate(
        lambda st, k: score(st, jax.random.fold_in(k, 0), cfg.eval_samples), stacked, k_eval
    )
    real = fid.score(clf, train.images[: cfg.eval_samples], score.reference)
    final["n"] = cfg.eval_samples
    final_key = jax.random.fold_in(first(k_eval), 0)  # seed 0's final samples
    results = {
        "experiment": run.name,
        "data": train.source,
        "n_train": len(train.images),
        "steps_per_epoch": steps_per_epoch,
        "classifier": {"test_accuracy": clf.accuracy, "trained_on": clf.source},
        **curves,
        "fid_curve": [r.get("fid") for r in history],
        "label_entropy_curve": [r.get("label_entropy") for r in history],
        "scores": final,
        "real_scores": real,
        "class_histogram": score.histogram(first(stacked), final_key, cfg.eval_samples),
        "figures": figures,
        "table": score_table(curves, final, real, clf.accuracy),
    }
    if seeds.count(stacked) is not None:
        _add_seed_results(results, history, cfg.seed)
    return results


def _scorer(clf, test_images, run: GANRun):
    """`score(state, key, n)`: one model's scores of n samples against the test features
    (`score.reference` holds their Gaussian; `score.histogram(state, key, n)` counts the
    classifier's predicted digits of the same samples)."""
    lo, hi = run.value_range
    reference = fid.gaussian_stats(fid.predict(clf.params, test_images)[1])

    def images(state, key, n: int):
        return (gan_core.sample(state.g, key, n, run.spec) - lo) / (hi - lo)

    def score(state, key, n: int):
        return {k: v for k, v in fid.score(clf, images(state, key, n), reference).items()
                if k != "n"}  # fmt: skip

    def histogram(state, key, n: int) -> list[int]:  # the same samples' predicted digits
        labels = fid.predict(clf.params, images(state, key, n))[0]
        return np.bincount(labels, minlength=fid.N_CLASSES).tolist()

    score.reference, score.histogram = reference, histogram
    return score


def _epoch_eval(cfg, run: GANRun, samples_dir: Path, steps_per_epoch: int, first, fixed_z, score,
                key):  # fmt: skip
    """`fit`'s eval_fn: each epoch's fixed-noise grid (seed 0's) and, when
    `cfg.epoch_eval_samples`, every seed's scores of that many samples."""
    from jaxunsup import plots

    def eval_fn(state):
        epoch = int(first(state).step) // steps_per_epoch
        grid = gan_core.generate(first(state).g, fixed_z)
        plots.save_grid(samples_dir / f"epoch_{epoch:03d}.png", grid, value_range=run.value_range)
        if not cfg.epoch_eval_samples:
            return {}
        return seeds.evaluate(
            lambda st, k: score(st, jax.random.fold_in(k, epoch), cfg.epoch_eval_samples),
            state, key,
        )  # fmt: skip

    return eval_fn


def _save_figures(run: GANRun, workdir: Path, g, fixed_z, pairs, curves: dict) -> list[str]:
    """samples.png (the fixed-noise grid), the GIF of the epochs' grids, the loss curves, and
    post 001's interpolations and seed arithmetic for the seed pairs `pairs` ([8, latent] ×2);
    returns their file names."""
    from jaxunsup import plots

    z_a, z_b = pairs
    vr = run.value_range
    arithmetic = gan_core.seed_arithmetic(g, z_a, z_b)
    plots.save_grid(workdir / "samples.png", gan_core.generate(g, fixed_z), value_range=vr)
    loss_curves = {"generator": curves["g_loss"], "discriminator": curves["d_loss"]}
    return [
        "samples.png",
        plots.save_gif(workdir / "samples.gif", _grid_frames(workdir / "samples"), (0, 255)).name,
        plots.save_loss_curves(
            workdir / "loss.png", loss_curves, hlines=run.loss_lines, title=f"{run.name} losses",
        ).name,
        plots.save_image_rows(
            workdir / "interpolation.png",
            [gan_core.interpolate(g, z_a[i], z_b[i], steps=12) for i in range(4)], value_range=vr,
        ).name,
        plots.save_image_rows(
            workdir / "seed_arithmetic.png", list(arithmetic.values()), list(arithmetic),
            value_range=vr,
        ).name,
    ]  # fmt: skip


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
