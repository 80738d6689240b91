"""Rows in parts: a batch's gradient as the mean over micro-batches, row-wise evaluation in
micro-batches inside one jitted call, and host-side evaluation in fixed-size batches.

`training` re-exports these (`training.batched_apply`, ...), the names model modules use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def micro_batch_size(batch: int, limit: int) -> int:
    """Rows per micro-batch for `mean_over_micro_batches`: the largest divisor of `batch`
    that is at most `limit`, or the whole batch when that divisor is below `limit` / 2
    (a batch size with no divisor near the limit, e.g. a prime, is not cut into slivers)."""
    size = max(d for d in range(1, min(batch, limit) + 1) if batch % d == 0)
    return size if 2 * size >= min(batch, limit) else batch


def _micro_batches(size: int, args: tuple) -> tuple[int, Any]:
    """(rows, args cut into [rows / size, size, ...] leaves), or (rows, None) when `size` is
    the whole batch; `size` must divide the rows."""
    n = int(np.shape(jax.tree.leaves(args)[0])[0])
    if n % size:
        raise ValueError(
            f"size {size} must divide the batch's {n} rows; pick one with micro_batch_size"
        )
    if size == n:
        return n, None
    return n, jax.tree.map(lambda a: a.reshape(n // size, size, *a.shape[1:]), args)


def mean_over_micro_batches(fn: Callable, size: int, *args: Any) -> Any:
    """The mean of `fn(*micro_args)` over the micro-batches of `size` rows that every leaf
    of `args` is cut into along its first axis (which `size` must divide), summed in a
    `lax.scan`. For an `fn` that returns batch means (a loss and its gradient), this is
    `fn(*args)` up to float rounding, with each micro-batch's intermediates a fraction of
    the whole batch's: they stay in cache, which makes a convolutional decoder's step
    faster on CPU (see `vae.train_step`)."""
    n, parts = _micro_batches(size, args)
    if parts is None:
        return fn(*args)

    def body(total, part):
        return jax.tree.map(jnp.add, total, fn(*part)), None

    first = jax.tree.map(lambda a: a[0], parts)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, *first))
    total, _ = jax.lax.scan(body, zeros, parts)
    return jax.tree.map(lambda t: t / (n // size), total)


def map_over_micro_batches(fn: Callable, size: int, *args: Any) -> Any:
    """`fn(*args)` for an `fn` whose rows are independent, computed over micro-batches of
    `size` rows (every leaf of `args` cut along its first axis, which `size` must divide) in a
    `lax.map`, the outputs' leaves concatenated back along their first axis. The same rows
    come out (up to float rounding); each micro-batch's intermediates are a fraction of the
    whole batch's and stay in cache (on CPU the VAE's decoder runs several times faster in
    parts of 20 than at once: `vae.iwae_nll`; benchmarks/README.md)."""
    n, parts = _micro_batches(size, args)
    if parts is None:
        return fn(*args)
    out = jax.lax.map(lambda part: fn(*part), parts)
    return jax.tree.map(lambda o: o.reshape(n, *o.shape[2:]), out)


def _rows(a, *, start: int, size: int) -> np.ndarray:
    return np.asarray(a[start : start + size])


def _pad_rows(a, *, size: int) -> np.ndarray:
    return np.concatenate([a, np.repeat(a[-1:], size - len(a), axis=0)])


def batched_apply(fn: Callable, data: Any, batch_size: int = 1000) -> Any:
    """Applies a jitted `fn(batch) -> pytree` over `data` in fixed-size batches (the last
    one padded, so one compilation serves every call) and concatenates the results."""
    leaves = jax.tree.leaves(data)
    n = int(np.shape(leaves[0])[0])
    outs = []
    for start in range(0, n, batch_size):
        batch = jax.tree.map(functools.partial(_rows, start=start, size=batch_size), data)
        m = int(np.shape(jax.tree.leaves(batch)[0])[0])
        if m < batch_size and n > batch_size:
            batch = jax.tree.map(functools.partial(_pad_rows, size=batch_size), batch)
        out = jax.device_get(fn(batch))
        outs.append(jax.tree.map(functools.partial(_rows, start=0, size=m), out))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
