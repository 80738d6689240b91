"""L-BFGS with `torch.optim.LBFGS` semantics, a whole run as one compiled `lax.while_loop`.

Post 000 §6 optimises its image with `optim.LBFGS([img])` (torch's defaults) and calls
`optimizer.step(closure)` while fewer than 301 closure calls have been made. Neither optax nor
jaxopt reproduces torch's algorithm, so this module restates it line for line
(`torch/optim/lbfgs.py`, torch 2.x): `lr`, `max_iter` and `max_eval` per outer step,
`history_size`, `tolerance_grad`, `tolerance_change`, the first step scaled by
min(1, 1/‖g‖₁)·lr, the curvature pair skipped when yᵀs ≤ 1e-10, the optional strong-Wolfe line
search (`_strong_wolfe` with its cubic interpolation, c1 = 1e-4, c2 = 0.9), and the optimiser
state (direction, step, history) carried from one outer step to the next.

The nested loops of torch (outer steps, iterations, line search) become one state machine: every
turn of the `while_loop` either evaluates the closure at the point the current phase asks for
(one call site, so the objective is compiled once) or runs the bookkeeping between two
evaluations (the two-loop recursion, the checks, the zoom's next trial step).

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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

# Phases of the state machine: 0-3 evaluate the closure, 4-6 compute between evaluations.
EVAL_START, EVAL_ITER, EVAL_BRACKET, EVAL_ZOOM, ITERATE, ZOOM_HEAD, LS_FINISH, DONE = range(8)
C1, C2 = 1e-4, 0.9  # torch's strong-Wolfe constants


@dataclasses.dataclass(frozen=True)
class LBFGSConfig:
    """`torch.optim.LBFGS`'s arguments, with its defaults."""

    lr: float = 1.0
    max_iter: int = 20
    max_eval: int | None = None  # None → max_iter * 5 // 4, as torch
    tolerance_grad: float = 1e-7
    tolerance_change: float = 1e-9
    history_size: int = 100
    line_search_fn: str | None = None  # None or "strong_wolfe"

    @property
    def evals_per_step(self) -> int:
        return self.max_iter * 5 // 4 if self.max_eval is None else self.max_eval

    def validate(self) -> None:
        for name in ("max_iter", "history_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.max_eval is not None and (not isinstance(self.max_eval, int) or self.max_eval < 1):
            raise ValueError(f"max_eval must be None or a positive integer, got {self.max_eval!r}")
        if not self.lr >= 0:  # torch accepts lr = 0
            raise ValueError(f"lr must be >= 0, got {self.lr!r}")
        if not (self.tolerance_grad >= 0 and self.tolerance_change >= 0):
            raise ValueError("tolerance_grad and tolerance_change must be >= 0")
        if self.line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(
                f"line_search_fn must be None or 'strong_wolfe', got {self.line_search_fn!r}"
            )


class LBFGSResult(NamedTuple):
    x: Any  # the parameters after the last step (projection not applied)
    num_evals: jax.Array  # closure evaluations made
    num_steps: jax.Array  # outer `optimizer.step(closure)` calls completed
    values: jax.Array  # [capacity] closure value of each evaluation (NaN past num_evals)
    aux: Any  # the closure's aux per evaluation, each leaf [capacity, ...]
    points: jax.Array | None  # [capacity, n] flattened evaluated points (record_points=True)
    nonfinite: jax.Array  # a closure value was NaN or infinite


class _State(NamedTuple):
    x: jax.Array  # [n] the parameter (torch's param data)
    loss: jax.Array  # torch's `loss`, the value at the current iterate
    grad: jax.Array  # [n] torch's `flat_grad`
    d: jax.Array  # [n] search direction
    t: jax.Array  # step length (or the line search's current trial step)
    gtd: jax.Array  # gᵀd at the start of the iteration
    rho: jax.Array  # [H] 1 / yᵀs of the pairs in the history ring (`_History`)
    start: jax.Array  # ring index of the oldest pair
    num_old: jax.Array  # pairs stored
    h_diag: jax.Array
    prev_grad: jax.Array  # [n]
    prev_loss: jax.Array
    n_iter: jax.Array  # torch's state["n_iter"], over all steps
    n_iter_step: jax.Array  # iterations in the current outer step
    evals: jax.Array  # closure evaluations so far
    step_start: jax.Array  # evals before the current outer step
    steps: jax.Array  # outer steps completed
    phase: jax.Array
    # strong-Wolfe line search (torch's `_strong_wolfe` locals)
    t_prev: jax.Array
    f_prev: jax.Array
    gtd_prev: jax.Array
    bt: jax.Array  # [2] bracket steps
    bf: jax.Array  # [2] bracket values
    bg: jax.Array  # [2, n] bracket gradients; bg[0] doubles as g_prev while bracketing
    bgtd: jax.Array  # [2]
    low: jax.Array  # index of the bracket's low point
    ls_done: jax.Array
    insuf: jax.Array  # insufficient progress in the last zoom step
    ls_iter: jax.Array
    max_ls: jax.Array
    d_norm: jax.Array
    # records
    values: jax.Array
    aux: Any
    points: jax.Array | None
    nonfinite: jax.Array


def _max_abs(v):
    return jnp.max(jnp.abs(v))


def cubic_interpolate(x1, f1, g1, x2, f2, g2, lo, hi):
    """torch's `_cubic_interpolate`: the minimiser of the cubic through two points with their
    slopes, clipped to [lo, hi]; the midpoint of [lo, hi] when the cubic has no minimum."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.maximum(d2_square, 0))
    min_pos = jnp.where(
        x1 <= x2,
        x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
        x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)),
    )
    return jnp.where(d2_square >= 0, jnp.minimum(jnp.maximum(min_pos, lo), hi), (lo + hi) / 2)


def _end_step_or(s: _State, brk, next_phase, max_evals: int) -> _State:
    """Where `brk`, ends the outer step (the post's loop starts another while fewer than
    `max_evals` evaluations were made); otherwise moves on to `next_phase`."""
    after = jnp.where(s.evals >= max_evals, DONE, EVAL_START)
    return s._replace(phase=jnp.where(brk, after, next_phase), steps=s.steps + brk)


def _post_checks(s: _State, opt_cond, cfg: LBFGSConfig, max_evals: int) -> _State:
    """The checks at the end of torch's iteration."""
    brk = (
        (s.n_iter_step == cfg.max_iter)
        | (s.evals - s.step_start >= cfg.evals_per_step)
        | opt_cond
        | (_max_abs(s.d * s.t) <= cfg.tolerance_change)
        | (jnp.abs(s.loss - s.prev_loss) < cfg.tolerance_change)
    )
    return _end_step_or(s, brk, ITERATE, max_evals)


class _History(NamedTuple):
    """torch's old_dirs / old_stps as ring buffers [H, n]. They stay outside `_State`: buffers
    that pass through `lax.cond` get copied, which at H = 100 costs more than an evaluation."""

    ys: jax.Array  # [H, n] y = Δgrad
    ss: jax.Array  # [H, n] s = d·t


def _push(s: _State, hist: _History) -> tuple[_State, _History]:
    """At the top of every iteration but the first, torch stores (y, s) when yᵀs > 1e-10 (the
    oldest pair makes room once H are stored). Runs unconditionally, writing a row in place
    (an unchanged one when there is nothing to store)."""
    y = s.grad - s.prev_grad
    step = s.d * s.t
    ys = jnp.dot(y, step)
    push = (s.phase == ITERATE) & (s.n_iter > 0) & (ys > 1e-10)
    size = hist.ys.shape[0]
    slot = (s.start + s.num_old) % size  # the oldest slot once the ring is full
    full = s.num_old == size
    hist = _History(
        hist.ys.at[slot].set(jnp.where(push, y, hist.ys[slot])),
        hist.ss.at[slot].set(jnp.where(push, step, hist.ss[slot])),
    )
    s = s._replace(
        rho=s.rho.at[slot].set(jnp.where(push, 1.0 / ys, s.rho[slot])),
        start=jnp.where(push & full, (s.start + 1) % size, s.start),
        num_old=jnp.where(push, jnp.minimum(s.num_old + 1, size), s.num_old),
        h_diag=jnp.where(push, ys / jnp.dot(y, y), s.h_diag),
    )
    return s, hist


def _two_loop(s: _State, hist: _History) -> jax.Array:
    """-H·g by the L-BFGS two-loop recursion over the stored pairs, oldest first (torch's)."""
    size = hist.ys.shape[0]

    def backward(k, carry):
        q, al = carry
        i = s.num_old - 1 - k
        slot = (s.start + i) % size
        a = jnp.dot(hist.ss[slot], q) * s.rho[slot]
        return q - a * hist.ys[slot], al.at[i].set(a)

    q, al = lax.fori_loop(0, s.num_old, backward, (-s.grad, jnp.zeros_like(s.rho)))

    def forward(i, r):
        slot = (s.start + i) % size
        be = jnp.dot(hist.ys[slot], r) * s.rho[slot]
        return r + (al[i] - be) * hist.ss[slot]

    return lax.fori_loop(0, s.num_old, forward, q * s.h_diag)


def _iterate(s: _State, cfg: LBFGSConfig, max_evals: int, hist: _History) -> _State:
    """The top of torch's iteration (after `_push`): the direction (steepest descent the first
    time), the step length, then a fixed step or a line search."""
    n_iter = s.n_iter + 1
    s = s._replace(n_iter=n_iter, n_iter_step=s.n_iter_step + 1)
    s = s._replace(d=lax.cond(n_iter == 1, lambda: -s.grad, lambda: _two_loop(s, hist)))
    one = jnp.ones_like(s.t)
    t = jnp.where(n_iter == 1, jnp.minimum(one, 1.0 / jnp.sum(jnp.abs(s.grad))), one) * cfg.lr
    gtd = jnp.dot(s.grad, s.d)
    s = s._replace(prev_grad=s.grad, prev_loss=s.loss, t=t, gtd=gtd)
    brk = gtd > -cfg.tolerance_change
    if cfg.line_search_fn is None:
        s = s._replace(x=jnp.where(brk, s.x, s.x + t * s.d))
        # torch skips the evaluation in the last iteration of a step; the step then ends
        brk = brk | (s.n_iter_step == cfg.max_iter)
        return _end_step_or(s, brk, EVAL_ITER, max_evals)
    s = s._replace(
        t_prev=jnp.zeros_like(t), f_prev=s.loss, gtd_prev=gtd, bg=s.bg.at[0].set(s.grad),
        ls_iter=jnp.zeros_like(s.ls_iter), ls_done=jnp.zeros_like(s.ls_done),
        max_ls=cfg.evals_per_step - (s.evals - s.step_start), d_norm=_max_abs(s.d),
    )  # fmt: skip
    return _end_step_or(s, brk, EVAL_BRACKET, max_evals)


def _after_start(s: _State, value, grad, cfg, max_evals) -> _State:
    s = s._replace(loss=value, grad=grad, step_start=s.evals - 1, n_iter_step=0 * s.n_iter_step)
    return _end_step_or(s, _max_abs(grad) <= cfg.tolerance_grad, ITERATE, max_evals)


def _after_iter(s: _State, value, grad, cfg, max_evals) -> _State:
    s = s._replace(loss=value, grad=grad)
    return _post_checks(s, _max_abs(grad) <= cfg.tolerance_grad, cfg, max_evals)


def _after_bracket(s: _State, f_new, g_new, cfg, max_evals) -> _State:
    """The bracketing loop of `_strong_wolfe`, after an evaluation at trial step `s.t`."""
    del max_evals
    gtd_new = jnp.dot(g_new, s.d)
    exhausted = s.ls_iter >= s.max_ls
    armijo_fail = (f_new > s.loss + C1 * s.t * s.gtd) | ((s.ls_iter > 1) & (f_new >= s.f_prev))
    wolfe = ~armijo_fail & (jnp.abs(gtd_new) <= -C2 * s.gtd)
    bracketed = ~exhausted & (armijo_fail | (~wolfe & (gtd_new >= 0)))
    done = ~exhausted & wolfe
    interp = ~(exhausted | bracketed | done)
    t_new = cubic_interpolate(s.t_prev, s.f_prev, s.gtd_prev, s.t, f_new, gtd_new,
                              s.t + 0.01 * (s.t - s.t_prev), s.t * 10)  # fmt: skip
    # slot 0: (0, f, g) when exhausted, the previous point when bracketed, else the new point
    t0 = jnp.where(exhausted, 0.0, jnp.where(bracketed, s.t_prev, s.t))
    f0 = jnp.where(exhausted, s.loss, jnp.where(bracketed, s.f_prev, f_new))
    g0 = jnp.where(exhausted, s.grad, jnp.where(bracketed, s.bg[0], g_new))
    bt, bf = jnp.stack([t0, s.t]), jnp.stack([f0, f_new])
    return s._replace(
        bt=bt, bf=bf, bg=jnp.stack([g0, g_new]), bgtd=jnp.stack([s.gtd_prev, gtd_new]),
        low=(bf[1] < bf[0]).astype(s.low.dtype), ls_done=done, insuf=jnp.zeros_like(done),
        t=jnp.where(interp, t_new, s.t), t_prev=jnp.where(interp, s.t, s.t_prev),
        f_prev=jnp.where(interp, f_new, s.f_prev), gtd_prev=jnp.where(interp, gtd_new, s.gtd_prev),
        ls_iter=s.ls_iter + interp, phase=jnp.where(interp, EVAL_BRACKET, ZOOM_HEAD),
    )  # fmt: skip


def _zoom_head(s: _State, cfg: LBFGSConfig, max_evals: int) -> _State:
    """The head of `_strong_wolfe`'s zoom loop: stop, or pick the next trial step."""
    del max_evals
    stop = (
        s.ls_done
        | (s.ls_iter >= s.max_ls)
        | (jnp.abs(s.bt[1] - s.bt[0]) * s.d_norm < cfg.tolerance_change)
    )
    lo, hi = jnp.min(s.bt), jnp.max(s.bt)
    t = cubic_interpolate(s.bt[0], s.bf[0], s.bgtd[0], s.bt[1], s.bf[1], s.bgtd[1], lo, hi)
    eps = 0.1 * (hi - lo)
    near = jnp.minimum(hi - t, t - lo) < eps
    at_bound = s.insuf | (t >= hi) | (t <= lo)
    moved = jnp.where(jnp.abs(t - hi) < jnp.abs(t - lo), hi - eps, lo + eps)
    t = jnp.where(near & at_bound, moved, t)
    return s._replace(
        t=jnp.where(stop, s.t, t),
        insuf=jnp.where(stop, s.insuf, near & ~at_bound),
        ls_iter=s.ls_iter + ~stop,
        phase=jnp.where(stop, LS_FINISH, EVAL_ZOOM),
    )


def _after_zoom(s: _State, f_new, g_new, cfg, max_evals) -> _State:
    """The bracket update of `_strong_wolfe`'s zoom loop after evaluating trial step `s.t`."""
    del cfg, max_evals
    gtd_new = jnp.dot(g_new, s.d)
    low, high = s.low, 1 - s.low
    new = (s.t, f_new, g_new, gtd_new)
    fields = ("bt", "bf", "bg", "bgtd")

    def fail(s):
        bt, bf, bg, bgtd = (getattr(s, f).at[high].set(v) for f, v in zip(fields, new, strict=True))
        return s._replace(bt=bt, bf=bf, bg=bg, bgtd=bgtd, low=(bf[1] < bf[0]).astype(s.low.dtype))

    def accept(s):
        wolfe = jnp.abs(gtd_new) <= -C2 * s.gtd
        swap = ~wolfe & (gtd_new * (s.bt[high] - s.bt[low]) >= 0)  # old high becomes new low
        out = {}
        for f, v in zip(fields, new, strict=True):
            arr = getattr(s, f)
            arr = jnp.where(swap, arr.at[high].set(arr[low]), arr)
            out[f] = arr.at[low].set(v)
        return s._replace(**out, ls_done=wolfe)

    armijo_fail = (f_new > s.loss + C1 * s.t * s.gtd) | (f_new >= s.bf[low])
    return lax.cond(armijo_fail, fail, accept, s)._replace(phase=jnp.asarray(ZOOM_HEAD))


def _ls_finish(s: _State, cfg: LBFGSConfig, max_evals: int) -> _State:
    """`_strong_wolfe` returns the bracket's low point; torch then steps there."""
    t, loss, grad = s.bt[s.low], s.bf[s.low], s.bg[s.low]
    s = s._replace(t=t, loss=loss, grad=grad, x=s.x + t * s.d)
    return _post_checks(s, _max_abs(grad) <= cfg.tolerance_grad, cfg, max_evals)


def _typed(phase_fn: Callable, config: LBFGSConfig, max_evals: int, **kwargs) -> Callable:
    """Binds a phase's static arguments and keeps every state leaf's dtype (branches of
    `lax.switch` must agree exactly; Python ints would otherwise widen under x64)."""

    def run(s: _State, *args) -> _State:
        out = phase_fn(s, *args, cfg=config, max_evals=max_evals, **kwargs)
        return jax.tree.map(lambda new, old: jnp.asarray(new, old.dtype), out, s)

    return run


def _keep(s: _State, *args, **kwargs) -> _State:
    """A phase the fixed-step mode never reaches (keeps its line search out of the program)."""
    return s


def _init_state(x, value_tree, aux_tree, capacity: int, hist: int, record_points: bool):
    n, dtype = x.shape[0], x.dtype
    zero, vec = jnp.zeros((), dtype), jnp.zeros((n,), dtype)
    i0, f0 = jnp.zeros((), jnp.int32), jnp.zeros((), bool)
    records = jax.tree.map(lambda a: jnp.full((capacity, *a.shape), jnp.nan, a.dtype), aux_tree)
    return _State(
        x=x, loss=zero, grad=vec, d=vec, t=zero, gtd=zero,
        rho=jnp.zeros((hist,), dtype), start=i0, num_old=i0, h_diag=jnp.ones((), dtype),
        prev_grad=vec, prev_loss=zero, n_iter=i0, n_iter_step=i0, evals=i0, step_start=i0,
        steps=i0, phase=jnp.asarray(EVAL_START, jnp.int32),
        t_prev=zero, f_prev=zero, gtd_prev=zero, bt=jnp.zeros((2,), dtype),
        bf=jnp.zeros((2,), dtype), bg=jnp.zeros((2, n), dtype), bgtd=jnp.zeros((2,), dtype),
        low=i0, ls_done=f0, insuf=f0, ls_iter=i0, max_ls=i0, d_norm=zero,
        values=jnp.full((capacity,), jnp.nan, value_tree.dtype), aux=records,
        points=jnp.full((capacity, n), jnp.nan, dtype) if record_points else None,
        nonfinite=f0,
    )  # fmt: skip


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
    return _minimize(
        fun, x0, *args, config=config, max_evals=max_evals, projection=projection,
        record_points=record_points,
    )  # fmt: skip


@functools.partial(
    jax.jit,
    static_argnames=("fun", "config", "max_evals", "projection", "record_points"),
)
def _minimize(
    fun: Callable,
    x0: Any,
    *args: Any,
    config: LBFGSConfig = LBFGSConfig(),
    max_evals: int = 21,
    projection: Callable | None = None,
    record_points: bool = False,
) -> LBFGSResult:
    config.validate()
    if max_evals < 1:
        raise ValueError(f"max_evals must be >= 1, got {max_evals}")
    flat0, unravel = ravel_pytree(x0)
    proj = (
        (lambda v: v) if projection is None else (lambda v: ravel_pytree(projection(unravel(v)))[0])
    )

    def evaluate(v):
        value, grad, aux = fun(unravel(v), *args)
        return jnp.asarray(value, flat0.dtype), ravel_pytree(grad)[0].astype(flat0.dtype), aux

    value_shape, _, aux_shape = jax.eval_shape(evaluate, flat0)
    cap = capacity(max_evals, config)
    s0 = _init_state(flat0, value_shape, aux_shape, cap, config.history_size, record_points)
    line_search = config.line_search_fn is not None
    after = [_after_start, _after_iter, _after_bracket if line_search else _keep,
             _after_zoom if line_search else _keep]  # fmt: skip
    logic = [_iterate, _zoom_head if line_search else _keep, _ls_finish if line_search else _keep]

    def eval_phase(s: _State) -> _State:
        trial = s.phase >= EVAL_BRACKET  # line-search trials leave the parameter alone
        point = proj(jnp.where(trial, s.x + s.t * s.d, s.x))
        value, grad, aux = evaluate(point)
        i = s.evals
        s = s._replace(
            x=jnp.where(trial, s.x, point), evals=i + 1,
            values=s.values.at[i].set(value, mode="drop"),
            aux=jax.tree.map(lambda r, a: r.at[i].set(a, mode="drop"), s.aux, aux),
            points=None if s.points is None else s.points.at[i].set(point, mode="drop"),
        )  # fmt: skip
        branches = [_typed(f, config, max_evals) for f in after]
        s = lax.switch(s.phase, branches, s, value, grad)
        bad = ~jnp.isfinite(value)
        phase = jnp.where(bad, DONE, s.phase).astype(s.phase.dtype)
        return s._replace(phase=phase, nonfinite=s.nonfinite | bad)

    def logic_phase(s: _State, hist: _History) -> _State:
        branches = [_typed(logic[0], config, max_evals, hist=hist)]
        branches += [_typed(f, config, max_evals) for f in logic[1:]]
        return lax.switch(s.phase - ITERATE, branches, s)

    def body(carry):
        s, hist = _push(*carry)
        s = lax.cond(s.phase < ITERATE, eval_phase, lambda s: logic_phase(s, hist), s)
        return s, hist

    def cond(carry):
        return (carry[0].phase != DONE) & (carry[0].evals < cap)

    n, dtype = flat0.shape[0], flat0.dtype
    hist0 = _History(*(jnp.zeros((config.history_size, n), dtype) for _ in range(2)))
    s, _ = lax.while_loop(cond, body, (s0, hist0))
    return LBFGSResult(
        x=unravel(s.x), num_evals=s.evals, num_steps=s.steps, values=s.values, aux=s.aux,
        points=s.points, nonfinite=s.nonfinite,
    )  # fmt: skip
