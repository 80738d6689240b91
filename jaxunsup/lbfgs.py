"""L-BFGS with `torch.optim.LBFGS` semantics, a whole run as one compiled `lax.while_loop`.

Post 000 §6 optimises its image with `optim.LBFGS([img])` (torch's defaults) and calls
`optimizer.step(closure)` while fewer than 301 closure calls have been made. Neither optax nor
jaxopt reproduces torch's algorithm, so this module restates it line for line
(`torch/optim/lbfgs.py`, torch 2.x): `lr`, `max_iter` and `max_eval` per outer step,
`history_size`, `tolerance_grad`, `tolerance_change`, the first step scaled by
min(1, 1/‖g‖₁)·lr, the curvature pair skipped when yᵀs ≤ 1e-10, the optional strong-Wolfe line
search (`_strong_wolfe` with its cubic interpolation, c1 = 1e-4, c2 = 0.9), and the optimiser
state (direction, step, history) carried from one outer step to the next.

The nested loops of torch (outer steps, iterations, line search) become one state machine
(its phases in `lbfgs_phases`): every turn of the `while_loop` either evaluates the closure at
the point the current phase asks for (one call site, so the objective is compiled once) or runs
the bookkeeping between two evaluations (the two-loop recursion, the checks, the zoom's next
trial step).

`projection` is applied before every evaluation, like the post's `input_img.data.clamp_(0, 1)`
at the top of its closure: where torch evaluates at the parameter itself (the start of an outer
step, the fixed-step iterations) the projected point replaces the parameter; line-search trials
evaluate at the projected trial point and leave the parameter alone, as torch's
`_directional_evaluate` restores it.

Deviations: a NaN or infinite closure value stops the run at once (`nonfinite` is set), where
torch would carry on with NaN comparisons.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxunsup.lbfgs_phases import (  # noqa: F401  (cubic_interpolate: torch's, public)
    DONE,
    History,
    cubic_interpolate,
    init_state,
    loop_body,
)


@dataclasses.dataclass(frozen=True)
class LBFGSConfig:
    """`torch.optim.LBFGS`'s arguments, with its defaults."""

    lr: float = 1.0
    max_iter: int = 20
    max_eval: int | None = None  # None → max_iter * 5 // 4, as torch
    tolerance_grad: float = 1e-7
    tolerance_change: float = 1e-9
    history_size: int = 100
    line_search_fn: Literal["strong_wolfe"] | None = None

    @property
    def evals_per_step(self) -> int:
        return self.max_iter * 5 // 4 if self.max_eval is None else self.max_eval


class LBFGSResult(NamedTuple):
    x: Any  # the parameters after the last step (projection not applied)
    num_evals: jax.Array  # closure evaluations made
    num_steps: jax.Array  # outer `optimizer.step(closure)` calls completed
    values: jax.Array  # [capacity] closure value of each evaluation (NaN past num_evals)
    aux: Any  # the closure's aux per evaluation, each leaf [capacity, ...]
    points: jax.Array | None  # [capacity, n] flattened evaluated points (record_points=True)
    nonfinite: jax.Array  # a closure value was NaN or infinite


def check_config(config: LBFGSConfig) -> None:
    """Raises ValueError naming the field unless `config` holds arguments torch accepts."""
    for name in ("max_iter", "history_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if config.max_eval is not None and (
        not isinstance(config.max_eval, int) or config.max_eval < 1
    ):
        raise ValueError(f"max_eval must be None or a positive integer, got {config.max_eval!r}")
    if not config.lr >= 0:  # torch accepts lr = 0
        raise ValueError(f"lr must be >= 0, got {config.lr!r}")
    if not (config.tolerance_grad >= 0 and config.tolerance_change >= 0):
        raise ValueError("tolerance_grad and tolerance_change must be >= 0")
    if config.line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(
            f"line_search_fn must be None or 'strong_wolfe', got {config.line_search_fn!r}"
        )


def capacity(max_evals: int, config: LBFGSConfig) -> int:
    """Evaluations a run can make: the last outer step starts below `max_evals` and takes at
    most `evals_per_step` + 1 evaluations (torch's line search may overshoot by one)."""
    return max_evals + config.evals_per_step


def _check_start(x0: Any) -> None:
    """Refuses a starting point that is not floating arrays, or not finite, before anything
    is compiled (a traced `x0`, under a caller's jit, is the caller's to check)."""
    for leaf in jax.tree.leaves(x0):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise ValueError(f"x0 must hold floating arrays, got {jnp.result_type(leaf)}; cast it")
        if isinstance(leaf, jax.core.Tracer):
            continue
        arr = np.asarray(leaf)
        if not np.isfinite(arr).all():
            bad = arr.size - np.count_nonzero(np.isfinite(arr))
            raise ValueError(f"x0 holds {bad} NaN or infinite values; start from finite parameters")


def minimize(
    fun: Callable,
    x0: Any,
    *args: Any,
    config: LBFGSConfig = LBFGSConfig(),
    max_evals: int = 21,
    projection: Callable | None = None,
    record_points: bool = False,
) -> LBFGSResult:
    """Runs torch's L-BFGS the way the post's loop does: `optimizer.step(closure)` is called
    again and again while fewer than `max_evals` closure evaluations have been made
    (the post's `while iteration[0] <= 300` is `max_evals=301`).

    Args:
      fun: `fun(x, *args) -> (value, grad, aux)`, the closure: the value torch's closure returns,
        the gradient it leaves in `.grad` (they need not match: the post's closure returns an
        unweighted loss) and any pytree of scalars/arrays to record per evaluation. A
        module-level function (it is a static argument).
      x0: the starting parameters (an array or pytree of floating arrays).
      *args: passed to `fun` (traced, so new values do not recompile).
      config: torch's LBFGS arguments.
      max_evals: start outer steps while fewer evaluations than this have been made.
      projection: `x -> x` applied before every evaluation (e.g. a clamp to [0, 1]).
      record_points: also record every evaluated (projected) point, flattened.

    Returns:
      An `LBFGSResult`; per-evaluation records have `capacity(max_evals, config)` rows.

    Raises:
      ValueError: bad `config` or `max_evals`, or an `x0` that is not finite floating arrays.
    """
    _check_start(x0)
    check_config(config)
    if max_evals < 1:
        raise ValueError(f"max_evals must be >= 1, got {max_evals}")
    return _solve(fun, x0, args, config, max_evals, projection, record_points)


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5, 6))
def _solve(fun, x0, args, config, max_evals, projection, record_points) -> LBFGSResult:
    """`minimize` after its checks: the whole run as one compiled `lax.while_loop`."""
    flat0, unravel = ravel_pytree(x0)
    proj = (
        (lambda v: v) if projection is None else (lambda v: ravel_pytree(projection(unravel(v)))[0])
    )

    def evaluate(v):
        value, grad, aux = fun(unravel(v), *args)
        return jnp.asarray(value, flat0.dtype), ravel_pytree(grad)[0].astype(flat0.dtype), aux

    value_shape, _, aux_shape = jax.eval_shape(evaluate, flat0)
    cap = capacity(max_evals, config)
    s0 = init_state(flat0, value_shape, aux_shape, cap, config.history_size, record_points)

    def cond(carry):
        return (carry[0].phase != DONE) & (carry[0].evals < cap)

    n, dtype = flat0.shape[0], flat0.dtype
    hist0 = History(*(jnp.zeros((config.history_size, n), dtype) for _ in range(2)))
    body = loop_body(evaluate, proj, config, max_evals)
    s, _ = lax.while_loop(cond, body, (s0, hist0))
    return LBFGSResult(
        x=unravel(s.x), num_evals=s.evals, num_steps=s.steps, values=s.values, aux=s.aux,
        points=s.points, nonfinite=s.nonfinite,
    )  # fmt: skip
