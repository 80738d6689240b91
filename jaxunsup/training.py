"""The training loop shared by every model: whole epochs as jitted `lax.scan`s.

`fit` puts the dataset on the device once, shuffles it each epoch with
`jax.random.permutation`, and runs the epoch's steps as one compiled `lax.scan` over batches
(split into a few chunks on long epochs so a progress bar can tick). Metrics reach the host
once per chunk. Every epoch appends a row to `metrics.jsonl`; checkpoints are written every
`checkpoint_every` epochs and at the end, and a later call with the same `workdir` resumes from
the latest one. Resuming gives the same parameters as an uninterrupted run: the shuffle of epoch
`e` is a function of (key, e) and the step key of a function of (key, state.step).

A NaN or infinite loss stops training with `TrainingDiverged`, naming the epoch and step; the
checkpoints already written stay untouched.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxunsup import checkpoint, distributed
from jaxunsup.batching import (  # noqa: F401  (re-exported: models call training.<name>)
    batched_apply,
    map_over_micro_batches,
    mean_over_micro_batches,
    micro_batch_size,
)
from jaxunsup.checks import (  # noqa: F401  (re-exported: models call training.<name>)
    check_finite,
    check_images,
    check_positive,
    check_shape,
)

TrainState = train_state.TrainState


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class FitResult(NamedTuple):
    state: Any
    history: list[dict]  # one row per epoch: {"epoch": e, "loss": ..., ...}


def create_train_state(apply_fn: Callable, params: Any, tx: optax.GradientTransformation):
    """A flax TrainState whose `step` is an int32 array (one dispatch-cache entry)."""
    state = TrainState.create(apply_fn=apply_fn, params=params, tx=tx)
    return state.replace(step=jnp.zeros((), jnp.int32))


@functools.partial(
    jax.jit,
    static_argnames=("train_step", "batch_size", "n_steps", "batch_sharding"),
    donate_argnums=0,
)
def _run_chunk(
    state, data, data_key, epoch, start, key, *, train_step, batch_size, n_steps,
    batch_sharding=None,
):  # fmt: skip
    n = jax.tree.leaves(data)[0].shape[0]

    def shuffle(data_key):
        return jax.random.permutation(jax.random.fold_in(data_key, epoch), n)  # [N]

    # stacked seeds' keys [S] (seeds.py): each seed its own shuffle, as in a run of its own
    perm = jax.vmap(shuffle)(data_key) if is_stacked(data_key) else shuffle(data_key)  # [(S,) N]

    def body(state, i):
        idx = jax.lax.dynamic_slice_in_dim(
            perm, (start + i) * batch_size, batch_size, axis=perm.ndim - 1
        )
        batch = jax.tree.map(lambda a: jnp.take(a, idx, axis=0), data)  # [(S,) B, ...]
        if batch_sharding is not None:  # each device computes its rows; XLA all-reduces
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return train_step(state, batch, key)

    return jax.lax.scan(body, state, jnp.arange(n_steps))


def _chunks(steps: int, chunk_steps: int | None) -> list[tuple[int, int]]:
    """Splits an epoch's steps into (start, size) chunks of at most two distinct sizes."""
    if not chunk_steps or chunk_steps >= steps:
        return [(0, steps)]
    n = math.ceil(steps / chunk_steps)
    size = math.ceil(steps / n)
    return [(s, min(size, steps - s)) for s in range(0, steps, size)]


def _read_history(path: Path, last_epoch: int) -> list[dict]:
    """The rows of `metrics.jsonl` up to `last_epoch`. A torn last line (a kill during the
    append) is dropped, as the epoch it belonged to is trained again; any other damage
    raises ValueError naming the file and the line."""
    if not path.exists():
        return []
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line.decode())
            assert isinstance(row, dict) and isinstance(row.get("epoch", 0), int)
        except (ValueError, UnicodeDecodeError, AssertionError):
            if i == len(lines) - 1:
                break
            raise ValueError(
                f"{path}, line {i + 1}, is not a metrics row; delete that line, or use a new "
                "workdir"
            ) from None
        rows.append(row)
    return [r for r in rows if r.get("epoch", 0) <= last_epoch]


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=0, unit="step", leave=False, disable=None)


def fit(
    state: Any, train_step: Callable, data: Any, *, key: jax.Array, epochs: int,
    batch_size: int, workdir: str | os.PathLike | None = None, checkpoint_every: int = 1,
    eval_fn: Callable[[Any], dict] | None = None, eval_every: int = 1,
    chunk_steps: int | None = 500, verbose: bool = True, progress: bool = True,
    mesh: Mesh | None = None,
) -> FitResult:  # fmt: skip
    """Trains `state` for `epochs` epochs over `data` with `train_step`.

    Args:
      state: a train state (pytree) whose `step` field counts optimiser steps.
      train_step: `(state, batch, key) -> (state, metrics)`, a module-level function; metrics
        is a dict of scalars and must contain "loss". It folds `state.step` into `key` itself.
      data: an array or pytree of arrays with a common leading dimension N (e.g. images, or
        (images, labels)); it is put on the device once.
      key: the base key of the run; epoch shuffles and step keys are derived from it. Stacked
        keys [S] (`seeds.keys`) train a stacked state (`seeds.create`) with `seeds.vmapped`
        steps: seed i gets the shuffles and step keys a run with `key[i]` gets, its batches
        [S, B, ...], its own metrics `<name>_per_seed` (lists in the history).
      epochs: total number of epochs (a resumed run continues up to this number).
      batch_size: samples per step (the global batch on a mesh); an epoch has N // batch_size
        steps (the remainder of each shuffled epoch is left out, and differs per epoch).
      workdir: where `metrics.jsonl` and `checkpoints/` go; None keeps everything in memory.
      checkpoint_every: save every this many epochs (and always after the last one).
      eval_fn: optional `state -> dict` run after every `eval_every` epochs (e.g. test loss);
        its numbers join that epoch's metrics row.
      chunk_steps: at most this many steps per compiled call (so the progress bar ticks).
      verbose: print one line per epoch, like the seeds' loops do; progress: a tqdm bar (on
        a terminal).
      mesh: data parallelism (`distributed.make_mesh`): every batch split over the mesh's
        "data" axis, the state replicated; the same batches and loss as on one device.
        None: `distributed.default_mesh()` (one device unless the CLI's --devices says).

    Returns:
      FitResult(state, history) with one metrics row per epoch since the start of the run.

    Raises:
      TrainingDiverged: the loss became NaN or infinite.
      ValueError: bad epochs, batch_size, workdir or data (NaN or inf in data are refused
        before anything is compiled), or a batch size the mesh does not divide.
      checkpoint.CorruptCheckpoint (a ValueError): the checkpoint to resume from is damaged
        or is another model's; nothing in `workdir` is changed.
    """
    check_positive("epochs", epochs, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("checkpoint_every", checkpoint_every, integer=True)
    n = _check_data(data, batch_size)
    mesh = distributed.default_mesh() if mesh is None else mesh
    state, keys, data, n = _place(state, key, data, n, batch_size, mesh)
    state, first_epoch, history = (state, 1, []) if workdir is None else (
        _resume(workdir, state, verbose))  # fmt: skip
    run = functools.partial(
        _run_chunk, train_step=train_step, batch_size=batch_size,
        batch_sharding=_batch_sharding(mesh, key),
    )  # fmt: skip
    loop = _Loop(data, keys, run, n // batch_size, chunk_steps, epochs, eval_fn, eval_every,
                 checkpoint_every, None if workdir is None else Path(workdir), verbose)  # fmt: skip
    with _on_mesh(mesh):
        state = _train(loop, state, first_epoch, history, progress)
    return FitResult(state, history)


def _train(loop: _Loop, state, first_epoch: int, history: list[dict], progress: bool):
    """Epochs `first_epoch`..`loop.epochs`, their rows appended to `history`, under a bar."""
    epochs = loop.epochs
    bar = _progress((epochs - first_epoch + 1) * loop.steps, progress and first_epoch <= epochs)
    try:
        for epoch in range(first_epoch, epochs + 1):
            state, row = _train_epoch(loop, state, epoch, bar)
            history.append(row)
    finally:
        if bar is not None:
            bar.close()
    return state


def _place(state, key, data, n: int, batch_size: int, mesh: Mesh | None):
    """(state, (data key, step key), data, N) on the device, or replicated / split over
    `mesh` (a batch size the mesh does not divide is refused)."""
    if mesh is not None and batch_size % mesh.size:
        raise ValueError(
            f"batch_size={batch_size} does not split over {mesh.size} devices; pass a multiple "
            f"of {mesh.size} or fewer --devices"
        )
    keys = _split(key)  # (data, step)
    if mesh is None:
        return state, keys, jax.device_put(data), n
    state, keys = distributed.replicate((state, keys), mesh)
    data = distributed.put_rows(data, mesh)
    return state, keys, data, int(jax.tree.leaves(data)[0].shape[0])


class _Loop(NamedTuple):
    """What every epoch of one `fit` call uses."""

    data: Any
    keys: tuple  # (data key, step key)
    run: Callable  # `_run_chunk` with the step's static arguments bound
    steps: int  # per epoch
    chunk_steps: int | None
    epochs: int
    eval_fn: Callable | None
    eval_every: int
    checkpoint_every: int
    workdir: Path | None
    verbose: bool

    @property
    def ckpt_dir(self) -> Path | None:
        return None if self.workdir is None else self.workdir / "checkpoints"


def _train_epoch(loop: _Loop, state, epoch: int, bar) -> tuple[Any, dict]:
    """One epoch, its evaluation, its metrics row logged, its checkpoint when one is due."""
    state, sums = _epoch(loop, state, epoch, bar)
    row = {"epoch": epoch, **{k: _plain(v / loop.steps) for k, v in sums.items()}}
    last = epoch == loop.epochs
    if loop.eval_fn is not None and (epoch % loop.eval_every == 0 or last):
        row.update({k: _plain(v) for k, v in loop.eval_fn(state).items()})
    _log(row, None if loop.workdir is None else loop.workdir / "metrics.jsonl", loop.verbose)
    if loop.ckpt_dir is not None and (epoch % loop.checkpoint_every == 0 or last):
        checkpoint.save(loop.ckpt_dir, epoch, state, {"epoch": epoch})
    return state, row


def _check_data(data: Any, batch_size: int) -> int:
    """N, the rows of `data`, after checking its leaves agree and hold finite numbers."""
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data is empty: pass an array or a pytree of arrays")
    n = int(np.shape(leaves[0])[0])
    if any(int(np.shape(x)[0]) != n for x in leaves):
        raise ValueError("every array in data must have the same leading dimension")
    if n // batch_size == 0:
        raise ValueError(f"batch_size={batch_size} is larger than the dataset ({n} samples)")
    check_finite("data", data)
    return n


def _resume(workdir, state, verbose: bool) -> tuple[Any, int, list[dict]]:
    """(state, first epoch, history) from `workdir`'s latest checkpoint, or as given."""
    from jaxunsup.files import check_workdir, write_jsonl

    workdir = check_workdir(workdir)
    ckpt_dir, metrics_path = workdir / "checkpoints", workdir / "metrics.jsonl"
    checkpoint.verify(ckpt_dir)  # a damaged checkpoint is refused before orbax opens it
    if distributed.is_main_process():
        workdir.mkdir(parents=True, exist_ok=True)
    first_epoch = 1
    last = checkpoint.latest_step(ckpt_dir)
    if last is not None:
        state, meta = checkpoint.restore(ckpt_dir, state, last)  # into `state`'s shardings
        first_epoch = int(meta["epoch"]) + 1
        if verbose:
            print(f"resuming from {ckpt_dir} after epoch {first_epoch - 1}", file=sys.stderr)
    history = _read_history(metrics_path, first_epoch - 1)
    write_jsonl(metrics_path, history)
    return state, first_epoch, history


def _on_mesh(mesh):
    """Traces under `mesh` (so `backend.on_mesh()` switches the CPU batch tricks off)."""
    return contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)


def _epoch(loop: _Loop, state, epoch: int, bar):
    """One epoch in compiled chunks; returns (state, per-metric sums over its steps)."""
    sums: dict[str, float] = {}
    steps, ckpt_dir = loop.steps, loop.ckpt_dir
    for start, size in _chunks(steps, loop.chunk_steps):
        state, metrics = loop.run(
            state, loop.data, loop.keys[0], np.int32(epoch), np.int32(start), loop.keys[1],
            n_steps=size,
        )  # fmt: skip
        metrics = distributed.to_host(metrics)  # {name: [size]}
        bad = ~np.isfinite(np.asarray(metrics["loss"]))
        if bad.any():
            i = int(np.argmax(bad))
            raise TrainingDiverged(
                f"loss became {metrics['loss'][i]} at epoch {epoch}, step {start + i + 1} "
                f"of {steps} (global step {(epoch - 1) * steps + start + i + 1}); "
                "training stopped, the last good checkpoint is kept"
                + (f" in {ckpt_dir}" if ckpt_dir else "")
                + ". Try a smaller learning rate or check the data for NaNs."
            )
        for name, values in metrics.items():  # [size] or, per seed, [size, S]
            sums[name] = sums.get(name, 0.0) + np.sum(values, axis=0, dtype=np.float64)
        if bar is not None:
            bar.update(size)
    return state, sums


def is_stacked(key: jax.Array) -> bool:
    """Whether `key` is a stack of typed keys [S], one per seed (seeds.py)."""
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 1


def _split(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(data, step) keys from `key`, or per seed from stacked keys [S]."""
    if not is_stacked(key):
        return tuple(jax.random.split(key))
    parts = jax.vmap(jax.random.split)(key)  # [S, 2]
    return parts[:, 0], parts[:, 1]


def _batch_sharding(mesh: Mesh | None, key: jax.Array):
    """Batches split over "data" on their rows: axis 0, or axis 1 of stacked seeds' [S, B]."""
    if mesh is None:
        return None
    if not is_stacked(key):
        return distributed.rows(mesh)
    return NamedSharding(mesh, PartitionSpec(None, distributed.DATA))


def _plain(value: Any) -> float | list:
    """A metric for metrics.jsonl: a float, or a list (one number per seed)."""
    arr = np.asarray(value, np.float64)
    return float(arr) if arr.ndim == 0 else arr.tolist()


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return "[" + " ".join(f"{v:.4g}" for v in value) + "]"
    return f"{value:.4g}"


def _log(row: dict, metrics_path: Path | None, verbose: bool) -> None:
    if verbose:
        extra = " ".join(f"{k}: {_fmt(v)}" for k, v in row.items() if k not in ("epoch",))
        print(f"[{row['epoch']}] {extra}", file=sys.stderr)
    if metrics_path is not None and distributed.is_main_process():
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")


def restore_latest(workdir: str | os.PathLike, target: Any) -> tuple[Any, int]:
    """Restores the newest checkpoint that `fit` wrote in `workdir`; returns (state, epoch)."""
    state, meta = checkpoint.restore(Path(workdir) / "checkpoints", target)
    return state, int(meta["epoch"])


@functools.partial(jax.jit, static_argnames="loss_fn", donate_argnums=0)
def gradient_step(state, batch, key, *, loss_fn: Callable):
    """One optimiser step on `loss_fn(params, apply_fn, batch, key) -> (loss, metrics)`.

    Experiment modules bind their loss: `train_step = functools.partial(gradient_step,
    loss_fn=loss_fn)`, a module-level object, so `fit` compiles it once per shape.
    """
    key = jax.random.fold_in(key, state.step)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, metrics), grads = grad_fn(state.params, state.apply_fn, batch, key)
    return state.apply_gradients(grads=grads), {"loss": loss, **metrics}
