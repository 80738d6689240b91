"""Deep K-Means of post 000 §7 — experiment `deep-kmeans`.

Seed: post 000 §7 ("깊은 K-평균 알고리즘"). The conv autoencoder of §4 with a
10-d latent (`Encoder`, `Decoder`; `jaxunsup.ae_conv.ConvAE`, layer names = the torch module
paths) and a `Kmeans` module whose 10 centroids are a learnable parameter drawn from U[0,1).
Each latent, detached, is assigned to its nearest centroid (argmin of the squared distance);
loss = MSE(reconstruction, input) + α·MSE(latent, its centroid), so the clustering term pulls
encoder and assigned centroids together. One Adam(1e-3) over encoder, decoder and centroids;
batch 128; 300 epochs; α ramps over the 0-based epoch e: λ/(T2−T1) up to T1, λ(e−T1)/(T2−T1)
from T1 to T2, λ from T2 (T1=50, T2=200, λ=1e-3). Test accuracy (Hungarian `cluster_acc`) is
printed every 10 epochs; the post reports 0.80 on the MNIST test split.

Options (each measured against the post's recipe in the README):
- `init="pretrain-kmeans"`: pretrain the autoencoder alone for `pretrain_epochs`, then start
  the centroids at k-means++ (`jaxunsup.kmeans.KMeans`, 10 restarts) on the training latents.
- `assignment="soft"`: Deep k-Means of Fard et al. (2018, arXiv:1806.10069): the clustering
  term is Σ_k softmax_k(−β·d_k)·d_k (d_k = squared distance to centroid k, divided by the
  latent size like the post's MSE), differentiated through the softmax, with Fard's annealed
  inverse temperature β_{n+1} = 2^{1/ln(n+1)²}·β_n from β_1 = 0.1, one value per
  `beta_epochs` epochs for `beta_values` values (Fard's α; called β here so that α stays the
  post's weight). As β → ∞ it is the hard loss.
- `assignment="dec"`: DEC's self-training (Xie et al. 2016, arXiv:1511.06335): Student-t soft
  assignments q_ik ∝ (1 + ‖z_i − μ_k‖²)⁻¹, the sharpened target p_ik ∝ q_ik²/Σ_i q_ik (over
  the batch, held fixed), clustering term KL(P ‖ Q); with `rec_weight=1` this is IDEC (Guo et
  al. 2017), with `rec_weight=0` plain DEC. Clusters are still the nearest centroids.
- `augment=True` (DEC-DA, Guo et al. 2018): every training batch, in pretraining and in the
  joint phase, is randomly rotated (±10°) and shifted (±10% of the side); the model
  reconstructs the augmented images, and DEC's target comes from the clean ones.
- `init="pretrain-tsne"`: as `pretrain-kmeans`, but the centroids are the mean latents of
  the clusters k-means++ finds on a 2-d t-SNE map of the latents (the manifold step of N2D,
  McConville et al. 2020): k-means in the latent space can merge digits (4/9, 3/5/8) into
  shared clusters that DEC never separates (the README compares the two).
- `code_relu=False`: a linear 10-d code (DEC, IDEC and Fard et al. all use one). With the
  post's ReLU, units whose pre-activation is negative for every image at init stay dead.
- `output_bias="mean"`: the last layer's bias starts at the logit of the mean training pixel
  instead of torch's U(−1/12, 1/12) draw. From torch's init (sigmoid ≈ 0.5 everywhere) the
  first Adam steps push every output down together, the codes grow and the sigmoid saturates,
  so some seeds (and the post's torch model) stall worse than a black image; from the mean
  logit every seed trains.
- `protocol="all"`: train and score on every image (train + test splits), as DEC/IDEC report
  deep clustering; the default `"post"` trains on the training split and scores the test split.
- `n_seeds`: seeds `seed .. seed+n_seeds−1` train together as one `vmap`-ped program. Seed i>0
  sees the data through a fixed permutation of its own, so its batches differ from seed 0's.

Deviations: the assignment is one vectorised argmin instead of a per-sample Python loop (same
result); the epoch reaches the compiled step as data (epoch = step // steps_per_epoch), so the
α ramp compiles once; each epoch drops the remainder of the shuffled data (the post's last
batch is smaller); without local MNIST files the embedded MNIST-5k is used; the post's
"save when the loss improves" becomes checkpoints every `checkpoint_every` epochs (resumable).

Run: `jaxunsup run deep-kmeans --workdir runs/dkm` (the post's recipe), or e.g.
`jaxunsup run deep-kmeans --workdir runs/dkm-pk --protocol all --init pretrain-kmeans --n-seeds 3`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxunsup import ae_conv, autoencoder, layers, training
from jaxunsup import augment as augment_lib
from jaxunsup import deep_kmeans_results as results_lib
from jaxunsup.data import Source
from jaxunsup.deep_kmeans_losses import (  # noqa: F401  (the model's math, named here too)
    alpha_schedule,
    assign,
    beta_schedule,
    beta_values,
    dec_clustering_loss,
    dec_target,
    hard_clustering_loss,
    soft_clustering_loss,
    sq_distances,
    student_t,
)
from jaxunsup.deep_kmeans_results import (  # noqa: F401  (the experiment's API)
    ASSIGNMENTS,
    INITS,
    OUTPUT_BIASES,
    PROTOCOLS,
    SEED_TEST_ACC,
    Assignment,
    Init,
    OutputBias,
    Protocol,
    check_config,
    load_data,
    manifold_centroids,
    mean_logit,
    scores,
    seed_data,
    split_for_protocol,
)
from jaxunsup.files import prepare_workdir, write_json

# `reproduce --quick`: 1,000 embedded digits, all scored; the improved recipe with 20 epochs of
# pretraining and 2 joint ones at batch 32 and Adam(6e-3) (~650 steps). The autoencoder must be
# trained before its latents are clustered: after the 14 steps of 2 epochs at batch 128 its
# codes still vary by ~0.03 around offsets of ~3, the first joint steps move every code more
# than that, and the hard assignment puts them all in one cluster (accuracy 0.11).
QUICK = {
    "protocol": "all", "n_train": 700, "n_test": 300, "source": "embedded",
    "init": "pretrain-kmeans", "code_relu": False, "output_bias": "mean", "batch_size": 32,
    "lr": 6e-3, "pretrain_epochs": 20, "epochs": 2, "t1": 0, "t2": 1, "eval_every": 1,
    "tsne_points": 300,
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Config:
    """Post 000 §7's Deep K-Means; defaults are the post's settings."""

    channels: int = 16  # the post's k
    latent: int = 10
    n_clusters: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 300
    t1: int = 50
    t2: int = 200
    lam: float = 1e-3  # the final clustering weight α
    assignment: Assignment = "hard"  # "hard" (the post) | "soft" (Fard et al. 2018) | "dec" (DEC)
    init: Init = "uniform"  # "uniform" (the post's U[0,1)) | "pretrain-kmeans" | "pretrain-tsne"
    augment: bool = False  # random rotation ±10° and shift ±10% of every training batch
    rec_weight: float = 1.0  # weight of the reconstruction MSE in the joint loss
    code_relu: bool = True  # the post's ReLU on the 10-d code; False: a linear code
    conv_impl: layers.ConvImpl = "auto"  # "xla" | "matmul"; auto: matmul on CPU only
    output_bias: OutputBias = "torch"  # "torch" init | "mean": logit of the mean training pixel
    pretrain_epochs: int = 50
    beta0: float = 0.1  # soft: Fard's first inverse temperature
    beta_epochs: int = 5  # soft: epochs per β value
    beta_values: int = 40  # soft: number of β values (the last one stays)
    protocol: Protocol = "post"  # "post": train split → test split | "all": every image
    n_seeds: int = 1
    seed: int = 0
    eval_every: int = 10
    source: Source = "auto"  # `data.load_mnist`'s
    data_dir: str | None = None
    n_train: int | None = None  # None: every image of the split
    n_test: int | None = None
    tsne_points: int = 2000
    checkpoint_every: int = 50


class DeepKMeans(ae_conv.ConvAE):
    """The post's `Encoder` + `Decoder` (§4's conv AE) and `Kmeans` centroids [K, latent]."""

    n_clusters: int = 10

    def setup(self):
        super().setup()
        self.centroids = self.param(
            "centroids", nn.initializers.uniform(1.0), (self.n_clusters, self.latent)
        )  # torch.rand: U[0, 1)

    def __call__(self, x):
        z = self.encode(x)
        return z, self.decode(z)


def _inputs(batch, key, augment: bool):
    return augment_lib.random_affine(batch, key) if augment else batch


def loss_fn(
    params, apply_fn, batch, key, *, alpha, assignment="hard", beta=1.0, augment=False,
    rec_weight=1.0,
):  # fmt: skip
    """rec_weight·MSE(reconstruction) + α·clustering loss; `alpha`, `beta` may be traced.

    With `augment`, the model sees (and reconstructs) a randomly rotated and shifted batch;
    DEC's target then comes from the clean batch.
    """
    x = _inputs(batch, key, augment)
    z, recon = apply_fn(params, x)
    rec = jnp.mean((recon - x) ** 2)
    centroids = params["params"]["centroids"]
    if assignment == "hard":
        clu, _ = hard_clustering_loss(z, centroids)
    elif assignment == "soft":
        clu, _ = soft_clustering_loss(z, centroids, beta)
    else:
        z_clean = apply_fn(params, batch, method="encode") if augment else z
        clu, _ = dec_clustering_loss(z, centroids, z_clean)
    loss = rec_weight * rec + alpha * clu
    return loss, {"rec": rec, "clu": clu, "alpha": alpha, "beta": beta}


def reconstruction_loss_fn(params, apply_fn, batch, key, *, augment=False):
    """The pretraining loss: MSE(reconstruction) only (centroid gradients are zero)."""
    x = _inputs(batch, key, augment)
    return jnp.mean((apply_fn(params, x)[1] - x) ** 2), {}


# ----------------------------------------------------------------------------- steps


@functools.partial(jax.jit, static_argnames=("cfg", "steps_per_epoch"), donate_argnums=0)
def train_step(state, batch, key, *, cfg: Config, steps_per_epoch: int):
    """One Adam step of the joint loss; α (and β) come from the epoch = step // steps_per_epoch."""
    key = jax.random.fold_in(key, state.step)
    epoch = state.step // steps_per_epoch
    alpha = alpha_schedule(cfg.lam, cfg.t1, cfg.t2)(epoch)
    beta = beta_schedule(cfg.beta0, cfg.beta_epochs, cfg.beta_values)(epoch)
    loss = functools.partial(
        loss_fn, alpha=alpha, assignment=cfg.assignment, beta=beta, augment=cfg.augment,
        rec_weight=cfg.rec_weight,
    )  # fmt: skip
    (value, aux), grads = jax.value_and_grad(loss, has_aux=True)(
        state.params, state.apply_fn, batch, key
    )
    return state.apply_gradients(grads=grads), {"loss": value, **aux}


pretrain_step = functools.partial(training.gradient_step, loss_fn=reconstruction_loss_fn)
augmented_pretrain_step = functools.partial(
    training.gradient_step, loss_fn=functools.partial(reconstruction_loss_fn, augment=True)
)


@functools.partial(jax.jit, static_argnames="step", donate_argnums=0)
def seeds_step(state, batch, key, *, step):
    """`step` for S models at once: `state` has a leading seed axis, `batch` is [B, S, ...].

    Metrics are means over the seeds (a NaN in any seed stays NaN), plus the worst loss.
    """
    state, out = jax.vmap(step, in_axes=(0, 1, None))(state, batch, key)
    return state, {**{k: jnp.mean(v) for k, v in out.items()}, "loss_max": jnp.max(out["loss"])}


def create_state(key: jax.Array, cfg: Config, example: jax.Array, output_bias=None):
    """One model: torch-initialised encoder/decoder, U[0,1) centroids, Adam(lr) over all.

    `output_bias`, when given, replaces the torch init of the last layer's bias.
    """
    training.check_shape(
        "example", example, (28, 28, 1), "28×28×1 images (the AE's Linear layers fix the size)",
        "pass a batch of the training images, e.g. images[:1]",
    )  # fmt: skip
    model = DeepKMeans(
        channels=cfg.channels, latent=cfg.latent, n_clusters=cfg.n_clusters,
        code_relu=cfg.code_relu, conv_impl=cfg.conv_impl,
    )  # fmt: skip
    params = model.init(key, example[:1])
    if output_bias is not None:
        last = params["params"]["decoder_7"]
        last = {**last, "bias": jnp.full_like(last["bias"], output_bias)}
        params = {"params": {**params["params"], "decoder_7": last}}
    return training.create_train_state(model.apply, params, optax.adam(cfg.lr))


def create_seed_states(cfg: Config, example: jax.Array, output_bias=None):
    """`cfg.n_seeds` models stacked on a leading axis, seed i from key(cfg.seed + i).

    One compiled program: run eagerly, the vmapped init dispatches (and compiles) each of its
    ~150 operations on its own, ~10 s on a 2-core CPU.
    """
    seeds = jnp.arange(cfg.seed, cfg.seed + cfg.n_seeds)
    bias = None if output_bias is None else float(output_bias)
    return _seed_states(seeds, jnp.asarray(example[:1]), cfg=cfg, output_bias=bias)


@functools.partial(jax.jit, static_argnames=("cfg", "output_bias"))
def _seed_states(seeds, example, *, cfg: Config, output_bias):
    return jax.vmap(lambda s: create_state(jax.random.key(s), cfg, example, output_bias))(seeds)


def with_centroids(state, centroids):
    """A fresh optimiser state (and step 0) for params with `centroids` [S, K, D] set."""
    params = state.params
    params = {"params": {**params["params"], "centroids": jnp.asarray(centroids, jnp.float32)}}
    return jax.vmap(lambda p: training.create_train_state(state.apply_fn, p, state.tx))(params)


# ----------------------------------------------------------------------------- verbs


@functools.partial(jax.jit, static_argnames="apply_fn")
def _encode_assign(params, apply_fn, images):
    def one(p):
        z = apply_fn(p, images, method="encode")  # [B, D]
        return z, assign(z, p["params"]["centroids"])

    z, idx = jax.vmap(one)(params)  # [S, B, D], [S, B]
    return jnp.swapaxes(z, 0, 1), jnp.swapaxes(idx, 0, 1)  # [B, S, D], [B, S]


@functools.partial(jax.jit, static_argnames="apply_fn")
def _reconstruct(params, apply_fn, images):
    return jax.vmap(lambda p: apply_fn(p, images)[1])(params)  # [S, B, 28, 28, 1]


def encode_assign(state, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latents [N, S, D] and nearest-centroid clusters [N, S] of `images` for every seed."""
    training.check_shape("images", images, (28, 28, 1), "28×28×1 images",
                         "pass images shaped like the training data")  # fmt: skip
    fn = functools.partial(_encode_assign, state.params, state.apply_fn)
    return training.batched_apply(fn, np.asarray(images, np.float32))


def kmeans_centroids(state, images: np.ndarray, cfg: Config) -> np.ndarray:
    """k-means++ centres (10 restarts) of each seed's latents of `images`: [S, K, D]."""
    from jaxunsup.kmeans import KMeans

    z, _ = encode_assign(state, images)  # [N, S, D]
    return np.stack([
        KMeans(cfg.n_clusters, n_init=10, random_state=cfg.seed + s).fit(z[:, s]).cluster_centers_
        for s in range(z.shape[1])
    ])  # fmt: skip


def tsne_centroids(state, images: np.ndarray, cfg: Config) -> np.ndarray:
    """`manifold_centroids` of each seed's latents of `images`: [S, K, D]."""
    z, _ = encode_assign(state, images)  # [N, S, D]
    return np.stack([
        manifold_centroids(z[:, s], cfg.n_clusters, seed=cfg.seed + s) for s in range(z.shape[1])
    ])  # fmt: skip


def restore(workdir: str | os.PathLike, cfg: Config | None = None):
    """The trained models in `workdir` (latest joint-phase checkpoint); returns (state, cfg)."""
    cfg = cfg if cfg is not None else autoencoder.load_config(Config, workdir)
    state = create_seed_states(cfg, jnp.zeros((1, 28, 28, 1), jnp.float32))
    return training.restore_latest(workdir, state)[0], cfg


# ----------------------------------------------------------------------------- run


def _fit(state, step, data, cfg, workdir, key, epochs, eval_fn=None):
    return training.fit(
        state, functools.partial(seeds_step, step=step), data, key=key, epochs=epochs,
        batch_size=cfg.batch_size, workdir=workdir, checkpoint_every=cfg.checkpoint_every,
        eval_fn=eval_fn, eval_every=cfg.eval_every,
    )  # fmt: skip


def _figures(workdir: Path, state, test, curves, cfg: Config) -> list[str]:
    z, clusters = encode_assign(state, test.images)  # seed 0 is shown
    recon = np.asarray(_reconstruct(state.params, state.apply_fn, test.images[:10]))[0]
    return results_lib.figures(workdir, test, z, clusters, recon, curves, cfg)


def run(cfg: Config, workdir: str | os.PathLike, data=None) -> dict:
    """Trains Deep K-Means (every seed at once); writes config.json, metrics.jsonl,
    checkpoints, figures and results.json into `workdir`; returns the results dict."""
    check_config(cfg)
    train, test = split_for_protocol(*(data if data is not None else load_data(cfg)), cfg)
    workdir = prepare_workdir(workdir, cfg)
    images = seed_data(train.images, cfg)
    bias = mean_logit(train.images) if cfg.output_bias == "mean" else None
    state = create_seed_states(cfg, jnp.asarray(train.images[:1]), bias)
    key_pre, key_fit = jax.random.split(jax.random.key(cfg.seed))
    if cfg.init != "uniform":
        step = augmented_pretrain_step if cfg.augment else pretrain_step
        state, _ = _fit(state, step, images, cfg, workdir / "pretrain", key_pre,
                        cfg.pretrain_epochs)  # fmt: skip
        init = kmeans_centroids if cfg.init == "pretrain-kmeans" else tsne_centroids
        state = with_centroids(state, init(state, train.images, cfg))
    initial = scores(test.labels, encode_assign(state, test.images)[1])

    def eval_fn(state):
        s = scores(test.labels, encode_assign(state, test.images)[1])
        per_seed = {f"{m}_{i}": v for m, vs in s.items() for i, v in enumerate(vs)}
        return {**{m: float(np.mean(vs)) for m, vs in s.items()}, **per_seed}

    steps_per_epoch = len(images) // cfg.batch_size
    step = functools.partial(train_step, cfg=cfg, steps_per_epoch=steps_per_epoch)
    state, history = _fit(state, step, images, cfg, workdir, key_fit, cfg.epochs, eval_fn)
    curves = results_lib.curves(history, initial, cfg.n_seeds)
    final = {m: [c[-1] for c in curves[m]] for m in ("acc", "nmi", "ari")}
    scored = (f"all {len(test.images)} images (trained on them)" if cfg.protocol == "all"
              else f"the {len(test.images)} test images")  # fmt: skip
    results = {
        "experiment": "deep-kmeans",
        "data": train.source,
        "protocol": cfg.protocol,
        "n_train": len(train.images),
        "n_scored": len(test.images),
        "seeds": [cfg.seed + s for s in range(cfg.n_seeds)],
        "initial": initial,
        "final": final,
        "final_mean": {m: float(np.mean(v)) for m, v in final.items()},
        "final_std": {m: float(np.std(v)) for m, v in final.items()},
        "curves": curves,
        "train_loss": [r["loss"] for r in history],
        "figures": _figures(workdir, state, test, curves, cfg),
        "table": results_lib.table(final, cfg, scored),
    }
    write_json(workdir / "results.json", results)
    return results
