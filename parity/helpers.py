"""What every parity check shares: the row format, the worst-of summary, NHWC → NCHW tensors,
MNIST batches, the conv impls compared, and a one-torch-thread wrapper.

A check module imports this one (never `parity.registry`), so `registry` can import every
check without a cycle.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from jaxunsup import data
from parity.convert import params_to_torch
from parity.device import numpy, tensor

IMPLS = ("matmul", "xla")  # the conv impls every conv model's L0/L1 rows cover


def row(model, level, what, ours, ref, atol, rtol=0.0) -> dict:
    """One table row: max abs/rel error of `ours` against `ref` and whether every element
    is within `atol + rtol·|ref|`."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    err = np.abs(ours - ref)
    max_abs = float(err.max()) if err.size else 0.0
    max_rel = float((err / np.maximum(np.abs(ref), 1e-12)).max()) if err.size else 0.0
    ok = bool(np.all(err <= atol + rtol * np.abs(ref)))
    tol = f"atol {atol:g}" + (f" + rtol {rtol:g}" if rtol else "")
    return dict(model=model, level=level, what=what, max_abs=max_abs, max_rel=max_rel, tol=tol,
                ok=ok)  # fmt: skip


def worst(rows: list[dict], what: str) -> dict:
    """The row with the largest abs error, renamed `what`, ok only if every row is."""
    top = max(rows, key=lambda r: r["max_abs"])
    return {**top, "what": what, "ok": all(r["ok"] for r in rows)}


def grad_rows(model, grads, ref: torch.nn.Module, atol, rtol=0.0,
              what="gradients (all layers)") -> dict:  # fmt: skip
    """L1: our `grads` (flax layout) against the `.grad` of each of `ref`'s parameters, as the
    worst row."""
    ours = params_to_torch(grads, ref.state_dict())
    rows = [row(model, "L1", k, ours[k], numpy(p.grad), atol=atol, rtol=rtol)
            for k, p in ref.named_parameters()]  # fmt: skip
    return worst(rows, what)


def nchw(x) -> torch.Tensor:
    """NHWC images → an NCHW tensor (same dtype) on the torch device."""
    return tensor(np.asarray(x).transpose(0, 3, 1, 2))


def mnist_batches(n_batches: int, batch_size: int) -> np.ndarray:
    """The embedded 5,000 digits in order: [n_batches, batch_size, 28, 28, 1]."""
    images = data.load_mnist("all", source="embedded").images
    return images[: n_batches * batch_size].reshape(n_batches, batch_size, 28, 28, 1)


def one_torch_thread(fn):
    """Runs a check with one torch thread: its pool spin-waits on shared cores (far slower
    steps on a busy 2-core machine), and one thread gives the same numbers."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapped
