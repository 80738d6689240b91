"""Deep K-Means' choices and config checks, its data and results: the scored split, per-seed
data orders, the output bias and t-SNE-map centroids from the data, per-seed scores, the
curves, figures and table of `deep_kmeans.run`.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Literal

import numpy as np

from jaxunsup import ae_run, latent_clustering, metrics, training
from jaxunsup import data as data_lib

SEED_TEST_ACC = 0.80  # post 000 §7, final test accuracy
Assignment = Literal["hard", "soft", "dec"]
Init = Literal["uniform", "pretrain-kmeans", "pretrain-tsne"]
OutputBias = Literal["torch", "mean"]
Protocol = Literal["post", "all"]
ASSIGNMENTS, INITS = typing.get_args(Assignment), typing.get_args(Init)
OUTPUT_BIASES, PROTOCOLS = typing.get_args(OutputBias), typing.get_args(Protocol)


def check_config(cfg) -> None:
    """Raises ValueError naming the field of a bad `cfg`."""
    for name in ("lr", "beta0"):
        training.check_positive(name, getattr(cfg, name))
    for name in ("batch_size", "epochs", "channels", "latent", "n_clusters", "pretrain_epochs",
                 "beta_epochs", "beta_values", "n_seeds", "eval_every", "checkpoint_every",
                 "tsne_points"):  # fmt: skip
        training.check_positive(name, getattr(cfg, name), integer=True)
    for name in ("lam", "rec_weight"):  # weights: 0 switches a term off
        value = getattr(cfg, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= 0)
        ):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not (isinstance(cfg.t1, int) and isinstance(cfg.t2, int) and 0 <= cfg.t1 < cfg.t2):
        raise ValueError(f"need integers 0 <= t1 < t2, got t1={cfg.t1!r}, t2={cfg.t2!r}")
    for name, value, choices in (("assignment", cfg.assignment, ASSIGNMENTS),
                                 ("init", cfg.init, INITS),
                                 ("protocol", cfg.protocol, PROTOCOLS),
                                 ("output_bias", cfg.output_bias, OUTPUT_BIASES)):  # fmt: skip
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def load_data(cfg) -> tuple[data_lib.ImageData, data_lib.ImageData]:
    return ae_run.load_data(cfg)


def split_for_protocol(train, test, cfg):
    """(training set, scored set): the post's train → test, or every image for both."""
    train, test = ae_run.checked_data(train, test, n_train=cfg.n_train, n_test=cfg.n_test)
    if cfg.protocol == "all":
        both = data_lib.ImageData(
            np.concatenate([train.images, test.images]),
            np.concatenate([train.labels, np.asarray(test.labels, train.labels.dtype)]),
            train.source,
        )
        latent_clustering.check_labels("train labels", both.labels, len(both.images))
        train = test = both
    if cfg.batch_size > len(train.images) or cfg.n_clusters > len(test.images):
        raise ValueError(
            f"batch_size={cfg.batch_size} and n_clusters={cfg.n_clusters} must not exceed the "
            f"{len(train.images)} training / {len(test.images)} scored images; lower them"
        )
    return train, test


def seed_data(images: np.ndarray, cfg) -> np.ndarray:
    """[N, S, ...]: seed 0 sees `images` as they are, seed i > 0 through its own permutation."""
    perms = [np.arange(len(images))] + [
        np.random.default_rng(cfg.seed + i).permutation(len(images)) for i in range(1, cfg.n_seeds)
    ]
    return np.stack([images[p] for p in perms], axis=1)  # [N, S, 28, 28, 1]


def mean_logit(images: np.ndarray) -> float:
    """logit of the mean pixel: the bias whose sigmoid is the best constant reconstruction."""
    p = float(np.clip(np.mean(images), 1e-4, 1 - 1e-4))
    return math.log(p / (1 - p))


def scores(labels, clusters: np.ndarray) -> dict[str, list[float]]:
    """Per-seed cluster accuracy (Hungarian), NMI and ARI of `clusters` [N, S]."""
    out = {"acc": [], "nmi": [], "ari": []}
    for s in range(clusters.shape[1]):
        out["acc"].append(metrics.cluster_acc(labels, clusters[:, s]))
        out["nmi"].append(metrics.nmi(labels, clusters[:, s]))
        out["ari"].append(metrics.ari(labels, clusters[:, s]))
    return out


def manifold_centroids(z: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Mean latent [K, D] of each of the `n_clusters` k-means++ clusters (10 restarts) of a 2-d
    t-SNE map of the latents `z` [N, D]. A cluster left empty (k-means relocates empty
    clusters, so this is rare) takes a random latent instead of a NaN mean."""
    from jaxunsup import plots
    from jaxunsup.kmeans import KMeans

    emb, _ = plots.tsne_embed(z, seed=seed, max_points=len(z))
    labels = KMeans(n_clusters, n_init=10, random_state=seed).fit(emb).labels_
    rng = np.random.default_rng(seed)
    return np.asarray([
        z[labels == k].mean(0) if np.any(labels == k) else z[rng.integers(len(z))]
        for k in range(n_clusters)
    ], np.float32)  # fmt: skip


def curves(history: list[dict], initial: dict, n_seeds: int) -> dict:
    """Scores per seed at epoch 0 (after the init) and at every evaluated epoch."""
    rows = [r for r in history if "acc" in r]
    out = {"epoch": [0] + [r["epoch"] for r in rows]}
    for m in ("acc", "nmi", "ari"):
        out[m] = [[initial[m][s]] + [r[f"{m}_{s}"] for r in rows] for s in range(n_seeds)]
    return out  # out[metric][seed][evaluation]


def figures(workdir: Path, test, z, clusters, recon, curves, cfg) -> list[str]:
    """accuracy.png, reconstructions.png, the t-SNE maps (true digits, clusters) and
    clusters.png of seed 0, from its test latents `z` [N, S, D], `clusters` [N, S] and
    the reconstructions `recon` of the first ten test images."""
    from jaxunsup import plots

    emb, idx = plots.tsne_embed(z[:, 0], seed=cfg.seed, max_points=cfg.tsne_points)  # 1 thread
    acc = {f"seed {cfg.seed + s}": (curves["epoch"], a) for s, a in enumerate(curves["acc"])}
    rows, titles = [], []
    for k in range(cfg.n_clusters):
        members = np.flatnonzero(clusters[:, 0] == k)
        if len(members):
            rows.append(test.images[members[:10]])
            titles.append(f"cluster {k} ({len(members)})")
    return [
        plots.save_loss_curves(workdir / "accuracy.png", acc, ylabel="cluster accuracy",
                               hlines={"post (0.80)": SEED_TEST_ACC}).name,
        plots.save_image_rows(workdir / "reconstructions.png", [test.images[:10], recon],
                              ["input", "output"]).name,
        plots.save_scatter(workdir / "tsne_labels.png", emb, test.labels[idx],
                           title="t-SNE of latents, true digits").name,
        plots.save_scatter(workdir / "tsne_clusters.png", emb, clusters[idx, 0],
                           title="t-SNE of latents, clusters").name,
        plots.save_image_rows(workdir / "clusters.png", rows, titles).name,
    ]  # fmt: skip


def table(final: dict, cfg, scored: str) -> list[dict]:
    def stat(values):
        return [round(float(np.mean(values)), 4), round(float(np.std(values)), 4)]

    what = f"{cfg.init} init, {cfg.assignment}, {cfg.epochs} epochs, {cfg.n_seeds} seed(s)"
    return [
        {"metric": f"cluster acc on {scored}, mean/std ({what})", "ours": stat(final["acc"]),
         "seed": SEED_TEST_ACC},
        {"metric": "NMI, mean/std", "ours": stat(final["nmi"]), "seed": None},
        {"metric": "ARI, mean/std", "ours": stat(final["ari"]), "seed": None},
    ]  # fmt: skip
