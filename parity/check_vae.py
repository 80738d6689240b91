"""Parity of post 003's ConvVAE (`jaxunsup.vae`) against the post's torch code (`torch_vae`).

The noise ε is drawn in JAX (step t's ε = normal(fold_in(key, t)), exactly what
`vae.train_step` draws) and handed to torch.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torch.nn.functional as F

from jaxunsup import data, layers, training, vae
from parity import torch_vae
from parity.convert import params_to_torch, torch_to_params
from parity.device import module, numpy, tensor
from parity.helpers import IMPLS, grad_rows, nchw, row, worst

# (input size, channels, kernel, stride): the post's model and two other shapes of its rules
SHAPES = [(28, (1, 32, 64), 3, 2), (32, (1, 16, 32, 64), 3, 2), (28, (1, 8, 16), 3, 4)]


def _pair(size, channels, k, s, latent=2, seed=0, impl="auto"):
    """A torch ConvVAE built by the post's rules (Unflatten computed) and our model (convs by
    `impl`), with the torch weights copied."""
    enc = vae.architecture(size, channels, k, s)[0]
    torch.manual_seed(seed)
    ref = torch_vae.ConvVAE(size, list(channels), k, s, latent, unflatten=(channels[-1], enc, enc))
    ref = module(ref)
    sd = {name: t.clone() for name, t in ref.state_dict().items()}
    cfg = vae.Config(channels=channels, kernel_size=k, stride=s, latent_dim=latent, conv_impl=impl)
    return ref, sd, vae.make_model(cfg, size), torch_to_params(sd)


def _eps(key, step, batch, latent):
    return jax.random.normal(jax.random.fold_in(key, step), (batch, latent))


def check_vae_ops(impls=IMPLS) -> list[dict]:
    """L0 of `layers.conv2d` / `conv_transpose2d` by each impl, with torch's padding, against
    torch's conv2d / conv_transpose2d: the VAE's shapes and a few others, each 3 → 4 and
    4 → 3 channels (both of the matmul form's branches). At "highest" precision (the policy
    `python -m parity` and the tests set globally; here also locally, as every check does)."""

    rows = []
    with jax.default_matmul_precision("highest"):
        for impl in impls:
            rows += _ops_rows(f"vae-ops [{impl}]", impl)
    return rows


def _ops_rows(name, impl) -> list[dict]:
    rng = np.random.default_rng(0)
    conv = jax.jit(layers.conv2d, static_argnums=(2, 3, 4))
    conv_t = jax.jit(layers.conv_transpose2d, static_argnums=(2, 3, 4))
    channels, rows = [(3, 4), (4, 3)], []
    for (k, s, p, size), (i, o) in itertools.product(
        [(3, 2, 1, 28), (3, 2, 1, 7), (4, 1, 0, 31), (5, 3, 2, 11)], channels
    ):
        x = rng.normal(size=(2, size, size, i)).astype(np.float32)
        w = rng.normal(size=(o, i, k, k)).astype(np.float32)  # torch [O, I, kh, kw]
        ours = conv(x, w.transpose(2, 3, 1, 0), (s, s), ((p, p), (p, p)), impl)
        theirs = numpy(F.conv2d(nchw(x), tensor(w), stride=s, padding=p)).transpose(0, 2, 3, 1)
        rows.append(row(name, "L0", f"conv k{k} s{s} p{p} on {size}², {i} → {o}", ours, theirs,
                        1e-4))  # fmt: skip
    for (k, s, size), (i, o) in itertools.product(
        [(3, 2, 7), (3, 2, 15), (2, 1, 27), (4, 3, 5)], channels
    ):
        x = rng.normal(size=(2, size, size, i)).astype(np.float32)
        w = rng.normal(size=(i, o, k, k)).astype(np.float32)  # torch [I, O, kh, kw]
        pads = ((k - 1, k - 1), (k - 1, k - 1))  # torch's padding 0
        ours = conv_t(x, w.transpose(2, 3, 1, 0), (s, s), pads, impl)
        theirs = numpy(F.conv_transpose2d(nchw(x), tensor(w), stride=s)).transpose(0, 2, 3, 1)
        rows.append(row(name, "L0", f"conv_transpose k{k} s{s} on {size}², {i} → {o}", ours,
                        theirs, 1e-4))  # fmt: skip
    return rows


def check_vae(steps=100, batch_size=100, lr=1e-3, impls=IMPLS, trained=None) -> list[dict]:
    """L0 forward (three shapes of the post's rules) and L1 loss + gradients for each conv impl
    in `impls` (rows `vae-z2 [impl]`); L2 one Adam step and L3 `steps` Adam steps from the same
    weights, batches and noise (the post's model) for `trained` (default: every impl)."""
    key = jax.random.key(0)
    images = data.load_mnist("train", source="embedded").images  # 4,000 digits
    n_batches = len(images) // batch_size
    batches = [images[(t % n_batches) * batch_size :][:batch_size] for t in range(steps)]
    rows = []
    with jax.default_matmul_precision("highest"):
        for impl in impls:
            name = f"vae-z2 [{impl}]"
            rows += _forward_rows(name, impl, key)
            rows += _gradient_rows(name, impl, key, batches[0])
            if trained is None or impl in trained:
                rows += _training_rows(name, impl, key, batches, lr)
    return rows


def _forward_rows(name, impl, key) -> list[dict]:
    """L0: xhat, mean, logvar with the same ε, for each shape of `SHAPES`."""

    rows = []
    for size, channels, k, s in SHAPES:
        ref, _, model, params = _pair(size, channels, k, s, impl=impl)
        x = np.random.default_rng(1).uniform(size=(8, size, size, 1)).astype(np.float32)
        eps = _eps(key, 0, 8, 2)
        ours = jax.jit(model.apply)(params, jnp.asarray(x), eps)
        theirs = ref(nchw(x), tensor(eps))
        label = f"{size}² {channels} k{k} s{s}"
        for what, a, b in zip(("xhat", "mean", "logvar"), ours, theirs, strict=True):
            b = numpy(b)
            b = b.transpose(0, 2, 3, 1) if b.ndim == 4 else b
            rows.append(row(name, "L0", f"{what}, {label}", a, b, atol=1e-5))
    return rows


def _gradient_rows(name, impl, key, x) -> list[dict]:
    """L1: the post's loss and its gradients on one batch."""

    ref, sd, model, params = _pair(*SHAPES[0], impl=impl)
    eps = _eps(key, 0, len(x), 2)
    grad_fn = jax.jit(jax.value_and_grad(vae.loss_from_eps, has_aux=True), static_argnums=1)
    (loss, _), grads = grad_fn(params, model.apply, jnp.asarray(x), eps)
    t_x = nchw(x)
    xhat, mean, logvar = ref(t_x, tensor(eps))
    t_loss = torch_vae.lossfunc(mean, logvar, t_x, xhat)
    t_loss.backward()
    return [row(name, "L1", "loss", loss, t_loss.item(), atol=0, rtol=1e-5),
            grad_rows(name, grads, ref, atol=1e-4, rtol=1e-4)]  # fmt: skip


def _training_rows(name, impl, key, batches, lr) -> list[dict]:
    """L2 and L3: Adam steps through `vae.train_step` (which draws ε from fold_in(key, t))."""

    ref, sd, model, params = _pair(*SHAPES[0], impl=impl)
    batch_size, steps = len(batches[0]), len(batches)
    state = training.create_train_state(model.apply, params, optax.adam(lr))
    losses, after_one = [], None
    for t, b in enumerate(batches):
        state, m = vae.train_step(state, jnp.asarray(b), key)
        losses.append(float(m["loss"]))
        if t == 0:
            after_one = params_to_torch(jax.device_get(state.params), sd)
    torch_vae.train_steps(ref, [nchw(batches[0])], [tensor(_eps(key, 0, batch_size, 2))], lr)
    p_err = [row(name, "L2", n, after_one[n], numpy(v), atol=1e-2 * lr)
             for n, v in ref.state_dict().items()]  # fmt: skip
    rows = [worst(p_err, "params after 1 Adam step")]
    ref.load_state_dict(sd)
    t_eps = [tensor(_eps(key, t, batch_size, 2)) for t in range(steps)]
    t_losses = torch_vae.train_steps(ref, [nchw(b) for b in batches], t_eps, lr)
    # float32 rounding (and the logits-vs-sigmoid BCE on saturating pixels) compounds
    # through Adam: ~1e-7 at step 0, ~1e-5 at step 50, ~1e-3 at step 100
    rows.append(row(name, "L3", f"loss curve, {steps} steps", losses, t_losses, atol=0,
                    rtol=5e-3))  # fmt: skip
    return rows
