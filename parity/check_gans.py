"""Parity of the GANs (post 000 §5.1 MLP GAN, §5.2 DCGAN, post 001's variants) with torch.

Dropout is off on both sides (torch `eval()` semantics via a 0 rate, jaxunsup's Discriminator
with `dropout=0`), since the two frameworks draw different masks. Noise is drawn by jaxunsup
with `gan.step_keys` / `gan.noise`, exactly as `gan.gan_step` draws it, and handed to torch.
Levels: L0 forward (DCGAN: every layer's output), L1 losses and gradients, L2 one D-then-G
step of each optimiser, L3 a run of `steps` iterations from the same weights, batches and noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from jaxunsup import data, dcgan, gan, gan_simple, training
from parity import torch_gans
from parity.convert import params_to_torch, torch_to_params
from parity.device import module, numpy, tensor, torch_device
from parity.helpers import IMPLS, grad_rows, row, worst


def _t(x) -> torch.Tensor:
    """NumPy/JAX array → float32 torch tensor on the torch device; NHWC images become NCHW."""
    x = np.asarray(x, np.float32)
    return tensor(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x)


def _nhwc(t: torch.Tensor) -> np.ndarray:
    x = numpy(t)
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def _batches(n: int, batch_size: int, value_range=(-1.0, 1.0)) -> np.ndarray:
    lo, hi = value_range
    images = data.load_mnist("all", source="embedded").images[: n * batch_size]  # ≤ 5,000
    return (images * (hi - lo) + lo).reshape(n, batch_size, 28, 28, 1)


def check_bce() -> list[dict]:
    """`gan.bce` (probabilities) and `gan.bce_with_logits` against torch's `nn.BCELoss`."""
    name, rows = "gan losses", []
    bce_none = torch.nn.BCELoss(reduction="none")
    # Where float32's sigmoid keeps 1 − p to 1e-5 (|logit| ≤ 4) the two agree to rounding;
    # further out torch's BCELoss(sigmoid(x)) inherits the rounding of 1 − p (up to 1 % at 15).
    for lim, rtol in ((4, 1e-5), (15, 2e-2)):
        x = np.linspace(-lim, lim, 601, dtype=np.float32)
        for t in (0.0, 1.0, 0.3):
            tgt = np.full_like(x, t)
            ours = jax.vmap(gan.bce_with_logits)(x, tgt)
            ref = numpy(bce_none(torch.sigmoid(tensor(x)), tensor(tgt)))
            rows.append(row(name, "L1", f"bce_with_logits, logits in [-{lim}, {lim}], target {t}",
                             ours, ref, atol=1e-5, rtol=rtol))  # fmt: skip
    p = np.array([0.0, 1e-45, 1e-30, 1e-7, 0.25, 0.5, 0.999, 1 - 6e-8, 1.0], np.float32)
    for t in (0.0, 1.0):
        tgt = np.full_like(p, t)
        ours = jax.vmap(gan.bce)(p, tgt)
        ref = numpy(bce_none(tensor(p), tensor(tgt)))
        rows.append(row(name, "L1", f"bce on probabilities incl. 0 and 1 (clamp), target {t}",
                         ours, ref, atol=1e-6, rtol=1e-6))  # fmt: skip
    far = np.array([-200.0, -120.0, -104.0], np.float32)  # sigmoid underflows: log clamps
    ours = jax.vmap(gan.bce_with_logits)(far, np.ones_like(far))
    ref = numpy(bce_none(torch.sigmoid(tensor(far)), tensor(np.ones(3, np.float32))))
    rows.append(row(name, "L1", "bce_with_logits, logits ≤ -104, target 1 (clamp at 100)",
                     ours, ref, atol=1e-4))  # fmt: skip
    return rows


def _param_rows(model, level, what, ours_params, torch_module, atol):
    sd = torch_module.state_dict()
    ours = params_to_torch(ours_params, sd)
    return worst([row(model, level, k, ours[k], numpy(v), atol=atol) for k, v in sd.items()],
                  what)  # fmt: skip


def _gan_l1(name, g_ref, d_ref, state, spec, real, noise) -> list[dict]:
    """L1: D loss (real 1 + fake 0) and G loss, with their gradients, at `state`'s params."""
    z_d, z_g = noise
    n = len(real)
    rows = []
    g, d = state.g, state.d
    fake = g.apply_fn(g.params, jnp.asarray(numpy(z_d)))

    def d_loss(p):
        logits = d.apply_fn(p, jnp.concatenate([jnp.asarray(real), fake]))
        return gan.gan_loss(logits[:n], 1.0, spec.loss) + gan.gan_loss(logits[n:], 0.0, spec.loss)

    def g_loss(p):
        logits = d.apply_fn(d.params, g.apply_fn(p, jnp.asarray(numpy(z_g))))
        return gan.gan_loss(logits, 1.0, spec.loss)

    crit = torch.nn.BCELoss() if spec.loss == "bce" else torch.nn.MSELoss()
    ones = torch.ones(n, 1, device=torch_device())
    zeros = torch.zeros(n, 1, device=torch_device())
    d_ref.zero_grad()
    t_d = crit(d_ref(_t(real)), ones) + crit(d_ref(g_ref(z_d).detach()), zeros)
    t_d.backward()
    ours_d, grads = jax.value_and_grad(d_loss)(d.params)
    rows += [row(name, "L1", "D loss", ours_d, t_d.item(), atol=1e-5, rtol=1e-5),
             grad_rows(name, grads, d_ref, atol=1e-5, what="D gradients (all layers)")]  # fmt: skip
    g_ref.zero_grad()
    t_g = crit(d_ref(g_ref(z_g)), ones)
    t_g.backward()
    ours_g, grads = jax.value_and_grad(g_loss)(g.params)
    rows += [row(name, "L1", "G loss", ours_g, t_g.item(), atol=1e-5, rtol=1e-5),
             grad_rows(name, grads, g_ref, atol=1e-5, what="G gradients (all layers)")]  # fmt: skip
    return rows


def _gan_levels(name, g_ref, d_ref, state, spec, batches, *, lr, opt=torch.optim.Adam, post="000",
                levels=("L1", "L2", "L3")):  # fmt: skip
    """The `levels` rows (L1, L2, L3) for one GAN; `state` holds params converted from
    g_ref/d_ref, with the optimiser `opt` (a torch.optim class) restates; `post` picks the
    reference loop."""
    rows, key = [], jax.random.key(0)
    g_sd = {k: v.clone() for k, v in g_ref.state_dict().items()}
    d_sd = {k: v.clone() for k, v in d_ref.state_dict().items()}
    n = batches.shape[1]
    real = batches[0]

    def noises(steps):
        for i in range(steps):
            k_zd, k_zg, _, _ = gan.step_keys(key, i)
            yield _t(gan.noise(k_zd, n, spec)), _t(gan.noise(k_zg, n, spec))

    if "L1" in levels:
        rows += _gan_l1(name, g_ref, d_ref, state, spec, real, next(noises(1)))
    # L2 / L3: the jitted D-then-G step against the post's loop, same noise and batches
    step = gan.step_for(spec)
    for level, k in (("L2", 1), ("L3", len(batches))):
        if level not in levels:
            continue
        s, losses = state, []
        for i in range(k):
            s, m = step(jax.tree.map(jnp.copy, s), jnp.asarray(batches[i]), key)
            losses.append([float(m["d_loss"]), float(m["g_loss"])])
        g_ref.load_state_dict(g_sd)
        d_ref.load_state_dict(d_sd)
        g_opt, d_opt = opt(g_ref.parameters(), lr=lr), opt(d_ref.parameters(), lr=lr)
        imgs = [_t(b) for b in batches[:k]]
        if post == "000":
            ref = torch_gans.post000_train_steps(g_ref, d_ref, g_opt, d_opt, imgs, noises(k))
        else:
            ref = [((a + b) / 2, c) for a, b, c in torch_gans.post001_train_steps(
                g_ref, d_ref, g_opt, d_opt, spec.loss, imgs, noises(k))]  # fmt: skip
        if level == "L2":
            # Adam's first update is lr·g/(|g| + 1e-8): a gradient near 1e-8 passes its
            # rounding (≈ 1e-10 here) on amplified up to lr/1e-8, hence 5e-2·lr, not 1e-2·lr.
            tol = 5e-2 * lr if opt is torch.optim.Adam else 1e-6
            rows.append(_param_rows(name, "L2", "G params after 1 step", s.g.params, g_ref, tol))
            rows.append(_param_rows(name, "L2", "D params after 1 step", s.d.params, d_ref, tol))
        else:
            # GAN dynamics amplify float32 rounding step by step: tight on the first 10
            # steps, a stated band over the whole run.
            rows.append(row(name, "L3", "D / G loss curves, first 10 steps", losses[:10],
                             ref[:10], atol=1e-4, rtol=1e-3))  # fmt: skip
            rows.append(row(name, "L3", f"D / G loss curves, {k} steps", losses, ref,
                             atol=5e-2))  # fmt: skip
    return rows


def _state(g_model, d_model, g_ref, d_ref, g_tx, d_tx, norm_layers=()) -> gan.GANState:
    # clones: torch_to_params returns views of the tensors, which torch's optimisers update
    g_params = torch_to_params({k: v.clone() for k, v in g_ref.state_dict().items()}, norm_layers)
    d_params = torch_to_params({k: v.clone() for k, v in d_ref.state_dict().items()}, norm_layers)
    return gan.GANState(
        training.create_train_state(g_model.apply, g_params, g_tx),
        training.create_train_state(d_model.apply, d_params, d_tx),
    )


def check_gan_mlp(steps: int = 50, batch_size: int = 100) -> list[dict]:
    """Post 000 §5.1: L0 G and D forward, L1, L2 one Adam step of each net, L3 `steps` steps."""
    name = "gan-mlp"
    torch.manual_seed(0)
    g_ref = module(torch_gans.MLPGenerator())
    d_ref = module(torch_gans.MLPDiscriminator(dropout=0.0))
    g_model, d_model = gan.Generator(), gan.Discriminator(dropout=0.0)
    state = _state(g_model, d_model, g_ref, d_ref, optax.adam(2e-4), optax.adam(2e-4))
    batches = _batches(steps, batch_size)
    z = np.random.default_rng(0).standard_normal((batch_size, 128)).astype(np.float32)
    with jax.default_matmul_precision("highest"):
        rows = [
            row(name, "L0", "G(z)", g_model.apply(state.g.params, z), _nhwc(g_ref(_t(z))),
                 atol=1e-5),
            row(name, "L0", "D(x) (sigmoid of our logits)",
                 jax.nn.sigmoid(d_model.apply(state.d.params, batches[0])),
                 numpy(d_ref(_t(batches[0]))), atol=1e-5),
        ]  # fmt: skip
        rows += _gan_levels(name, g_ref, d_ref, state, gan.StepSpec(128), batches, lr=2e-4)
    return rows


def _layer_rows(name, net, model, params, torch_seq, x, idx):
    """Each listed layer's output: flax `capture_intermediates` vs the torch Sequential."""
    _, inter = model.apply(params, x, capture_intermediates=True)
    h, rows = _t(x) if np.ndim(x) == 4 else _t(x).view(-1, 128, 1, 1), []
    for i, layer in enumerate(torch_seq):
        h = layer(h)
        if i in idx:
            ours = inter["intermediates"][f"conv_{i}"]["__call__"][0]
            theirs = _nhwc(h)
            shape_ok = tuple(ours.shape) == theirs.shape
            r = row(name, "L0", f"{net} conv.{i} output {theirs.shape[1:]}", ours if shape_ok
                     else np.full(theirs.shape, np.inf), theirs, atol=1e-4)  # fmt: skip
            rows.append(r)
    return rows


def check_dcgan(steps: int = 50, batch_size: int = 8, impls=IMPLS, trained=None) -> list[dict]:
    """Post 000 §5.2: L0 every convolution's output and L1, for each conv impl in `impls`
    (rows `dcgan [impl]`); L2 and L3 (`steps` small batches) for `trained` (default: all)."""
    torch.manual_seed(0)
    g_ref = module(torch_gans.DCGenerator())
    d_ref = module(torch_gans.DCDiscriminator(dropout=0.0))
    g_sd = {k: v.clone() for k, v in g_ref.state_dict().items()}
    d_sd = {k: v.clone() for k, v in d_ref.state_dict().items()}
    batches = _batches(steps, batch_size)
    z = np.random.default_rng(0).standard_normal((batch_size, 128)).astype(np.float32)
    rows = []
    for impl in impls:
        name = f"dcgan [{impl}]"
        g_ref.load_state_dict(g_sd)  # the initial weights: an earlier impl's L2/L3 trained them
        d_ref.load_state_dict(d_sd)
        g_model, d_model = dcgan.Generator(128, impl), dcgan.Discriminator(0.0, impl)
        state = _state(g_model, d_model, g_ref, d_ref, optax.adam(2e-4), optax.adam(2e-4))
        with jax.default_matmul_precision("highest"), torch.no_grad():
            rows += _layer_rows(name, "G", g_model, state.g.params, g_ref.conv, z, (0, 2, 4, 6))
            rows += _layer_rows(name, "D", d_model, state.d.params, d_ref.conv, batches[0],
                                (0, 3, 6, 9))  # fmt: skip
        levels = ("L1", "L2", "L3") if trained is None or impl in trained else ("L1",)
        with jax.default_matmul_precision("highest"):
            rows += _gan_levels(name, g_ref, d_ref, state, gan.StepSpec(128), batches, lr=2e-4,
                                levels=levels)  # fmt: skip
    return rows


def check_gan_simple(steps: int = 50) -> list[dict]:
    """Post 001, variants mse-sgd (SGD) and randn (Adam, LayerNorm, 100-d normal seed), batch 1:
    L0 forward, L1, L2 one step (two D updates then G), L3 `steps` images."""
    rows = []
    for vname in ("mse-sgd", "randn"):
        v = gan_simple.VARIANTS[vname]
        name = f"gan-mnist-simple/{vname}"
        torch.manual_seed(0)
        g_ref = module(torch_gans.SimpleGenerator(v.seed_dim, v.leaky_layernorm))
        d_ref = module(torch_gans.SimpleDiscriminator(v.leaky_layernorm))
        norm = ("model.2",) if v.leaky_layernorm else ()
        tx = optax.sgd(v.lr) if v.optimizer == "sgd" else optax.adam(v.lr)
        g_model = gan_simple.Generator(v.seed_dim, v.leaky_layernorm)
        d_model = gan_simple.Discriminator(v.leaky_layernorm)
        state = _state(g_model, d_model, g_ref, d_ref, tx, tx, norm)
        batches = _batches(steps, 1, (0.0, 1.0))
        z = np.random.default_rng(0).standard_normal((4, v.seed_dim)).astype(np.float32)
        with jax.default_matmul_precision("highest"):
            rows.append(row(name, "L0", "G(z)", g_model.apply(state.g.params, z),
                             _nhwc(g_ref(_t(z))), atol=1e-5))  # fmt: skip
            rows.append(row(name, "L0", "D(x)",
                             jax.nn.sigmoid(d_model.apply(state.d.params, batches[:4, 0])),
                             numpy(d_ref(_t(batches[:4, 0]))), atol=1e-5))  # fmt: skip
            opt = torch.optim.SGD if v.optimizer == "sgd" else torch.optim.Adam
            rows += _gan_levels(name, g_ref, d_ref, state, gan_simple.spec_of(v), batches,
                                lr=v.lr, opt=opt, post="001")  # fmt: skip
    return rows
