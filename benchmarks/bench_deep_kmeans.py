"""Training throughput of Deep K-Means (post 000 §7): our scanned epochs vs the post's loop.

Three implementations do the same work (the joint loss, hard assignment, Adam over encoder,
decoder and centroids, batch 128) on the embedded MNIST digits:
- jaxunsup: `training.fit` with `deep_kmeans.train_step` (epochs as one jitted `lax.scan`);
- the post's PyTorch loop, whose `Kmeans` assigns with a per-sample Python loop;
- the same PyTorch loop with one vectorised argmin (`VectorizedKmeans`).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from common import step_mflop, throughput_rows, torch_device, torch_sync

from jaxunsup import data, deep_kmeans, training
from parity import torch_deep_kmeans as ref


def _setup(images: np.ndarray, batch_size: int):
    """(seed-stacked state, step, data [N, 1, 28, 28, 1]) of the post's recipe, α = λ."""
    cfg = deep_kmeans.Config(batch_size=batch_size, t1=0, t2=1)
    state = deep_kmeans.create_seed_states(cfg, jnp.asarray(images[:1]))
    x = deep_kmeans.seed_data(images, cfg)  # [N, 1, 28, 28, 1]
    step = functools.partial(
        deep_kmeans.seeds_step,
        step=functools.partial(
            deep_kmeans.train_step, cfg=cfg, steps_per_epoch=len(images) // batch_size
        ),
    )
    return state, step, x


def _ours(images: np.ndarray, epochs: int, batch_size: int) -> float:
    state, step, x = _setup(images, batch_size)
    fit = dict(key=jax.random.key(0), batch_size=batch_size, verbose=False, progress=False)
    state, _ = training.fit(state, step, x, epochs=1, **fit)  # compile
    jax.block_until_ready(state.params)
    start = time.perf_counter()
    state, _ = training.fit(state, step, x, epochs=epochs, **fit)
    jax.block_until_ready(state.params)
    return time.perf_counter() - start


def _mflop(images: np.ndarray, batch_size: int) -> float:
    state, step, x = _setup(images, batch_size)
    return step_mflop(step, state, x[:batch_size])


def _torch(images: np.ndarray, epochs: int, batch_size: int, kmeans_cls) -> float:
    """The post's loop (shuffled batches of a pre-loaded tensor), α = λ."""
    dev = torch_device()
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(dev)
    torch.manual_seed(0)
    enc, dec = ref.Encoder(10).to(dev), ref.Decoder(10).to(dev)
    km = kmeans_cls(10, 10, torch.rand(10, 10)).to(dev)
    steps = len(x) // batch_size
    ref.train_steps(enc, dec, km, [x[:batch_size]], [1e-3])  # warm-up
    torch_sync(dev)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), device=dev)
        batches = [x[perm[i * batch_size : (i + 1) * batch_size]] for i in range(steps)]
        ref.train_steps(enc, dec, km, batches, [1e-3] * steps)
    torch_sync(dev)
    return time.perf_counter() - start


def bench_deep_kmeans(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    images = data.load_mnist("all", source="embedded").images  # 5,000 real digits
    batch_size = 128
    if quick:
        images = images[:1280]
    epochs = 1 if quick else 2
    n = epochs * (len(images) // batch_size) * batch_size
    times = {
        "jaxunsup fit (scanned epochs)": _ours(images, epochs, batch_size),
        "torch, the post's per-sample assignment loop": _torch(
            images, epochs, batch_size, ref.Kmeans
        ),
        "torch, vectorised assignment": _torch(images, epochs, batch_size, ref.VectorizedKmeans),
    }
    return throughput_rows("deep-kmeans", times, n, batch_size, _mflop(images, batch_size))
