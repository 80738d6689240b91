"""Seeds as an axis: S models of one experiment trained as one vmapped program.

A run with `n_seeds = S > 1` keeps S models' parameters and optimiser states stacked on a
leading axis (`create`: `jax.vmap` of the experiment's `create_state` over S keys, one compiled
init), and trains them with one compiled step (`vmapped(step)`: `jax.vmap` of the module-level
step over the stacked state, the seeds' batches and their keys). `training.fit` takes the
stacked keys as its `key` and gives seed i the shuffles and step keys of a run of its own, so
seed i of a stacked run is the single-seed run with `seed + i` (up to float rounding: the
batched matmuls add in another order). On a mesh the seed axis stays replicated and each
seed's batch is split over the "data" axis.

`n_seeds = 1` takes none of this: `keys(seed, 1)` is the one key the single-model runs always
used, so their numbers are unchanged.

Results: `evaluate` runs a per-model `eval_fn` on every seed and reports the mean (under the
metric's own name, so curves and tables read as before) and `<metric>_per_seed`; `summary`
gives mean ± std for results.json.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import training


def keys(seed: int, n_seeds: int) -> jax.Array:
    """`key(seed)` for one seed (the single-model path, unchanged), else the stacked keys
    `key(seed + i)`, i < n_seeds: shape [S]."""
    training.check_positive("n_seeds", n_seeds, integer=True)
    if n_seeds == 1:
        return jax.random.key(seed)
    return jax.vmap(jax.random.key)(jnp.arange(seed, seed + n_seeds))  # [S]


def split(key: jax.Array, num: int = 2) -> tuple[jax.Array, ...]:
    """`jax.random.split(key, num)` as a tuple, for one key or per seed of stacked keys."""
    if key.ndim == 0:
        return tuple(jax.random.split(key, num))
    parts = jax.vmap(lambda k: jax.random.split(k, num))(key)  # [S, num]
    return tuple(parts[:, j] for j in range(num))


def count(state: Any) -> int | None:
    """S for a stacked state (a TrainState, or a tuple of them as the GANs keep), else None."""
    first = state[0] if isinstance(state, tuple) else state
    shape = np.shape(first.step)
    return int(shape[0]) if shape else None


def create(create_fn: Callable[[jax.Array], Any], key: jax.Array, compiler_options=None):
    """`create_fn(key)` for one key; for stacked keys [S] the S states stacked on a leading
    axis, built by one compiled `vmap` of `create_fn` (eagerly, a vmapped init dispatches
    each of its operations on its own)."""
    if key.ndim == 0:
        return create_fn(key)
    return jax.jit(jax.vmap(create_fn), compiler_options=compiler_options)(key)


def unstack(state: Any, i: int) -> Any:
    """Seed i's state out of a stacked one."""
    return jax.tree.map(lambda x: x[i], state)


@functools.partial(jax.jit, static_argnames="step", donate_argnums=0)
def _seeds_step(state, batch, key, *, step):
    state, out = jax.vmap(step)(state, batch, key)  # every metric [S]
    # The mean keeps a NaN of any seed, so fit stops as it does for one model.
    metrics = {name: jnp.mean(v) for name, v in out.items()}
    return state, {**metrics, **{f"{name}_per_seed": v for name, v in out.items()}}


@functools.cache
def vmapped(step: Callable) -> Callable:
    """The S-model form of a module-level `step(state, batch, key) -> (state, metrics)`: one
    jitted `vmap` over the stacked state, the batches [S, B, ...] and keys [S] that `fit`
    hands it; metrics are the seeds' means plus `<name>_per_seed` [S]. One object per step,
    so `fit` compiles it once."""
    return functools.partial(_seeds_step, step=step)


def step_for(step: Callable, state: Any) -> Callable:
    """`step` for a single model, `vmapped(step)` for a stacked state."""
    return step if count(state) is None else vmapped(step)


def evaluate(eval_fn: Callable[..., dict], state: Any, *per_seed: Any) -> dict:
    """`eval_fn(state, *per_seed)` for one model; for a stacked state each metric's mean
    over the seeds and `<name>_per_seed` (a list), seed i evaluated with its own slice of
    every `per_seed` argument (e.g. its evaluation key)."""
    n = count(state)
    if n is None:
        return eval_fn(state, *per_seed)
    rows = [eval_fn(unstack(state, i), *(unstack(a, i) for a in per_seed)) for i in range(n)]
    out = {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}
    return {**out, **{f"{name}_per_seed": [float(r[name]) for r in rows] for name in rows[0]}}


def summary(values) -> dict:
    """{"mean", "std", "per_seed"} of per-seed numbers (std: NumPy's, ddof 0)."""
    arr = np.asarray(values, np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "per_seed": arr.tolist()}


def mean_std(values, digits: int = 4) -> list[float]:
    """[mean, std] rounded, the `ours` of a results table row over seeds."""
    s = summary(values)
    return [round(s["mean"], digits), round(s["std"], digits)]
