"""Parity checks: jaxunsup against the seeds' PyTorch models, level by level.

Each check returns rows {model, level, what, max_abs, max_rel, tol, ok}. `python -m parity`
prints them as a table on whatever device JAX and torch use; `pytest parity/` asserts them.
Float32 throughout (style transfer also runs its L3 in float64). The torch side runs on the
device JAX uses and the precision policy (JAX "highest", TF32 off) is set once by the runner
and the tests' conftest: see `parity.device`. Conv models give their L0/L1 rows for each
conv impl ("matmul", "xla"), the model name suffixed ` [impl]`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from jaxunsup import autoencoder, data, training
from parity import torch_models
from parity.convert import params_to_torch, torch_to_params
from parity.device import module, numpy, tensor


def row(model, level, what, ours, ref, atol, rtol=0.0) -> dict:
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    err = np.abs(ours - ref)
    max_abs = float(err.max()) if err.size else 0.0
    max_rel = float((err / np.maximum(np.abs(ref), 1e-12)).max()) if err.size else 0.0
    ok = bool(np.all(err <= atol + rtol * np.abs(ref)))
    tol = f"atol {atol:g}" + (f" + rtol {rtol:g}" if rtol else "")
    return dict(model=model, level=level, what=what, max_abs=max_abs, max_rel=max_rel, tol=tol,
                ok=ok)  # fmt: skip


def _mnist_batches(n_batches: int, batch_size: int) -> np.ndarray:
    images = data.load_mnist("all", source="embedded").images  # 5,000 digits
    return images[: n_batches * batch_size].reshape(n_batches, batch_size, 28, 28, 1)


def _nchw(x: np.ndarray) -> torch.Tensor:
    """NHWC images → an NCHW tensor on the torch device."""
    return tensor(np.asarray(x).transpose(0, 3, 1, 2))


def check_stacked_ae(steps: int = 100, batch_size: int = 50) -> list[dict]:
    """Post 000 §2 stacked AE: L0 forward, L1 loss + grads, L2 one Adam step, L3 `steps` steps."""
    name, lr = "ae-stacked", 1e-4
    torch.manual_seed(0)
    ref = module(torch_models.StackedAutoencoder())
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    params = torch_to_params(sd)
    model = autoencoder.StackedAE()
    batches = _mnist_batches(steps, batch_size)
    x = batches[0]
    rows = []
    with jax.default_matmul_precision("highest"):
        # L0: forward
        ours = model.apply(params, jnp.asarray(x))
        theirs = numpy(ref(_nchw(x).reshape(-1, 784))).reshape(x.shape)
        rows.append(row(name, "L0", "reconstruction", ours, theirs, atol=1e-5))
        # L1: loss and gradients
        (loss, _), grads = jax.value_and_grad(autoencoder.loss_fn, has_aux=True)(
            params, model.apply, jnp.asarray(x), None
        )
        ref.zero_grad()
        t_in = _nchw(x)
        t_loss = torch.nn.functional.mse_loss(t_in, ref(t_in.view(-1, 784)).view(-1, 1, 28, 28))
        t_loss.backward()
        rows.append(row(name, "L1", "loss", loss, t_loss.item(), atol=1e-6))
        ours_g = params_to_torch(grads, sd)
        g_err = [row(name, "L1", k, ours_g[k], numpy(p.grad), atol=1e-6)
                 for k, p in ref.named_parameters()]  # fmt: skip
        rows.append(_worst(g_err, "gradients (all layers)"))
        # L2: one Adam step from the same weights (torch default eps 1e-8 = optax's)
        state = training.create_train_state(model.apply, params, optax.adam(lr))
        state, _ = autoencoder.train_step(state, jnp.asarray(x), jax.random.key(0))
        ref.load_state_dict(sd)
        torch_models.stacked_ae_train_steps(ref, [_nchw(x)], lr=lr)
        ours_p = params_to_torch(state.params, sd)
        p_err = [row(name, "L2", k, ours_p[k], numpy(v), atol=1e-2 * lr)
                 for k, v in ref.state_dict().items()]  # fmt: skip
        rows.append(_worst(p_err, "params after 1 Adam step"))
        # L3: `steps` steps from the same weights and batch order
        state = training.create_train_state(model.apply, params, optax.adam(lr))
        step = functools.partial(autoencoder.train_step, key=jax.random.key(0))
        losses = []
        for b in batches:
            state, m = step(state, jnp.asarray(b))
            losses.append(float(m["loss"]))
        ref.load_state_dict(sd)
        t_losses = torch_models.stacked_ae_train_steps(ref, [_nchw(b) for b in batches], lr=lr)
        rows.append(row(name, "L3", f"loss curve, {steps} steps", losses, t_losses,
                        atol=1e-5, rtol=1e-4))  # fmt: skip
    return rows


def _worst(rows: list[dict], what: str) -> dict:
    worst = max(rows, key=lambda r: r["max_abs"])
    return {**worst, "what": what, "ok": all(r["ok"] for r in rows)}


from parity.check_autoencoders import (  # noqa: E402
    check_conv_ae,
    check_denoising_ae,
    check_keras_cnn,
    check_keras_mlp,
)
from parity.check_basics import check_blobs_classifier, check_restore_image  # noqa: E402
from parity.check_deep_kmeans import check_deep_kmeans  # noqa: E402
from parity.check_gans import check_bce, check_dcgan, check_gan_mlp, check_gan_simple  # noqa: E402
from parity.check_style import check_style_transfer  # noqa: E402
from parity.check_vae import check_vae, check_vae_ops  # noqa: E402
from parity.torch_kmeans import check_kmeans  # noqa: E402

CHECKS = {
    "kmeans": check_kmeans,
    "gan-losses": check_bce,
    "gan-mlp": check_gan_mlp,
    "dcgan": check_dcgan,
    "gan-mnist-simple": check_gan_simple,
    "ae-stacked": check_stacked_ae,
    "ae-denoising": check_denoising_ae,
    "ae-conv": check_conv_ae,
    "ae-keras-mlp": check_keras_mlp,
    "ae-keras-cnn": check_keras_cnn,
    "restore-image": check_restore_image,
    "blobs-classifier": check_blobs_classifier,
    "style-transfer": check_style_transfer,
    "deep-kmeans": check_deep_kmeans,
    "vae-z2": check_vae,
    "vae-ops": check_vae_ops,
}
