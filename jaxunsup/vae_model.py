"""Post 003's ConvVAE, its loss and its training step (the `vae-z2` / `vae-z4` model).

`jaxunsup.vae` documents the experiment (seed, deviations) and re-exports everything here;
`vae_eval` scores and decodes trained models. Configs are `vae.Config`.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxunsup import backend, layers, training

if TYPE_CHECKING:
    from jaxunsup.vae import Config

MICRO_BATCH = 20  # rows per gradient micro-batch in `train_step` on CPU (`Config.micro_batch`)


def conv_out_size(h: int, k: int, s: int, p: int) -> int:
    """The post's `convcalc`: floor((h + 2p − k) / s + 1)."""
    return math.floor((h + 2 * p - k) / s + 1)


def deconv_out_size(h: int, k: int, s: int, p: int) -> int:
    """The post's `deconvcalc`: (h − 1)·s − 2p + k."""
    return (h - 1) * s - 2 * p + k


def architecture(input_size: int, channels, kernel_size: int = 3, stride: int = 2):
    """The post's size bookkeeping: (encoder output size, decoder size before the final
    layer, final layer kind "conv" | "deconv", its kernel size). Raises ValueError when the
    encoder shrinks the image to nothing."""
    channels = tuple(int(c) for c in channels)
    if len(channels) < 2 or min(channels) <= 0:
        raise ValueError(
            f"channels must list >= 2 positive sizes (e.g. (1, 32, 64)), got {channels}"
        )
    size = input_size
    for _ in channels[1:]:
        size = conv_out_size(size, kernel_size, stride, 1)
        if size < 1:
            raise ValueError(
                f"input_size {input_size} is too small for {len(channels) - 1} stride-{stride} "
                f"convolutions of kernel {kernel_size}; use fewer channels or larger images"
            )
    enc_size = size
    for _ in channels[1:]:
        size = deconv_out_size(size, kernel_size, stride, 0)
    if size >= input_size:
        return enc_size, size, "conv", size - input_size + 1
    return enc_size, size, "deconv", input_size - size + 1


class ConvVAE(nn.Module):
    """The post's flexible ConvVAE. Layer names are the torch paths `seq_enc.N` / `seq_dec.N`
    with '.' → '_'; tensors are NHWC, flattened in torch's NCHW order before the Linear layers
    so the state_dict converts one-to-one."""

    input_size: int = 28
    channels: tuple[int, ...] = (1, 32, 64)
    kernel_size: int = 3
    stride: int = 2
    latent_dim: int = 2
    conv_impl: str = "auto"  # `layers.resolve_impl`

    def setup(self):
        ch, k, s = tuple(self.channels), self.kernel_size, self.stride
        enc_size, _, final, final_k = architecture(self.input_size, ch, k, s)
        n = len(ch) - 1
        conv = functools.partial(layers.conv, impl=self.conv_impl)
        conv_t = functools.partial(layers.conv_transpose, impl=self.conv_impl)
        self.enc_convs = [
            conv(ch[i], ch[i + 1], k, s, 1, name=f"seq_enc_{2 * i}") for i in range(n)
        ]
        self.enc_out = layers.dense(
            enc_size**2 * ch[-1], 2 * self.latent_dim, name=f"seq_enc_{2 * n + 1}"
        )
        rev = ch[::-1]  # a reversed copy: the post reverses the caller's list in place
        self.dec_in = layers.dense(self.latent_dim, enc_size**2 * rev[0], name="seq_dec_0")
        pairs = [(rev[0], rev[0])] + [(rev[i], rev[i + 1]) for i in range(n - 1)]
        self.dec_convs = [
            conv_t(a, b, k, s, name=f"seq_dec_{3 + 2 * i}") for i, (a, b) in enumerate(pairs)
        ]
        final_layer = conv if final == "conv" else conv_t
        self.dec_out = final_layer(rev[-2], rev[-1], final_k, 1, name=f"seq_dec_{3 + 2 * n}")
        self.enc_size = enc_size

    def encode(self, x):
        """Images [B, H, W, C] → (mean, logvar), each [B, latent_dim]."""
        h = x
        for conv in self.enc_convs:
            h = nn.relu(conv(h))
        h = h.transpose(0, 3, 1, 2).reshape(h.shape[0], -1)  # [B, C·h·w] in torch's order
        h = self.enc_out(h)  # [B, 2·latent]
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def decode_logits(self, z):
        """Latents [B, latent_dim] → Bernoulli logits [B, H, W, C]."""
        c, e = self.channels[-1], self.enc_size
        h = nn.relu(self.dec_in(z))
        h = h.reshape(z.shape[0], c, e, e).transpose(0, 2, 3, 1)  # [B, e, e, C] from NCHW
        for conv in self.dec_convs:
            h = nn.relu(conv(h))
        return self.dec_out(h)

    def decode(self, z):
        """Latents → pixel probabilities [B, H, W, C] (the post's Sigmoid output)."""
        return nn.sigmoid(self.decode_logits(z))

    def __call__(self, x, eps):
        """The post's `forward` with the noise passed in: (xhat, mean, logvar)."""
        mean, logvar = self.encode(x)
        z = mean + jnp.exp(0.5 * logvar) * eps
        return self.decode(z), mean, logvar


def make_model(cfg: Config, input_size: int) -> ConvVAE:
    return ConvVAE(
        input_size=input_size, channels=tuple(cfg.channels), kernel_size=cfg.kernel_size,
        stride=cfg.stride, latent_dim=cfg.latent_dim, conv_impl=cfg.conv_impl,
    )  # fmt: skip


def create_state(key: jax.Array, cfg: Config, example: jax.Array):
    """A TrainState (Adam at `cfg.lr`) for images shaped like `example` [B, S, S, C]."""
    check_shape("example", example, cfg)
    model = make_model(cfg, int(example.shape[1]))
    eps = jnp.zeros((1, cfg.latent_dim), jnp.float32)
    params = jax.jit(model.init)(key, example[:1], eps)  # one compile, not op-by-op
    return training.create_train_state(model.apply, params, optax.adam(cfg.lr))


def latent_dim_of(params) -> int:
    """The latent size, read from the decoder's first Linear kernel [latent, features]."""
    return int(params["params"]["seq_dec_0"]["kernel"].shape[0])


def kl_divergence(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, I)) per row: −½ Σ (1 + logvar − mean² − exp(logvar))."""
    return -0.5 * jnp.sum(1.0 + logvar - mean**2 - jnp.exp(logvar), axis=-1)


def bernoulli_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
    """Σ over pixels of BCE(sigmoid(logits), x) = softplus(l) − x·l, finite for any logit.
    Sums every axis but the first: [B, ...] → [B]."""
    per_pixel = jax.nn.softplus(logits) - x * logits
    return jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=1)  # [B]


def negative_elbo_terms(params, apply_fn, x, eps):
    """(reconstruction NLL [B], KL [B]) with z = mean + exp(logvar / 2)·eps, eps [B, latent]."""
    mean, logvar = apply_fn(params, x, method="encode")
    z = mean + jnp.exp(0.5 * logvar) * eps
    logits = apply_fn(params, z, method="decode_logits")
    return bernoulli_nll(logits, x), kl_divergence(mean, logvar)


def loss_from_eps(params, apply_fn, batch, eps):
    """The post's `lossfunc`: batch mean of the summed BCE plus batch mean of the KL."""
    bce, kl = negative_elbo_terms(params, apply_fn, batch, eps)
    return jnp.mean(bce) + jnp.mean(kl), {"bce": jnp.mean(bce), "kl": jnp.mean(kl)}


def _step_noise(params, batch, key) -> jax.Array:
    """The ε ~ N(0, I) [B, latent] a training step draws for `batch` from its step `key`."""
    return jax.random.normal(key, (batch.shape[0], latent_dim_of(params)), batch.dtype)


def loss_fn(params, apply_fn, batch, key):
    """`loss_from_eps` with the ε `_step_noise` draws from `key` (the step key)."""
    return loss_from_eps(params, apply_fn, batch, _step_noise(params, batch, key))


def default_micro_batch(batch: int) -> int:
    """`train_step`'s micro-batch limit when none is given: `MICRO_BATCH` rows on CPU, the
    whole batch on an accelerator or on a mesh."""
    return MICRO_BATCH if backend.on_cpu() and not backend.on_mesh() else batch


def in_parts(fn, *args):
    """`fn(*args)` for row-wise `fn`, over parts of `default_micro_batch` rows
    (`training.map_over_micro_batches`): on CPU the decoder's activations then stay in cache,
    2.8-3.3× faster per row than one pass over 100-2,000 rows; on an accelerator one pass."""
    n = int(jax.tree.leaves(args)[0].shape[0])
    size = training.micro_batch_size(n, default_micro_batch(n))
    return training.map_over_micro_batches(fn, size, *args)


@functools.partial(jax.jit, static_argnames="micro_batch", donate_argnums=0)
def train_step(state, batch, key, *, micro_batch: int | None = None):
    """One Adam step on the post's loss (`loss_fn`: the same ε, drawn for the whole batch
    from `fold_in(key, state.step)`), its gradient the mean of the gradients of micro-batches
    of `training.micro_batch_size(B, micro_batch)` rows (`micro_batch=None`:
    `default_micro_batch`): the batch's gradient up to float rounding, faster on CPU at the
    post's batch of 100 (micro-batches of 20 keep the decoder's [20, 15, 15, 288] tap
    products in cache; benchmarks/README.md)."""
    eps = _step_noise(state.params, batch, jax.random.fold_in(key, state.step))
    grad_fn = jax.value_and_grad(loss_from_eps, has_aux=True)
    limit = default_micro_batch(batch.shape[0]) if micro_batch is None else micro_batch
    size = training.micro_batch_size(batch.shape[0], limit)
    (loss, metrics), grads = training.mean_over_micro_batches(
        lambda x, e: grad_fn(state.params, state.apply_fn, x, e), size, batch, eps
    )
    return state.apply_gradients(grads=grads), {"loss": loss, **metrics}


def check_shape(name: str, images, cfg: Config) -> None:
    """Square NHWC images with `cfg.channels[0]` channels that `cfg`'s encoder can take.
    Shapes only, so `create_state` runs it under jit too."""
    c = cfg.channels[0]
    training.check_shape(name, images, (None, None, c), f"images with channels[0]={c} channels",
                         "set channels to match the data")  # fmt: skip
    shape = np.shape(images)
    if shape[1] != shape[2]:
        raise ValueError(f"{name} must be square images [N, S, S, {c}], got shape {shape}")
    architecture(shape[1], cfg.channels, cfg.kernel_size, cfg.stride)  # raises if too small
