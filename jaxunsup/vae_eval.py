"""Scoring and decoding a trained ConvVAE (`jaxunsup.vae` re-exports these): the per-image
ELBO, the importance-weighted NLL bound (IWAE), encode / decode / sample / reconstruct, and
the latent grid of the manifold figure. Row-wise work runs in parts (`vae_model.in_parts`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import training
from jaxunsup.vae_model import bernoulli_nll, in_parts, latent_dim_of, negative_elbo_terms

LOG_2PI = math.log(2.0 * math.pi)


def log_importance_weights(params, apply_fn, x, eps):
    """log p(x|z) + log p(z) − log q(z|x) for z = mean + σ·eps; x [B, ...], eps [B, K, latent]
    → [B, K]. Its mean over K is the one-sample ELBO estimate."""
    b, k, d = eps.shape
    mean, logvar = apply_fn(params, x, method="encode")  # [B, latent] each
    z = mean[:, None, :] + jnp.exp(0.5 * logvar)[:, None, :] * eps  # [B, K, latent]

    def log_px_of(z_rows, image):  # [R, latent], [R] (the image each sample is of) → [R]
        logits = apply_fn(params, z_rows, method="decode_logits")  # [R, H, W, C]
        return -bernoulli_nll(logits, x[image])

    image = jnp.repeat(jnp.arange(b), k)  # [B·K]
    log_px = in_parts(log_px_of, z.reshape(b * k, d), image).reshape(b, k)
    log_pz = -0.5 * jnp.sum(z**2 + LOG_2PI, axis=-1)
    log_qz = -0.5 * jnp.sum(eps**2 + logvar[:, None, :] + LOG_2PI, axis=-1)
    return log_px + log_pz - log_qz


def iwae_nll_from_eps(params, apply_fn, x, eps):
    """−log (1/K) Σ_k w_k, the importance-weighted NLL bound per image [B] (Burda et al.)."""
    log_w = log_importance_weights(params, apply_fn, x, eps)
    return -(jax.nn.logsumexp(log_w, axis=1) - math.log(eps.shape[1]))


def _image_eps(key, index, shape):
    """Noise for image `index` [B] (int), independent of how the images are batched."""
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), shape))(index)


@functools.partial(jax.jit, static_argnames="apply_fn")
def _elbo_batch(params, apply_fn, key, batch):
    images, index = batch
    eps = _image_eps(key, index, (latent_dim_of(params),))  # [B, latent]
    bce, kl = in_parts(functools.partial(negative_elbo_terms, params, apply_fn), images, eps)
    return -(bce + kl)


@functools.partial(jax.jit, static_argnames=("apply_fn", "k"))
def _iwae_batch(params, apply_fn, key, batch, k):
    images, index = batch
    eps = _image_eps(key, index, (k, latent_dim_of(params)))  # [B, K, latent]
    return iwae_nll_from_eps(params, apply_fn, images, eps)


def check_input(state, images, name: str = "images") -> np.ndarray:
    """`images` as float32 after checking that `state`'s model takes their shape."""
    model = state.apply_fn.__self__  # the ConvVAE whose `apply` the state holds
    s, c = model.input_size, model.channels[0]
    training.check_shape(name, images, (s, s, c), f"the model's {s}×{s}×{c} images",
                         "pass images shaped like the training data")  # fmt: skip
    return np.asarray(images, np.float32)


def _indexed(state, images) -> tuple[np.ndarray, np.ndarray]:
    images = check_input(state, images)
    return images, np.arange(len(images), dtype=np.int32)


def elbo(state, images, key, batch_size: int = 500) -> np.ndarray:
    """Per-image ELBO (nats; one posterior sample, analytic KL) of `images` [N, S, S, C]; the
    test loss is its negative mean. Image i's noise comes from `fold_in(key, i)`."""
    fn = functools.partial(_elbo_batch, state.params, state.apply_fn, key)
    return training.batched_apply(fn, _indexed(state, images), batch_size)


def iwae_nll(state, images, key, k: int = 100, chunk: int = 2000) -> np.ndarray:
    """Per-image importance-weighted NLL estimate (nats) with `k` posterior samples: an upper
    bound on −log p(x) that tightens as k grows; k=1 is the one-sample −ELBO with sampled KL.
    About `chunk` decoder passes run per call."""
    training.check_positive("k", k, integer=True)
    fn = functools.partial(_iwae_batch, state.params, state.apply_fn, key, k=k)
    return training.batched_apply(fn, _indexed(state, images), max(1, chunk // k))


@functools.partial(jax.jit, static_argnames=("apply_fn", "method"))
def _apply(params, apply_fn, x, method):
    return in_parts(lambda rows: apply_fn(params, rows, method=method), x)


def encode(state, images) -> tuple[np.ndarray, np.ndarray]:
    """(mean, logvar) of q(z|x) for `images` [N, S, S, C], each [N, latent]."""
    fn = functools.partial(_apply, state.params, state.apply_fn, method="encode")
    return training.batched_apply(fn, check_input(state, images))


def decode(state, z) -> np.ndarray:
    """Pixel probabilities [N, S, S, C] for latents `z` [N, latent]."""
    latent = latent_dim_of(state.params)
    training.check_shape("z", z, (latent,), f"latents of the model's {latent} dimensions",
                         "pass latents that encode returned")  # fmt: skip
    fn = functools.partial(_apply, state.params, state.apply_fn, method="decode")
    return training.batched_apply(fn, np.asarray(z, np.float32))


def sample(state, key, n: int) -> np.ndarray:
    """`n` images decoded from z ~ N(0, I)."""
    training.check_positive("n", n, integer=True)
    return decode(state, jax.random.normal(key, (n, latent_dim_of(state.params))))


def reconstruct(state, images) -> np.ndarray:
    """Decodes the posterior means of `images` (deterministic reconstructions)."""
    return decode(state, encode(state, images)[0])


def manifold_latents(n: int = 20) -> np.ndarray:
    """An n×n grid of 2-D latents at the N(0, 1) quantiles 0.05..0.95 (Kingma & Welling's
    manifold figure), row-major with z₂ decreasing down the rows: [n·n, 2]."""
    from scipy.stats import norm

    q = norm.ppf(np.linspace(0.05, 0.95, n))
    z1, z2 = np.meshgrid(q, q[::-1])  # [n, n] each
    return np.stack([z1.ravel(), z2.ravel()], axis=1).astype(np.float32)  # [n·n, 2]
