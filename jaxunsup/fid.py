"""Sample quality for digit GANs: a classifier-feature Fréchet distance and mode-collapse numbers.

The GAN posts (000 §5, 001) judge samples by eye. To put numbers on post 001's story (mode
collapse until the fixes) this module scores a generator the way FID does (Heusel et al. 2017,
"GANs trained by a two time-scale update rule converge to a local Nash equilibrium"), with one
change: Inception-v3 knows nothing of 28×28 digits, so the features are the 128-unit penultimate
layer of a small CNN that jaxunsup trains on the same data set (MNIST or FashionMNIST). Numbers
are therefore comparable between runs that use the same classifier, not with published FIDs.

- `train_classifier` / `load_or_train_classifier`: Conv(1,16,3,s2,p1) → Conv(16,32,3,s2,p1) →
  Dense(1568,128) → Dense(128,10), ReLU, Adam 3e-3, batch 50, 3 epochs (about 95 % test accuracy
  on the embedded 4,000 digits, in seconds on a CPU); its params are cached in
  a directory (the run's workdir) with its test accuracy, and reused by later runs.
- `frechet_distance(mu1, sigma1, mu2, sigma2)`: ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) in
  float64, the trace of the square root taken from the eigenvalues of Σ1^½ Σ2 Σ1^½ (symmetric
  PSD, so no complex parts as `scipy.linalg.sqrtm` can give).
- `label_entropy`: entropy (nats, max ln 10) of the classifier's predicted-label histogram; a
  collapsed generator draws few classes. `mean_pairwise_distance`: mean Euclidean distance
  between samples (pixels in [0, 1]); a collapsed generator's samples sit close together.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxunsup import checkpoint, layers, training
from jaxunsup.files import read_json, write_json

N_CLASSES = 10
FEATURES = 128


class Classifier(nn.Module):
    """Small CNN for 28×28×1 images in [0, 1]; `features` is the 128-unit ReLU layer."""

    def setup(self):
        self.conv_0 = layers.conv(1, 16, 3, stride=2, padding=1, name="conv_0")
        self.conv_2 = layers.conv(16, 32, 3, stride=2, padding=1, name="conv_2")
        self.fc_0 = layers.dense(7 * 7 * 32, FEATURES, name="fc_0")
        self.fc_2 = layers.dense(FEATURES, N_CLASSES, name="fc_2")

    def features(self, x):
        h = nn.relu(self.conv_0(x))  # [B, 14, 14, 16]
        h = nn.relu(self.conv_2(h))  # [B, 7, 7, 32]
        return nn.relu(self.fc_0(h.reshape(h.shape[0], -1)))  # [B, 1568] → [B, 128]

    def logits_and_features(self, x):
        feats = self.features(x)
        return self.fc_2(feats), feats  # [B, 10], [B, 128]

    def __call__(self, x):
        return self.logits_and_features(x)[0]  # [B, 10] logits


class ClassifierInfo(NamedTuple):
    params: dict
    accuracy: float  # on the test images it was scored on
    source: str  # the data it was trained on


def _loss_fn(params, apply_fn, batch, key):
    del key
    images, labels = batch
    logits = apply_fn(params, images)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, {"acc": jnp.mean(jnp.argmax(logits, -1) == labels)}


_train_step = functools.partial(training.gradient_step, loss_fn=_loss_fn)


@jax.jit
def _logits_and_features(params, images):
    return Classifier().apply(params, images, method="logits_and_features")


def predict(params, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], features [N, 128]) of images [N, 28, 28, 1] in [0, 1]."""
    images = np.asarray(images, np.float32)
    n = len(images)  # padded to whole batches of 500: one compilation for every call
    images = np.concatenate([images, np.zeros((-n % 500, *images.shape[1:]), np.float32)])
    fn = functools.partial(_logits_and_features, params)
    logits, feats = training.batched_apply(fn, images, batch_size=500)
    return np.argmax(logits[:n], -1), feats[:n]


@jax.jit
def _init(key):
    return Classifier().init(key, jnp.zeros((1, 28, 28, 1)))


def train_classifier(
    train_images, train_labels, test_images, test_labels, *, seed=0, epochs=3, batch_size=50
) -> tuple[dict, float]:
    """Trains `Classifier` (Adam 3e-3) and returns (params, test accuracy)."""
    training.check_positive("classifier epochs", epochs, integer=True)
    images = training.check_images("classifier train images", train_images, (28, 28, 1))
    labels = np.asarray(train_labels, np.int32)
    key_init, key_fit = jax.random.split(jax.random.key(seed))
    params = _init(key_init)
    state = training.create_train_state(Classifier().apply, params, optax.adam(3e-3))
    state, _ = training.fit(
        state, _train_step, (images, labels), key=key_fit, epochs=epochs,
        batch_size=min(batch_size, len(images)), verbose=False, progress=False,
    )  # fmt: skip
    pred, _ = predict(state.params, test_images)
    return state.params, float(np.mean(pred == np.asarray(test_labels)))


def load_or_train_classifier(
    directory: str | os.PathLike, train, test, *, seed: int = 0, epochs: int = 3
) -> ClassifierInfo:
    """The classifier cached in `directory` for `train.source`, else a freshly trained one
    (saved there with its test accuracy). `train`/`test` are `data.ImageData`."""
    directory = Path(directory)
    info_path, params_path = directory / "classifier.json", directory / "classifier_params"
    wanted = {"source": train.source, "n_train": len(train.images), "epochs": epochs, "seed": seed}
    if info_path.exists() and params_path.exists():
        info = read_json(info_path)
        if {k: info.get(k) for k in wanted} == wanted:
            target = jax.eval_shape(_init, jax.random.key(0))
            params = checkpoint.load_pytree(params_path, target)
            return ClassifierInfo(params, float(info["accuracy"]), train.source)
    params, acc = train_classifier(
        train.images, train.labels, test.images, test.labels, seed=seed, epochs=epochs
    )
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint.save_pytree(params_path, params)
    write_json(info_path, {**wanted, "accuracy": acc})
    return ClassifierInfo(params, acc, train.source)


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64, ddof 1) of features [N, D]."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))[None, :]) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet (2-Wasserstein²) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"need means [D] and covariances [D, D] of one D, got {mu1.shape}, {s1.shape}, "
            f"{mu2.shape}, {s2.shape}"
        )
    r1 = _sqrt_psd(s1)
    eig = np.linalg.eigvalsh(r1 @ s2 @ r1)  # the eigenvalues of Σ1 Σ2
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0, None))))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def frechet_distance_of(features_a, features_b) -> float:
    """`frechet_distance` between the Gaussians fitted to two feature sets [N, D], [M, D]."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def label_entropy(labels, n_classes: int = N_CLASSES) -> float:
    """Entropy in nats of the histogram of integer `labels` (ln n_classes when uniform)."""
    counts = np.bincount(np.asarray(labels).reshape(-1), minlength=n_classes).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(max(0.0, -(p * np.log(p)).sum()))  # max: no −0.0


def mean_pairwise_distance(images, max_samples: int = 1000) -> float:
    """Mean Euclidean distance over the distinct pairs of the first `max_samples` images."""
    x = np.asarray(images, np.float64)[:max_samples].reshape(min(len(images), max_samples), -1)
    if len(x) < 2:
        raise ValueError("mean_pairwise_distance needs at least two images")
    sq = np.sum(x * x, axis=1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0, None)  # [n, n]
    n = len(x)
    return float(np.sqrt(d2)[np.triu_indices(n, k=1)].mean())


def score(clf: ClassifierInfo, images, reference) -> dict:
    """FID-style scores of `images` [N, 28, 28, 1] in [0, 1] against `reference` features'
    `gaussian_stats`: {"fid", "label_entropy", "mean_pairwise_distance", "n"}."""
    labels, feats = predict(clf.params, images)
    return {
        "fid": frechet_distance(*gaussian_stats(feats), *reference),
        "label_entropy": label_entropy(labels),
        "mean_pairwise_distance": mean_pairwise_distance(images),
        "n": int(len(images)),
    }
