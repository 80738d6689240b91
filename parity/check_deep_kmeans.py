"""Parity of Deep K-Means (post 000 §7) against the post's PyTorch `Encoder`/`Decoder`/`Kmeans`.

L0 forward (latents, reconstructions) and nearest-centroid assignments; L1 loss and gradients
of encoder, decoder and centroids; L2 one Adam step; L3 `steps` steps from the same weights and
batches, with the α of the post's schedule replaced by `alpha` so the clustering term matters.
L0 and L1 rows are made for each conv impl (rows `deep-kmeans [impl]`), L2 and L3 for the
impls in `trained` (default: every impl).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from jaxunsup import deep_kmeans, training
from parity import torch_deep_kmeans as ref_lib
from parity.convert import params_to_torch, torch_to_params
from parity.device import module, numpy, tensor
from parity.helpers import IMPLS, mnist_batches, nchw, row, worst

NAME = "deep-kmeans"


def _reference(seed: int = 0, latent: int = 10, n_clusters: int = 10):
    torch.manual_seed(seed)
    enc, dec = module(ref_lib.Encoder(latent)), module(ref_lib.Decoder(latent))
    centroids = torch.rand(n_clusters, latent)  # the post's U[0,1) draw (on the CPU's stream)
    km = module(ref_lib.Kmeans(n_clusters, latent, centroids))
    centroids = tensor(numpy(centroids))
    sd = {**enc.state_dict(), **dec.state_dict()}
    sd = {k: v.clone() for k, v in sd.items()}
    params = torch_to_params(sd)
    params["params"]["centroids"] = numpy(centroids).copy()
    return enc, dec, km, sd, centroids.clone(), jax.tree.map(jnp.asarray, params)


def _reload(enc, dec, km, sd, centroids) -> None:
    enc.load_state_dict({k: v for k, v in sd.items() if k.startswith("encoder.")})
    dec.load_state_dict({k: v for k, v in sd.items() if k.startswith("decoder.")})
    with torch.no_grad():
        km.centroids.copy_(centroids)


def _param_rows(name, level, what, ours, enc, dec, km, sd, atol, rtol=0.0) -> list[dict]:
    """Worst row over every torch parameter (`ours`: flax tree; torch: `.grad` or values)."""
    mine = params_to_torch(ours, sd)

    rows = []
    for net in (enc, dec):
        for k, p in net.named_parameters():
            theirs = p.grad if what == "grad" else p.detach()
            rows.append(row(name, level, k, mine[k], numpy(theirs), atol=atol, rtol=rtol))
    theirs = km.centroids.grad if what == "grad" else km.centroids.detach()
    rows.append(
        row(name, level, "centroids", ours["params"]["centroids"], numpy(theirs), atol, rtol)
    )
    return rows


def check_deep_kmeans(steps=50, batch_size=32, alpha=0.5, impls=IMPLS, trained=None) -> list:
    """All four levels; returns rows {model, level, what, max_abs, max_rel, tol, ok}."""

    ref = _reference()
    batches = mnist_batches(steps, batch_size)
    rows = []
    with jax.default_matmul_precision("highest"):
        for impl in impls:
            name = f"{NAME} [{impl}]"
            model = deep_kmeans.DeepKMeans(conv_impl=impl)
            _reload(*ref[:5])
            rows += _forward_rows(name, model, ref, batches[0], alpha)
            if trained is None or impl in trained:
                rows += _training_rows(name, model, ref, batches, alpha)
    return rows


def _forward_rows(name, model, ref, x, alpha) -> list[dict]:
    """L0 latents, reconstructions and assignments; L1 loss and the three groups' gradients."""

    enc, dec, km, sd, _, params = ref
    z, recon = model.apply(params, jnp.asarray(x))
    t_z = enc(nchw(x))
    rows = [row(name, "L0", "latents", z, numpy(t_z), atol=1e-5)]
    t_recon = numpy(dec(t_z)).transpose(0, 2, 3, 1)
    rows.append(row(name, "L0", "reconstructions", recon, t_recon, atol=1e-5))
    ours_idx = deep_kmeans.assign(z, params["params"]["centroids"])
    t_idx, _ = km(t_z.detach())
    rows.append(row(name, "L0", "assignments (exact)", ours_idx, np.asarray(t_idx), atol=0))
    loss = jax.value_and_grad(deep_kmeans.loss_fn, has_aux=True)
    (value, _), grads = loss(params, model.apply, jnp.asarray(x), None, alpha=alpha)
    for m in (enc, dec, km):
        m.zero_grad()
    t_loss = ref_lib.loss(enc, dec, km, nchw(x), alpha)
    t_loss.backward()
    rows.append(row(name, "L1", f"loss (α={alpha})", value, t_loss.item(), atol=1e-6))
    # rtol as ae-conv's (the same decoder): decoder.7's bias gradient sums 12,544 terms
    # to ~0.2, and float32 rounds that to ~5e-6 relative, over a bare atol of 1e-6
    g_rows = _param_rows(name, "L1", "grad", grads, enc, dec, km, sd, atol=1e-6, rtol=1e-4)
    rows.append(worst([r for r in g_rows if r["what"].startswith("encoder")], "encoder grads"))
    rows.append(worst([r for r in g_rows if r["what"].startswith("decoder")], "decoder grads"))
    rows.append(worst([r for r in g_rows if r["what"] == "centroids"], "centroid grads"))
    return rows


def _training_rows(name, model, ref, batches, alpha, lr=1e-3) -> list[dict]:
    """L2 one Adam step over all three groups; L3 `len(batches)` steps, same batch order."""

    enc, dec, km, sd, centroids, params = ref
    step_fn = jax.jit(_fixed_alpha_step, static_argnames="alpha")
    state = training.create_train_state(model.apply, params, optax.adam(lr))
    state, _ = step_fn(state, jnp.asarray(batches[0]), alpha=alpha)
    _reload(enc, dec, km, sd, centroids)
    ref_lib.train_steps(enc, dec, km, [nchw(batches[0])], [alpha], lr=lr)
    p_rows = _param_rows(name, "L2", "value", state.params, enc, dec, km, sd, atol=1e-2 * lr)
    rows = [worst(p_rows, "params after 1 Adam step")]
    state = training.create_train_state(model.apply, params, optax.adam(lr))
    losses = []
    for b in batches:
        state, value = step_fn(state, jnp.asarray(b), alpha=alpha)
        losses.append(float(value))
    _reload(enc, dec, km, sd, centroids)
    steps = len(batches)
    t_losses = ref_lib.train_steps(enc, dec, km, [nchw(b) for b in batches], [alpha] * steps)
    rows.append(row(name, "L3", f"loss curve, {steps} steps", losses, t_losses,
                    atol=1e-5, rtol=1e-3))  # fmt: skip
    # Adam moves a weight whose gradient is ~0 by up to ~lr per step whatever its sign, so
    # float32 rounding differences in the ~1% of such weights grow to O(lr) over a run; the
    # typical weight must still agree closely (median row).
    p_rows = _param_rows(name, "L3", "value", state.params, enc, dec, km, sd, atol=2 * lr)
    rows.append(worst(p_rows, f"params after {steps} steps, max"))
    mine = params_to_torch(state.params, sd)
    err = np.concatenate([
        np.abs(np.asarray(mine[k]) - numpy(p)).ravel()
        for net in (enc, dec) for k, p in net.named_parameters()
    ])  # fmt: skip
    median = float(np.median(err))
    rows.append(dict(model=name, level="L3", what=f"params after {steps} steps, median",
                     max_abs=median, max_rel=float("nan"), tol="atol 1e-06 (median)",
                     ok=median <= 1e-6))  # fmt: skip
    return rows


def _fixed_alpha_step(state, batch, *, alpha):
    """One step of `deep_kmeans.loss_fn` at a constant α (the post's loop body)."""
    grad_fn = jax.value_and_grad(deep_kmeans.loss_fn, has_aux=True)
    (value, _), grads = grad_fn(state.params, state.apply_fn, batch, None, alpha=alpha)
    return state.apply_gradients(grads=grads), value
