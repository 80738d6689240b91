"""What every GAN here shares: the losses, `GANState` (two TrainStates), the jitted D-then-G
step `gan_step` (described by a hashable `StepSpec`), `create_gan_state`, sampling and the
latent tools of post 001 (`interpolate`, `seed_arithmetic`).

`jaxunsup.gan` (post 000 §5.1) re-exports these names; `dcgan` and `gan_simple` use them through
it. The run body every GAN shares is in `gan_train`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import training

LN2 = math.log(2.0)


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
    post 000's one update on the sum of both losses. real_label: D's target for real images
    (below 1: one-sided label smoothing, Salimans et al. 2016; G's target stays 1).
    """

    latent_dim: int = 128
    noise: Literal["normal", "uniform"] = "normal"
    loss: Literal["bce", "mse"] = "bce"
    separate_d_steps: bool = False
    real_label: float = 1.0


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
    t_real = spec.real_label
    if spec.separate_d_steps:  # post 001: D.train(real, 1), then D.train(fake, 0)
        (l_real, p_real), grads = grad_fn(d.params, d.apply_fn, real, t_real, k_real, spec.loss)
        d = d.apply_gradients(grads=grads)
        (l_fake, p_fake), grads = grad_fn(d.params, d.apply_fn, fake, 0.0, k_fake, spec.loss)
        return d.apply_gradients(grads=grads), (l_real + l_fake) / 2, p_real, p_fake

    def loss(params):  # post 000: one backward through loss(real, 1) + loss(fake, 0)
        x = jnp.concatenate([real, fake])  # [2B, ...]: one forward pass for both halves
        logits = d.apply_fn(params, x, train=True, rngs={"dropout": k_real})
        n = real.shape[0]
        l_total = gan_loss(logits[:n], t_real, spec.loss) + gan_loss(logits[n:], 0.0, spec.loss)
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


@functools.cache
def step_for(spec: StepSpec):
    """The module-level step for `spec` (one object per spec, so `fit` compiles it once)."""
    return functools.partial(gan_step, spec=spec)


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
