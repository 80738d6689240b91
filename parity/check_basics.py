"""Parity of post 002 (`jaxunsup.basics`) against the post's torch code (`torch_basics`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxunsup import basics, data
from parity import torch_basics
from parity.convert import params_to_torch, torch_to_params
from parity.device import module, numpy, tensor
from parity.helpers import grad_rows, row, worst


def _china(size: int = 100) -> np.ndarray:
    return basics.grey_square(data.load_image("china"), size).reshape(-1)  # [size²]


def check_restore_image(steps: int = 300) -> list[dict]:
    """§3.2: L0 the corrupting function, L1 distance + gradient, L3 the first `steps` steps of
    the gradient-descent loop from the same start."""

    name, lr = "restore-image", 0.8
    original = _china()
    x0 = np.random.default_rng(0).normal(size=original.shape).astype(np.float32)
    rows = []
    # L0: the corrupting function on the image and on random vectors (even and odd lengths)
    for what, v in [("weird_function(image)", original), ("weird_function(randn 10,001)",
                    np.random.default_rng(1).normal(size=10_001).astype(np.float32))]:  # fmt: skip
        ours = basics.weird_function(jnp.asarray(v))
        theirs = numpy(torch_basics.weird_function(tensor(v)))
        rows.append(row(name, "L0", what, ours, theirs, atol=1e-6))
    broken = np.array(basics.weird_function(jnp.asarray(original)))
    t_broken = tensor(broken)
    # L1: distance and its gradient at the random start
    loss, grad = jax.value_and_grad(basics.restoration_loss)(jnp.asarray(x0), jnp.asarray(broken))
    t_x = tensor(x0).requires_grad_(True)
    t_loss = torch_basics.distance_loss(torch_basics.weird_function(t_x), t_broken)
    t_loss.backward()
    rows.append(row(name, "L1", "distance", loss, t_loss.item(), atol=0, rtol=1e-6))
    rows.append(row(name, "L1", "gradient", grad, numpy(t_x.grad), atol=1e-7, rtol=1e-5))
    # L3: the post's loop for the first `steps` iterations
    x, losses = basics.recover_image(broken, x0, lr=lr, iterations=steps, log_every=steps,
                               verbose=False)  # fmt: skip
    t_x, t_losses = torch_basics.recover_image(t_broken, tensor(x0), lr, steps)
    rows.append(row(name, "L3", f"loss trace, {steps} steps", losses, t_losses, 0, rtol=1e-5))
    rows.append(row(name, "L3", f"x after {steps} steps", x, numpy(t_x), atol=1e-5))
    return rows


def check_blobs_classifier(epochs: int = 100) -> list[dict]:
    """§3.3: L0 forward, L1 BCE + grads, L2 one SGD step, L3 `epochs` full-batch epochs, all
    from torch's initial weights."""

    name, lr = "blobs-classifier", 0.03
    x, y = basics.make_xor_blobs(80, seed=0)
    xt, yt = basics.make_xor_blobs(20, seed=1)
    t_x, t_y, t_xt = (tensor(a) for a in (x, y, xt))
    torch.manual_seed(0)
    ref = module(torch_basics.NeuralNet(2, 5))
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    params = torch_to_params(sd)
    cfg = basics.BlobsConfig(lr=lr)
    state = basics.create_state(jax.random.key(0), cfg).replace(params=params)
    rows = []
    with jax.default_matmul_precision("highest"):
        # L0: forward on the test points and on the post's [-1, 1]
        ours = state.apply_fn(params, jnp.asarray(xt))
        rows.append(row(name, "L0", "P(label 1), test", ours, numpy(ref(t_xt)), atol=1e-6))
        ours = state.apply_fn(params, jnp.asarray([-1.0, 1.0]))
        theirs = numpy(ref(tensor(np.array([-1.0, 1.0], np.float32))))
        rows.append(row(name, "L0", "P(label 1) at [-1, 1]", ours, theirs, atol=1e-6))
        # L1: BCE and its gradients on the training set
        (loss, _), grads = jax.value_and_grad(basics.loss_fn, has_aux=True)(
            params, state.apply_fn, (jnp.asarray(x), jnp.asarray(y)), None
        )
        t_loss = torch.nn.BCELoss()(ref(t_x).squeeze(), t_y)
        t_loss.backward()
        rows.append(row(name, "L1", "BCE", loss, t_loss.item(), atol=1e-6))
        rows.append(grad_rows(name, grads, ref, atol=1e-6))
        # L2 / L3: one SGD step, then `epochs` epochs
        for level, n in (("L2", 1), ("L3", epochs)):
            ref.load_state_dict(sd)
            t_losses = torch_basics.train(ref, t_x, t_y, lr=lr, epochs=n)
            start = state.replace(step=jnp.zeros((), jnp.int32))
            trained, losses = basics.train(start, x, y, epochs=n, log_every=n, verbose=False)
            ours_p = params_to_torch(trained.params, sd)
            p_err = [row(name, level, k, ours_p[k], numpy(v), atol=1e-6)
                     for k, v in ref.state_dict().items()]  # fmt: skip
            rows.append(worst(p_err, f"params after {n} SGD step{'s' * (n > 1)}"))
            if level == "L3":
                rows.append(row(name, level, f"loss curve, {n} epochs", losses, t_losses,
                                atol=1e-6, rtol=1e-5))  # fmt: skip
    return rows
