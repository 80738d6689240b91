"""Training throughput of the GANs: our scanned `fit` vs the posts' PyTorch loops.

- gan-mlp (post 000 §5.1) and dcgan (§5.2): images/s of the D-then-G step at batch 100, against
  the post's loop over a shuffling DataLoader and against a leaner loop over pre-sliced tensors.
  Dropout is on in both (the post's training mode).
- gan-mnist-simple (post 001): images/s at batch 1 (three updates per image) for the first and
  the last variant, against the post's per-image loop.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from common import step_mflop, throughput_rows, torch_device, torch_sync

from jaxunsup import data, dcgan, gan, gan_simple, training
from parity import torch_gans

JAX_NAME = "jaxunsup fit (scanned epochs)"


def _ours(state, step, images, epochs, batch_size) -> float:
    fit = dict(key=jax.random.key(0), batch_size=batch_size, verbose=False, progress=False)
    state, _ = training.fit(state, step, images, epochs=1, **fit)  # compile
    jax.block_until_ready(state)
    start = time.perf_counter()
    state, _ = training.fit(state, step, images, epochs=epochs, **fit)
    jax.block_until_ready(state)
    return time.perf_counter() - start


def _torch_post000(make_nets, images, epochs, batch_size, loader: bool) -> float:
    x, dev = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), torch_device()
    x_dev = x.to(dev)
    g, d = (net.to(dev) for net in make_nets())
    g_opt, d_opt = torch.optim.Adam(g.parameters(), 2e-4), torch.optim.Adam(d.parameters(), 2e-4)
    steps = len(x) // batch_size

    def noises(n):
        while True:
            yield torch.randn(n, 128, device=dev), torch.randn(n, 128, device=dev)

    torch_gans.post000_train_steps(g, d, g_opt, d_opt, [x_dev[:batch_size]], noises(batch_size))
    torch_sync(dev)
    start = time.perf_counter()
    for _ in range(epochs):
        if loader:  # the post: DataLoader(trainset, batch_size=100, shuffle=True), to the device
            ds = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
            it = (b[0].to(dev) for b in torch.utils.data.DataLoader(ds, batch_size, shuffle=True))
        else:
            perm = torch.randperm(len(x), device=dev)
            it = (x_dev[perm[i * batch_size : (i + 1) * batch_size]] for i in range(steps))
        torch_gans.post000_train_steps(g, d, g_opt, d_opt, it, noises(batch_size))
    torch_sync(dev)
    return time.perf_counter() - start


def _post000_bench(bench, module, cfg, make_nets, n_images, epochs, batch_size=100):
    torch.set_num_threads(2)
    images = data.load_mnist("train", source="embedded").images[:n_images] * 2 - 1
    state = module.create_state(jax.random.key(0), cfg)
    times = {
        JAX_NAME: _ours(state, module.train_step, images, epochs, batch_size),
        "torch DataLoader loop (the post's)": _torch_post000(
            make_nets, images, epochs, batch_size, loader=True
        ),
        "torch pre-sliced tensors": _torch_post000(
            make_nets, images, epochs, batch_size, loader=False
        ),
    }
    mflop = step_mflop(module.train_step, state, jnp.asarray(images[:batch_size]))
    n = epochs * (len(images) // batch_size) * batch_size
    return throughput_rows(bench, times, n, batch_size, mflop)


def bench_gan_mlp(quick: bool = False) -> list[dict]:
    return _post000_bench(
        "gan-mlp", gan, gan.GANConfig(),
        lambda: (torch_gans.MLPGenerator(), torch_gans.MLPDiscriminator()),
        n_images=4000, epochs=1 if quick else 3,
    )  # fmt: skip


def bench_dcgan(quick: bool = False) -> list[dict]:
    return _post000_bench(
        "dcgan", dcgan, dcgan.DCGANConfig(),
        lambda: (torch_gans.DCGenerator(), torch_gans.DCDiscriminator()),
        n_images=300 if quick else 1000, epochs=1,
    )  # fmt: skip


def _torch_post001(variant, images, loss) -> float:
    g = torch_gans.SimpleGenerator(variant.seed_dim, variant.leaky_layernorm)
    d = torch_gans.SimpleDiscriminator(variant.leaky_layernorm)
    opt = torch.optim.SGD if variant.optimizer == "sgd" else torch.optim.Adam
    g_opt, d_opt = opt(g.parameters(), lr=variant.lr), opt(d.parameters(), lr=variant.lr)
    draw = torch.randn if variant.seed_noise == "normal" else torch.rand
    x = torch.from_numpy(np.ascontiguousarray(images.reshape(len(images), 1, 784)))

    def noises():
        while True:
            yield draw(1, variant.seed_dim), draw(1, variant.seed_dim)

    torch_gans.post001_train_steps(g, d, g_opt, d_opt, loss, x[:2], noises())  # warm-up
    start = time.perf_counter()
    torch_gans.post001_train_steps(g, d, g_opt, d_opt, loss, x, noises())
    return time.perf_counter() - start


def bench_gan_simple(quick: bool = False) -> list[dict]:
    torch.set_num_threads(1)  # tiny per-image work: threads only add overhead
    images = data.load_mnist("train", source="embedded").images[: 1000 if quick else 4000]
    rows = []
    for name in ("mse-sgd", "randn"):
        v = gan_simple.VARIANTS[name]
        state = gan_simple.create_state(jax.random.key(0), v)
        times = {
            JAX_NAME: _ours(state, gan_simple.train_step_for(v), images, 1, 1),
            "torch per-image loop (the post's)": _torch_post001(v, images, v.loss),
        }
        rows += throughput_rows(f"gan-mnist-simple/{name}", times, len(images), 1)
    return rows
