"""Parity of the autoencoder family (posts 000 §3-4 and 004) against `torch_autoencoders`.

Every model gets the docs/DESIGN.md levels from the same torch weights (converted by
`parity.convert`): L0 forward, L1 loss and every gradient, L2 every parameter after one Adam
step, L3 a short run from the same weights and batch order. The denoiser's noise is drawn in
JAX (`ae_denoising.add_noise` with the step's key) and handed to torch as the noisy input.
The ConvTranspose with `output_padding=1` (post 000 §4's last layer, the known trap) is also
checked alone, with `layers.conv_transpose` computing it by each impl ("matmul", "xla").
The conv models give L0 and L1 rows for each conv impl (the model name suffixed ` [impl]`),
and L2/L3 rows for the impls in `trained` (every impl unless a caller asks for fewer).

Also post 000 §2's stacked AE (`check_stacked_ae`, reference `parity/torch_models.py`).
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
    training,
)
from parity import torch_autoencoders as ta
from parity import torch_models
from parity.convert import params_to_torch, torch_to_params
from parity.device import module, numpy
from parity.helpers import (
    IMPLS,
    grad_rows,
    mnist_batches,
    nchw,
    one_torch_thread,
    row,
    worst,
)


def _batches(n_batches: int, batch_size: int) -> np.ndarray:
    """The embedded training digits in order, cycled: [n_batches, batch_size, 28, 28, 1]."""
    images = data.load_mnist("train", source="embedded").images
    idx = np.arange(n_batches * batch_size) % len(images)
    return images[idx].reshape(n_batches, batch_size, 28, 28, 1)


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return numpy(t).transpose(0, 2, 3, 1)


def _levels(ref, models, loss_fn, step, batches, *, lr, eps, inputs=None, tol, trained=None):
    """L0-L3 rows for a model whose loss is MSE(model(inputs(x, key)), x).

    Args:
      ref: the torch reference (NCHW in and out), at its initial weights.
      models: row name → flax module (one per conv impl, or one); `loss_fn`/`step` their loss
        and jitted train step. Each gets L0 and L1 rows.
      trained: the names in `models` that also get L2 and L3 rows (default: all).
      batches: [S, B, 28, 28, 1]; the first one serves L0-L2.
      inputs: `(x, key) -> model input` (the denoiser's noise); default x itself.
      tol: {"L0": atol, "L1": (atol, rtol), "L3": (atol, rtol)}; L2 is atol 1e-2·lr
        (docs/DESIGN.md).
    """
    inputs = inputs or (lambda x, key: x)
    ref = module(ref)
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    key, x = jax.random.key(0), batches[0]
    t_out = _nhwc(ref(nchw(x)))
    ref.zero_grad()
    t_loss = torch.nn.functional.mse_loss(ref(nchw(inputs(x, key))), nchw(x))
    t_loss.backward()
    theirs = (t_out, t_loss.item(), {k: numpy(p.grad) for k, p in ref.named_parameters()})
    rows = []
    for name, model in models.items():
        rows += _forward_rows(name, model, loss_fn, sd, x, key, theirs, tol)
    run = _torch_runs(ref, sd, batches, lr, eps, inputs, key)
    for name in models if trained is None else trained:
        rows += _training_rows(name, models[name], step, sd, batches, run, lr, eps, key, tol)
    return rows


def _forward_rows(name, model, loss_fn, sd, x, key, theirs, tol) -> list[dict]:
    """L0 output and L1 loss + every gradient against the torch values `theirs`."""
    t_out, t_loss, t_grads = theirs
    params = torch_to_params(sd)
    ours = jax.jit(model.apply)(params, jnp.asarray(x))  # compiled: eager op-by-op is slow
    rows = [row(name, "L0", "output", ours, t_out, atol=tol["L0"])]
    grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True), static_argnums=1)
    (loss, _), grads = grad_fn(params, model.apply, jnp.asarray(x), key)
    atol, rtol = tol["L1"]
    rows.append(row(name, "L1", "loss", loss, t_loss, atol=atol, rtol=rtol))
    ours_g = params_to_torch(grads, sd)
    g_rows = [row(name, "L1", k, ours_g[k], g, atol=atol, rtol=rtol) for k, g in t_grads.items()]
    rows.append(worst(g_rows, "gradients (all layers)"))
    return rows


def _torch_runs(ref, sd, batches, lr, eps, inputs, key):
    """`run(k)`: the torch loop over the first k batches from `sd` → (losses, state_dict);
    memoised, so several impls compare against one torch run."""
    memo = {}

    def run(k):
        if k not in memo:
            ref.load_state_dict(sd)
            t_in = [nchw(inputs(b, jax.random.fold_in(key, t))) for t, b in enumerate(batches[:k])]
            losses = ta.train_steps(ref, [nchw(b) for b in batches[:k]], lr, eps, inputs=t_in)
            memo[k] = losses, {n: numpy(v) for n, v in ref.state_dict().items()}
        return memo[k]

    return run


def _training_rows(name, model, step, sd, batches, run, lr, eps, key, tol) -> list[dict]:
    """L2 every parameter after one Adam step; L3 the loss curve over `batches`."""

    def train(batches):
        state = training.create_train_state(
            model.apply, torch_to_params(sd), optax.adam(lr, eps=eps)
        )
        losses = []
        for b in batches:
            state, m = step(state, jnp.asarray(b), key)
            losses.append(float(m["loss"]))
        return state, losses

    state, _ = train(batches[:1])
    ours_p = params_to_torch(state.params, sd)
    p_rows = [row(name, "L2", k, ours_p[k], v, atol=1e-2 * lr) for k, v in run(1)[1].items()]
    rows = [worst(p_rows, "params after 1 Adam step")]
    _, losses = train(batches)
    atol, rtol = tol["L3"]
    rows.append(row(name, "L3", f"loss curve, {len(batches)} steps", losses, run(len(batches))[0],
                    atol=atol, rtol=rtol))  # fmt: skip
    return rows


@one_torch_thread
def check_denoising_ae(steps: int = 100) -> list[dict]:
    """Post 000 §3: the stacked AE fed x + N(0, 0.5²) noise, MSE to the clean x, Adam 1e-4."""
    torch.manual_seed(0)
    with jax.default_matmul_precision("highest"):
        return _levels(
            ta.DenoisingAutoencoder(), {"ae-denoising": autoencoder.StackedAE()},
            ae_denoising.loss_fn, ae_denoising.train_step, _batches(steps, 50), lr=1e-4,
            eps=1e-8, inputs=lambda x, key: np.asarray(ae_denoising.add_noise(key, x, 0.5)),
            tol={"L0": 1e-5, "L1": (1e-6, 0.0), "L3": (1e-5, 1e-3)},
        )  # fmt: skip


@one_torch_thread
def check_conv_transpose_output_padding() -> list[dict]:
    """ConvTranspose2d(16, 1, 3, stride=2, output_padding=1) alone: 13×13 → 28×28."""
    torch.manual_seed(0)
    ref = module(torch.nn.ConvTranspose2d(16, 1, 3, stride=2, output_padding=1))
    params = {"params": torch_to_params(ref.state_dict())["params"][""]}
    x = np.random.default_rng(0).normal(size=(4, 13, 13, 16)).astype(np.float32)
    t_out = ref(nchw(x))
    t_out.pow(2).sum().backward()
    rows = []
    with jax.default_matmul_precision("highest"):
        for what, layer in (
            (impl, layers.conv_transpose(16, 1, 3, 2, output_padding=1, impl=impl))
            for impl in IMPLS
        ):
            out = layer.apply(params, jnp.asarray(x))
            rows.append(row("convT output_padding=1", "L0", f"{what}: output", out,
                            _nhwc(t_out), atol=1e-5))  # fmt: skip
            g = jax.grad(lambda p, layer=layer: jnp.sum(layer.apply(p, jnp.asarray(x)) ** 2))(
                params
            )
            g = params_to_torch({"": g["params"]}, {"weight": None, "bias": None})
            g_rows = [row("convT output_padding=1", "L1", k, g[k], numpy(p.grad), atol=1e-4,
                          rtol=1e-5) for k, p in ref.named_parameters()]  # fmt: skip
            rows.append(worst(g_rows, f"{what}: gradients of sum(out²)"))
    return rows


def _by_impl(name: str, make, impls, trained) -> tuple[dict, list | None]:
    """(row name → `make(impl)` for each impl, the row names of the `trained` impls)."""
    models = {f"{name} [{impl}]": make(impl) for impl in impls}
    return models, None if trained is None else [f"{name} [{impl}]" for impl in trained]


@one_torch_thread
def check_conv_ae(steps: int = 50, impls=IMPLS, trained=None) -> list[dict]:
    """Post 000 §4: the conv AE (Flatten/Deflatten in NCHW order), Adam 1e-3, batch 50; L0/L1
    for each of `impls`, L2/L3 for `trained` (default: every impl)."""
    torch.manual_seed(0)
    models, names = _by_impl("ae-conv", lambda i: ae_conv.ConvAE(conv_impl=i), impls, trained)
    with jax.default_matmul_precision("highest"):
        rows = _levels(
            ta.ConvAutoencoder(), models, ae_conv.loss_fn, ae_conv.train_step,
            _batches(steps, 50), lr=1e-3, eps=1e-8, trained=names,
            tol={"L0": 1e-5, "L1": (1e-6, 1e-4), "L3": (1e-5, 1e-3)},
        )  # fmt: skip
    return rows + check_conv_transpose_output_padding()


@one_torch_thread
def check_keras_mlp(steps: int = 30) -> list[dict]:
    """Post 004 §1 on per-image standardised digits, Adam(0.01, ε = 1e-7), batch 300.

    At lr 0.01 the loss jumps at step 4 (1.09 → 2.6 in both); float32 rounding differences
    grow there, and the curves then agree within 1 %, not 0.1 %."""
    torch.manual_seed(0)
    batches = _batches(steps, 300)
    batches = ae_keras.standardize_per_image(batches.reshape(-1, 28, 28, 1)).reshape(batches.shape)
    with jax.default_matmul_precision("highest"):
        return _levels(
            ta.KerasMLPAutoencoder(), {"ae-keras-mlp": ae_keras.KerasMLPAE()}, ae_keras.loss_fn,
            ae_keras.train_step, batches, lr=0.01, eps=ae_keras.KERAS_ADAM_EPS,
            tol={"L0": 1e-5, "L1": (1e-6, 0.0), "L3": (1e-5, 1e-2)},
        )  # fmt: skip


@one_torch_thread
def check_keras_cnn(steps: int = 20, batch_size: int = 100, impls=IMPLS, trained=None) -> list:
    """Post 004 §2 on pixels in [0, 1], Adam(0.005, ε = 1e-7); batch 100 (the post's 300 makes
    the torch side slow on a CPU without changing what is compared). L0/L1 for each of
    `impls`, L2/L3 for `trained` (default: every impl)."""
    torch.manual_seed(0)
    models, names = _by_impl(
        "ae-keras-cnn", lambda i: ae_keras.KerasCNNAE(conv_impl=i), impls, trained
    )
    with jax.default_matmul_precision("highest"):
        return _levels(
            ta.KerasCNNAutoencoder(), models, ae_keras.loss_fn, ae_keras.train_step,
            _batches(steps, batch_size), lr=0.005, eps=ae_keras.KERAS_ADAM_EPS, trained=names,
            tol={"L0": 1e-5, "L1": (1e-6, 1e-4), "L3": (1e-5, 1e-3)},
        )  # fmt: skip


def check_stacked_ae(steps: int = 100, batch_size: int = 50) -> list[dict]:
    """Post 000 §2 stacked AE: L0 forward, L1 loss + grads, L2 one Adam step, L3 `steps` steps."""
    name, lr = "ae-stacked", 1e-4
    torch.manual_seed(0)
    ref = module(torch_models.StackedAutoencoder())
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    params = torch_to_params(sd)
    model = autoencoder.StackedAE()
    batches = mnist_batches(steps, batch_size)
    x = batches[0]
    rows = []
    with jax.default_matmul_precision("highest"):
        # L0: forward
        ours = model.apply(params, jnp.asarray(x))
        theirs = numpy(ref(nchw(x).reshape(-1, 784))).reshape(x.shape)
        rows.append(row(name, "L0", "reconstruction", ours, theirs, atol=1e-5))
        # L1: loss and gradients
        (loss, _), grads = jax.value_and_grad(autoencoder.loss_fn, has_aux=True)(
            params, model.apply, jnp.asarray(x), None
        )
        ref.zero_grad()
        t_in = nchw(x)
        t_loss = torch.nn.functional.mse_loss(t_in, ref(t_in.view(-1, 784)).view(-1, 1, 28, 28))
        t_loss.backward()
        rows.append(row(name, "L1", "loss", loss, t_loss.item(), atol=1e-6))
        rows.append(grad_rows(name, grads, ref, atol=1e-6))
        # L2: one Adam step from the same weights (torch default eps 1e-8 = optax's)
        state = training.create_train_state(model.apply, params, optax.adam(lr))
        state, _ = autoencoder.train_step(state, jnp.asarray(x), jax.random.key(0))
        ref.load_state_dict(sd)
        torch_models.stacked_ae_train_steps(ref, [nchw(x)], lr=lr)
        ours_p = params_to_torch(state.params, sd)
        p_err = [row(name, "L2", k, ours_p[k], numpy(v), atol=1e-2 * lr)
                 for k, v in ref.state_dict().items()]  # fmt: skip
        rows.append(worst(p_err, "params after 1 Adam step"))
        # L3: `steps` steps from the same weights and batch order
        state = training.create_train_state(model.apply, params, optax.adam(lr))
        step = functools.partial(autoencoder.train_step, key=jax.random.key(0))
        losses = []
        for b in batches:
            state, m = step(state, jnp.asarray(b))
            losses.append(float(m["loss"]))
        ref.load_state_dict(sd)
        t_losses = torch_models.stacked_ae_train_steps(ref, [nchw(b) for b in batches], lr=lr)
        rows.append(row(name, "L3", f"loss curve, {steps} steps", losses, t_losses,
                        atol=1e-5, rtol=1e-4))  # fmt: skip
    return rows
