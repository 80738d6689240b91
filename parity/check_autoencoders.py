"""Parity of the autoencoder family (posts 000 §3-4 and 004) against `torch_autoencoders`.

Every model gets the docs/DESIGN.md levels from the same torch weights (converted by
`parity.convert`): L0 forward, L1 loss and every gradient, L2 every parameter after one Adam
step, L3 a short run from the same weights and batch order. The denoiser's noise is drawn in
JAX (`ae_denoising.add_noise` with the step's key) and handed to torch as the noisy input.
The ConvTranspose with `output_padding=1` (post 000 §4's last layer, the known trap) is also
checked alone, both as `patch_conv` computes it and as `layers.conv_transpose` does.

`parity.checks` imports this module for its CHECKS table, so `row` is imported inside the
functions (a module-level import would be circular).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from jaxunsup import (
    ae_conv,
    ae_denoising,
    ae_keras,
    autoencoder,
    data,
    layers,
    patch_conv,
    training,
)
from parity import torch_autoencoders as ta
from parity.convert import params_to_torch, torch_to_params


def _batches(n_batches: int, batch_size: int) -> np.ndarray:
    """The embedded training digits in order, cycled: [n_batches, batch_size, 28, 28, 1]."""
    images = data.load_mnist("train", source="embedded").images
    idx = np.arange(n_batches * batch_size) % len(images)
    return images[idx].reshape(n_batches, batch_size, 28, 28, 1)


def _nchw(x) -> torch.Tensor:
    return torch.from_numpy(np.array(x, np.float32).transpose(0, 3, 1, 2).copy())


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _one_torch_thread(fn):
    """Runs a check with one torch thread: its pool spin-waits on shared cores (10× slower
    steps on a busy 2-core machine), and one thread gives the same numbers."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapped


def _worst(rows: list[dict], what: str) -> dict:
    worst = max(rows, key=lambda r: r["max_abs"])
    return {**worst, "what": what, "ok": all(r["ok"] for r in rows)}


def _levels(name, ref, model, loss_fn, step, batches, *, lr, eps, inputs=None, tol) -> list:
    """L0-L3 for a model whose loss is MSE(model(inputs(x, key)), x).

    Args:
      ref: the torch reference (NCHW in and out), at its initial weights.
      model: the flax module; `loss_fn`/`step` its loss and jitted train step.
      batches: [S, B, 28, 28, 1]; the first one serves L0-L2.
      inputs: `(x, key) -> model input` (the denoiser's noise); default x itself.
      tol: {"L0": atol, "L1": (atol, rtol), "L3": (atol, rtol)}; L2 is atol 1e-2·lr
        (docs/DESIGN.md).
    """
    from parity.checks import row

    inputs = inputs or (lambda x, key: x)
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    params = torch_to_params(sd)
    key = jax.random.key(0)
    x = batches[0]
    rows = []
    ours = jax.jit(model.apply)(params, jnp.asarray(x))  # compiled: eager op-by-op is slow
    rows.append(row(name, "L0", "output", ours, _nhwc(ref(_nchw(x))), atol=tol["L0"]))

    grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True), static_argnums=1)
    (loss, _), grads = grad_fn(params, model.apply, jnp.asarray(x), key)
    ref.zero_grad()
    t_loss = torch.nn.functional.mse_loss(ref(_nchw(inputs(x, key))), _nchw(x))
    t_loss.backward()
    atol, rtol = tol["L1"]
    rows.append(row(name, "L1", "loss", loss, t_loss.item(), atol=atol, rtol=rtol))
    ours_g = params_to_torch(grads, sd)
    g_rows = [row(name, "L1", k, ours_g[k], p.grad.numpy(), atol=atol, rtol=rtol)
              for k, p in ref.named_parameters()]  # fmt: skip
    rows.append(_worst(g_rows, "gradients (all layers)"))

    def train(batches):
        state = training.create_train_state(model.apply, params, optax.adam(lr, eps=eps))
        losses = []
        for b in batches:
            state, m = step(state, jnp.asarray(b), key)
            losses.append(float(m["loss"]))
        ref.load_state_dict(sd)
        t_in = [_nchw(inputs(b, jax.random.fold_in(key, t))) for t, b in enumerate(batches)]
        t_losses = ta.train_steps(ref, [_nchw(b) for b in batches], lr, eps, inputs=t_in)
        return state, losses, t_losses

    state, _, _ = train(batches[:1])
    ours_p = params_to_torch(state.params, sd)
    p_rows = [row(name, "L2", k, ours_p[k], v.numpy(), atol=1e-2 * lr)
              for k, v in ref.state_dict().items()]  # fmt: skip
    rows.append(_worst(p_rows, "params after 1 Adam step"))
    _, losses, t_losses = train(batches)
    atol, rtol = tol["L3"]
    rows.append(row(name, "L3", f"loss curve, {len(batches)} steps", losses, t_losses,
                    atol=atol, rtol=rtol))  # fmt: skip
    return rows


@_one_torch_thread
def check_denoising_ae(steps: int = 100) -> list[dict]:
    """Post 000 §3: the stacked AE fed x + N(0, 0.5²) noise, MSE to the clean x, Adam 1e-4."""
    torch.manual_seed(0)
    with jax.default_matmul_precision("highest"):
        return _levels(
            "ae-denoising", ta.DenoisingAutoencoder(), autoencoder.StackedAE(),
            ae_denoising.loss_fn, ae_denoising.train_step, _batches(steps, 50), lr=1e-4,
            eps=1e-8, inputs=lambda x, key: np.asarray(ae_denoising.add_noise(key, x, 0.5)),
            tol={"L0": 1e-5, "L1": (1e-6, 0.0), "L3": (1e-5, 1e-3)},
        )  # fmt: skip


@_one_torch_thread
def check_conv_transpose_output_padding() -> list[dict]:
    """ConvTranspose2d(16, 1, 3, stride=2, output_padding=1) alone: 13×13 → 28×28."""
    from parity.checks import row

    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(16, 1, 3, stride=2, output_padding=1)
    params = {"params": torch_to_params(ref.state_dict())["params"][""]}
    x = np.random.default_rng(0).normal(size=(4, 13, 13, 16)).astype(np.float32)
    t_out = ref(_nchw(x))
    t_out.pow(2).sum().backward()
    rows = []
    with jax.default_matmul_precision("highest"):
        for what, layer in (
            ("patch_conv", patch_conv.torch_conv_transpose(16, 1, 3, 2, output_padding=1)),
            ("layers", layers.conv_transpose(16, 1, 3, 2, output_padding=1)),
        ):
            out = layer.apply(params, jnp.asarray(x))
            rows.append(row("convT output_padding=1", "L0", f"{what}: output", out,
                            _nhwc(t_out), atol=1e-5))  # fmt: skip
            g = jax.grad(lambda p, layer=layer: jnp.sum(layer.apply(p, jnp.asarray(x)) ** 2))(
                params
            )
            g = params_to_torch({"": g["params"]}, {"weight": None, "bias": None})
            g_rows = [row("convT output_padding=1", "L1", k, g[k], p.grad.numpy(), atol=1e-4,
                          rtol=1e-5) for k, p in ref.named_parameters()]  # fmt: skip
            rows.append(_worst(g_rows, f"{what}: gradients of sum(out²)"))
    return rows


@_one_torch_thread
def check_conv_ae(steps: int = 50) -> list[dict]:
    """Post 000 §4: the conv AE (Flatten/Deflatten in NCHW order), Adam 1e-3, batch 50."""
    torch.manual_seed(0)
    with jax.default_matmul_precision("highest"):
        rows = _levels(
            "ae-conv", ta.ConvAutoencoder(), ae_conv.ConvAE(), ae_conv.loss_fn,
            ae_conv.train_step, _batches(steps, 50), lr=1e-3, eps=1e-8,
            tol={"L0": 1e-5, "L1": (1e-6, 1e-4), "L3": (1e-5, 1e-3)},
        )  # fmt: skip
    return rows + check_conv_transpose_output_padding()


@_one_torch_thread
def check_keras_mlp(steps: int = 30) -> list[dict]:
    """Post 004 §1 on per-image standardised digits, Adam(0.01, ε = 1e-7), batch 300.

    At lr 0.01 the loss jumps at step 4 (1.09 → 2.6 in both); float32 rounding differences
    grow there, and the curves then agree within 1 %, not 0.1 %."""
    torch.manual_seed(0)
    batches = _batches(steps, 300)
    batches = ae_keras.standardize_per_image(batches.reshape(-1, 28, 28, 1)).reshape(batches.shape)
    with jax.default_matmul_precision("highest"):
        return _levels(
            "ae-keras-mlp", ta.KerasMLPAutoencoder(), ae_keras.KerasMLPAE(), ae_keras.loss_fn,
            ae_keras.train_step, batches, lr=0.01, eps=ae_keras.KERAS_ADAM_EPS,
            tol={"L0": 1e-5, "L1": (1e-6, 0.0), "L3": (1e-5, 1e-2)},
        )  # fmt: skip


@_one_torch_thread
def check_keras_cnn(steps: int = 20, batch_size: int = 100) -> list[dict]:
    """Post 004 §2 on pixels in [0, 1], Adam(0.005, ε = 1e-7); batch 100 (the post's 300 makes
    the torch side slow on a CPU without changing what is compared)."""
    torch.manual_seed(0)
    with jax.default_matmul_precision("highest"):
        return _levels(
            "ae-keras-cnn", ta.KerasCNNAutoencoder(), ae_keras.KerasCNNAE(), ae_keras.loss_fn,
            ae_keras.train_step, _batches(steps, batch_size), lr=0.005,
            eps=ae_keras.KERAS_ADAM_EPS, tol={"L0": 1e-5, "L1": (1e-6, 1e-4), "L3": (1e-5, 1e-3)},
        )  # fmt: skip
