"""Training throughput of post 003's ConvVAE (latent 2): our fit vs the post's PyTorch loop, and
the time of the importance-weighted NLL (k=100) over the test set."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from common import step_mflop, torch_device, torch_sync

from jaxunsup import data, training, vae
from parity import torch_vae


def _ours(images: np.ndarray, epochs: int, batch_size: int, conv_impl: str = "auto") -> float:
    cfg = vae.Config(batch_size=batch_size, conv_impl=conv_impl)
    key = jax.random.key(0)
    state = vae.create_state(key, cfg, jnp.asarray(images[:1]))
    fit = dict(key=key, batch_size=batch_size, verbose=False, progress=False)
    state, _ = training.fit(state, vae.train_step, images, epochs=1, **fit)  # compile
    jax.block_until_ready(state.params)
    start = time.perf_counter()
    state, _ = training.fit(state, vae.train_step, images, epochs=epochs, **fit)
    jax.block_until_ready(state.params)
    return time.perf_counter() - start


def _model() -> torch.nn.Module:
    return torch_vae.ConvVAE(input_size=28, channels=[1, 32, 64], latent_dim=2).to(torch_device())


def _torch_dataloader(images: np.ndarray, epochs: int, batch_size: int) -> float:
    """The post's loop: a shuffling DataLoader, each batch moved to the device, `randn_like`
    noise, Adam(1e-3)."""
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    model, dev = _model(), torch_device()
    torch_vae.train_steps(model, [x[:batch_size].to(dev)], [None])  # warm-up
    torch_sync(dev)
    start = time.perf_counter()
    for _ in range(epochs):
        batches = [b[0].to(dev) for b in loader]
        torch_vae.train_steps(model, batches, [None] * len(batches))
    torch_sync(dev)
    return time.perf_counter() - start


def _torch_sliced(images: np.ndarray, epochs: int, batch_size: int) -> float:
    """A leaner PyTorch loop: the data pre-loaded on the device, one permutation per epoch,
    slices."""
    dev = torch_device()
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(dev)
    model = _model()
    steps = len(x) // batch_size
    torch_vae.train_steps(model, [x[:batch_size]], [None])
    torch_sync(dev)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), device=dev)
        batches = [x[perm[i * batch_size : (i + 1) * batch_size]] for i in range(steps)]
        torch_vae.train_steps(model, batches, [None] * steps)
    torch_sync(dev)
    return time.perf_counter() - start


def _iwae_seconds(images: np.ndarray, k: int = 100) -> float:
    state = vae.create_state(jax.random.key(0), vae.Config(), jnp.asarray(images[:1]))
    vae.iwae_nll(state, images[:20], jax.random.key(1), k)  # compile (20 images per call)
    start = time.perf_counter()
    vae.iwae_nll(state, images, jax.random.key(1), k)
    return time.perf_counter() - start


def bench_vae(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    train = data.load_mnist("train", source="embedded").images  # 4,000 real digits
    test = data.load_mnist("test", source="embedded").images  # 1,000
    epochs, batch_size = (1, 100) if quick else (3, 100)
    n = epochs * (len(train) // batch_size) * batch_size
    times = {
        "jaxunsup fit (scanned epochs, conv_impl auto)": (_ours(train, epochs, batch_size), n),
        "torch DataLoader loop (the post's)": (_torch_dataloader(train, epochs, batch_size), n),
        "torch pre-sliced tensors": (_torch_sliced(train, epochs, batch_size), n),
        # XLA's own (lhs-dilated) transposed convolutions, one short epoch: why "auto" is
        # the matmul form on CPU
        "jaxunsup fit, conv_impl xla": (_ours(train[:500], 1, batch_size, "xla"), 500),
    }  # fmt: skip
    ours = times["jaxunsup fit (scanned epochs, conv_impl auto)"]
    rows = [
        {
            "bench": "vae",
            "impl": impl,
            "images": m,
            "batch_size": batch_size,
            "seconds": round(t, 3),
            "images_per_s": round(m / t, 1),
            "speedup_of_jaxunsup": round((t / m) / (ours[0] / ours[1]), 2),
        }
        for impl, (t, m) in times.items()
    ]
    state = vae.create_state(jax.random.key(0), vae.Config(), jnp.asarray(train[:1]))
    # the whole-batch step: XLA's cost analysis counts a loop body once, so it would see one
    # of `vae.train_step`'s micro-batches; both steps do the same products
    whole_batch = functools.partial(training.gradient_step, loss_fn=vae.loss_fn)
    rows[0]["mflop_per_image"] = round(
        step_mflop(whole_batch, state, jnp.asarray(train[:batch_size])), 3
    )
    k, n_test = 100, (200 if quick else len(test))
    seconds = _iwae_seconds(test[:n_test], k)
    rows.append({"bench": "vae", "impl": f"jaxunsup iwae_nll k={k}", "images": n_test,
                 "seconds": round(seconds, 3),
                 "images_per_s": round(n_test / seconds, 1)})  # fmt: skip
    return rows
