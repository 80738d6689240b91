"""Argument and data checks shared by every module: each raises a ValueError that names the
argument and the fix before anything is compiled (DESIGN.md, "Errors a user can cause").

`training` re-exports them (`training.check_shape`, ...), the name model modules call them by.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def check_positive(name: str, value: float, integer: bool = False) -> None:
    """Raises ValueError naming `name` unless `value` is a positive (integer) number."""
    ok = isinstance(value, int | np.integer) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_images(name: str, images: Any, shape: tuple | None = None) -> np.ndarray:
    """Validates an image batch before anything is compiled: NHWC, finite, expected shape."""
    arr = np.asarray(images)
    if arr.ndim != 4:
        raise ValueError(f"{name} must be NHWC images [N, H, W, C], got shape {arr.shape}")
    if shape is not None and tuple(arr.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} must have per-image shape {tuple(shape)}, got {arr.shape[1:]}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN, inf or non-numeric values; clean the data first")
    return arr.astype(np.float32, copy=False)


def check_shape(name: str, x: Any, shape: tuple, what: str, fix: str) -> None:
    """Raises ValueError naming `name` unless `x` is a non-empty batch `[N, *shape]` (a
    `None` in `shape` matches any size). Reads shapes only, so it also runs under jit/vmap:
    `create_state` and `encode` check their input against the model with it.

    Args:
      name: the argument, as the message names it ("example", "images").
      x: the array (or tracer).
      shape: the per-row shape the model takes.
      what: what the model takes, for the message ("28×28×1 images").
      fix: the way out, for the message.
    """
    got = tuple(np.shape(x))
    ok = len(got) == len(shape) + 1 and got[0] > 0
    if ok and all(want is None or want == g for want, g in zip(shape, got[1:], strict=True)):
        return
    want = ", ".join(str("?" if d is None else d) for d in ("N", *shape))
    raise ValueError(f"{name} must be {what} [{want}], got shape {got}; {fix}")


def check_finite(name: str, data: Any) -> None:
    """Raises ValueError naming `name` (and the leaf) unless every leaf of `data` is a numeric
    array without NaN or inf. Runs in NumPy: nothing is compiled for it."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(data)[0]:
        where = name + jax.tree_util.keystr(path)
        arr = np.asarray(leaf)
        if arr.dtype != bool and not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{where} must be a numeric array, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ValueError(
                f"{where} holds {bad} NaN or infinite values; clean or drop them before training"
            )
