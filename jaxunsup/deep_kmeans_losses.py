"""Deep K-Means' schedules and clustering losses (post 000 §7, Fard et al. 2018, DEC): pure
functions of latents [B, D] and centroids [K, D]; `deep_kmeans` trains with them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def alpha_schedule(lam: float = 1e-3, t1: int = 50, t2: int = 200) -> optax.Schedule:
    """The post's clustering weight α as a function of the 0-based epoch (jit-friendly)."""

    def schedule(epoch):
        e = jnp.asarray(epoch, jnp.float32)
        ramp = lam * (e - t1) / (t2 - t1)
        return jnp.where(e >= t2, lam, jnp.where(e > t1, ramp, lam / (t2 - t1)))

    return schedule


def beta_values(beta0: float = 0.1, n: int = 40) -> np.ndarray:
    """Fard et al.'s annealed inverse temperatures: β_{i+1} = 2^{1/ln(i+1)²}·β_i, [n]."""
    i = np.arange(1, n, dtype=np.float64)
    return beta0 * 2.0 ** np.concatenate([[0.0], np.cumsum(1.0 / np.log(i + 1) ** 2)])


def beta_schedule(beta0: float = 0.1, epochs_per_value: int = 5, n: int = 40) -> optax.Schedule:
    """β for the 0-based epoch: value ⌊epoch / epochs_per_value⌋, the last one after that."""
    table = jnp.asarray(beta_values(beta0, n), jnp.float32)  # [n]

    def schedule(epoch):
        return table[jnp.minimum(jnp.asarray(epoch) // epochs_per_value, n - 1)]

    return schedule


# ----------------------------------------------------------------------------- losses


def sq_distances(z, centroids):
    """Squared Euclidean distances [B, K] of latents [B, D] to centroids [K, D]."""
    diff = z[:, None, :] - centroids[None, :, :]  # [B, K, D]
    return jnp.sum(diff * diff, axis=-1)


def assign(z, centroids):
    """Index of the nearest centroid of each latent (the post's `argminl2distance`): [B]."""
    return jnp.argmin(sq_distances(z, centroids), axis=1).astype(jnp.int32)


def hard_clustering_loss(z, centroids):
    """MSE(latent, nearest centroid), the nearest one found on the stop-gradient latent."""
    idx = assign(jax.lax.stop_gradient(z), jax.lax.stop_gradient(centroids))
    return jnp.mean((z - centroids[idx]) ** 2), idx


def soft_clustering_loss(z, centroids, beta):
    """Fard et al.'s Σ_k softmax_k(−β·d)·d, averaged over the batch, d in the post's MSE scale."""
    d2 = sq_distances(z, centroids)  # [B, K]
    weights = jax.nn.softmax(-beta * d2, axis=1)  # [B, K]
    return jnp.mean(jnp.sum(weights * d2, axis=1)) / z.shape[1], jnp.argmax(weights, axis=1)


def student_t(z, centroids):
    """DEC's soft assignment q_ik ∝ (1 + ‖z_i − μ_k‖²)⁻¹ (Student's t, one degree of freedom),
    returned as log q [B, K], computed without dividing by small numbers."""
    logits = -jnp.log1p(sq_distances(z, centroids))
    return logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)


def dec_target(q):
    """DEC's sharpened target p_ik ∝ q_ik² / f_k with f_k = Σ_i q_ik (over the batch): [B, K]."""
    p = q * q / jnp.sum(q, axis=0, keepdims=True)
    return p / jnp.sum(p, axis=1, keepdims=True)


def dec_clustering_loss(z, centroids, z_target):
    """KL(P ‖ Q) averaged over the batch (Xie et al. 2016): Q from the latents `z`, the fixed
    target P from the stop-gradient latents `z_target` (the clean images when `z` comes from
    augmented ones, as in DEC-DA)."""
    log_q = student_t(z, centroids)
    q_target = jnp.exp(student_t(jax.lax.stop_gradient(z_target), jax.lax.stop_gradient(centroids)))
    p = dec_target(q_target)
    kl = jnp.sum(p * (jnp.log(jnp.maximum(p, 1e-30)) - log_q), axis=1)
    return jnp.mean(kl), jnp.argmax(log_q, axis=1)
