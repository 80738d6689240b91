"""Training throughput of the stacked AE (post 000 §2): our fit vs the post's PyTorch loop."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from common import step_mflop, throughput_rows, torch_device, torch_sync

from jaxunsup import autoencoder, data, training
from parity import torch_models


def _ours(images: np.ndarray, epochs: int, batch_size: int) -> tuple[float, float]:
    """(seconds for `epochs` epochs, MFLOP per image of the step)."""
    cfg = autoencoder.StackedConfig(batch_size=batch_size)
    key = jax.random.key(0)
    state = autoencoder.create_state(key, cfg, jnp.asarray(images[:1]))
    mflop = step_mflop(autoencoder.train_step, state, jnp.asarray(images[:batch_size]))
    fit = dict(key=key, batch_size=batch_size, verbose=False, progress=False)
    state, _ = training.fit(state, autoencoder.train_step, images, epochs=1, **fit)  # compile
    jax.block_until_ready(state.params)
    start = time.perf_counter()
    state, _ = training.fit(state, autoencoder.train_step, images, epochs=epochs, **fit)
    jax.block_until_ready(state.params)
    return time.perf_counter() - start, mflop


def _torch_dataloader(images: np.ndarray, epochs: int, batch_size: int) -> float:
    """The post's loop: a shuffling DataLoader over the dataset, batch 50, each batch moved
    to the device."""
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    dev = torch_device()
    model = torch_models.StackedAutoencoder().to(dev)
    torch_models.stacked_ae_train_steps(model, [x[:batch_size].to(dev)])  # warm-up
    torch_sync(dev)
    start = time.perf_counter()
    for _ in range(epochs):
        torch_models.stacked_ae_train_steps(model, (b[0].to(dev) for b in loader))
    torch_sync(dev)
    return time.perf_counter() - start


def _torch_sliced(images: np.ndarray, epochs: int, batch_size: int) -> float:
    """A leaner PyTorch loop: the data pre-loaded on the device, one permutation per epoch,
    slices."""
    dev = torch_device()
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(dev)
    model = torch_models.StackedAutoencoder().to(dev)
    steps = len(x) // batch_size
    torch_models.stacked_ae_train_steps(model, [x[:batch_size]])
    torch_sync(dev)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), device=dev)
        batches = (x[perm[i * batch_size : (i + 1) * batch_size]] for i in range(steps))
        torch_models.stacked_ae_train_steps(model, batches)
    torch_sync(dev)
    return time.perf_counter() - start


def bench_ae_stacked(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    images = data.load_mnist("train", source="embedded").images  # 4,000 real digits
    epochs, batch_size = (2, 50) if quick else (10, 50)
    n = epochs * (len(images) // batch_size) * batch_size
    seconds, mflop = _ours(images, epochs, batch_size)
    times = {
        "jaxunsup fit (scanned epochs)": seconds,
        "torch DataLoader loop (the post's)": _torch_dataloader(images, epochs, batch_size),
        "torch pre-sliced tensors": _torch_sliced(images, epochs, batch_size),
    }
    return throughput_rows("ae-stacked", times, n, batch_size, mflop)
