"""Training throughput of the conv AE (post 000 §4) and post 004's Keras CNN AE.

Same work in one process: our `fit` (epochs as scanned, jitted steps; convolutions from
`patch_conv`, and once more with XLA's convolutions), the seed's PyTorch loop (a shuffling
DataLoader at the seed's batch size) and a leaner PyTorch loop over a pre-loaded tensor.
PyTorch runs with 2 threads.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from common import step_mflop, throughput_rows, torch_device, torch_sync

from jaxunsup import ae_conv, ae_keras, data, training
from parity import torch_autoencoders as ta


def _ours(module, cfg, images: np.ndarray, epochs: int) -> float:
    key = jax.random.key(0)
    state = module.create_state(key, cfg, jnp.asarray(images[:1]))
    fit = dict(key=key, batch_size=cfg.batch_size, verbose=False, progress=False)
    state, _ = training.fit(state, module.train_step, images, epochs=1, **fit)  # compile
    jax.block_until_ready(state.params)
    start = time.perf_counter()
    state, _ = training.fit(state, module.train_step, images, epochs=epochs, **fit)
    jax.block_until_ready(state.params)
    return time.perf_counter() - start


def _mflop(module, cfg, images: np.ndarray) -> float:
    state = module.create_state(jax.random.key(0), cfg, jnp.asarray(images[:1]))
    return step_mflop(module.train_step, state, jnp.asarray(images[: cfg.batch_size]))


def _torch_epochs(model, images: np.ndarray, epochs: int, batch_size: int, lr: float, eps: float,
                  loader: bool) -> float:  # fmt: skip
    # ndarray.copy() is C-ordered: standard NCHW strides even for C = 1 (the post's view())
    x, dev = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch_device()
    x_dev, model = x.to(dev), model.to(dev)
    ta.train_steps(model, [x_dev[:batch_size]], lr, eps)  # warm-up
    steps = len(x) // batch_size
    torch_sync(dev)
    start = time.perf_counter()
    for _ in range(epochs):
        if loader:  # the seed's loop: DataLoader(TensorDataset, shuffle=True), to the device
            dataset = torch.utils.data.TensorDataset(x)
            loaded = torch.utils.data.DataLoader(dataset, batch_size, True)
            batches = (b[0].to(dev) for b in loaded)
        else:
            perm = torch.randperm(len(x), device=dev)
            batches = (x_dev[perm[i * batch_size : (i + 1) * batch_size]] for i in range(steps))
        ta.train_steps(model, batches, lr, eps)
    torch_sync(dev)
    return time.perf_counter() - start


def bench_ae_conv(quick: bool = False) -> list[dict]:
    """Post 000 §4 on the embedded 4,000 digits, batch 50, Adam 1e-3."""
    torch.set_num_threads(2)
    images = data.load_mnist("train", source="embedded").images
    epochs = 1 if quick else 5
    cfg = ae_conv.ConvConfig()
    torch.manual_seed(0)
    times = {
        "jaxunsup fit (scanned epochs, conv_impl auto)": _ours(ae_conv, cfg, images, epochs),
        "jaxunsup fit (scanned epochs, conv_impl xla)": _ours(
            ae_conv, ae_conv.ConvConfig(conv_impl="xla"), images, epochs
        ),
        "torch DataLoader loop (the post's)": _torch_epochs(
            ta.ConvAutoencoder(), images, epochs, 50, cfg.lr, 1e-8, loader=True
        ),
        "torch pre-sliced tensors": _torch_epochs(
            ta.ConvAutoencoder(), images, epochs, 50, cfg.lr, 1e-8, loader=False
        ),
    }
    n = epochs * (len(images) // 50) * 50
    return throughput_rows("ae-conv", times, n, 50, _mflop(ae_conv, cfg, images))


def bench_ae_keras_cnn(quick: bool = False) -> list[dict]:
    """Post 004 §2 on its 3,000 digits (the first of the embedded set), batch 300."""
    torch.set_num_threads(2)
    images = data.load_mnist("train", source="embedded").images[:3000]
    epochs = 2 if quick else 10
    cfg = ae_keras.KerasCNNConfig()
    eps = ae_keras.KERAS_ADAM_EPS
    torch.manual_seed(0)
    times = {
        "jaxunsup fit (scanned epochs, conv_impl auto)": _ours(ae_keras, cfg, images, epochs),
        "jaxunsup fit (scanned epochs, conv_impl xla)": _ours(
            ae_keras, ae_keras.KerasCNNConfig(conv_impl="xla"), images, epochs
        ),
        "torch DataLoader loop (the post's batch 300)": _torch_epochs(
            ta.KerasCNNAutoencoder(), images, epochs, 300, cfg.lr, eps, loader=True
        ),
        "torch pre-sliced tensors": _torch_epochs(
            ta.KerasCNNAutoencoder(), images, epochs, 300, cfg.lr, eps, loader=False
        ),
    }
    return throughput_rows("ae-keras-cnn", times, epochs * 3000, 300, _mflop(ae_keras, cfg, images))
