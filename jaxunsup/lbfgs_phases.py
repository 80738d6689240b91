"""The phases of `lbfgs.minimize`'s state machine: torch's L-BFGS iteration, its two-loop
recursion and its strong-Wolfe line search (`torch/optim/lbfgs.py`, torch 2.x), each a pure
function of the state. `lbfgs` runs them in one `lax.while_loop` (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

if TYPE_CHECKING:
    from jaxunsup.lbfgs import LBFGSConfig

# Phases of the state machine: 0-3 evaluate the closure, 4-6 compute between evaluations.
EVAL_START, EVAL_ITER, EVAL_BRACKET, EVAL_ZOOM, ITERATE, ZOOM_HEAD, LS_FINISH, DONE = range(8)
C1, C2 = 1e-4, 0.9  # torch's strong-Wolfe constants


class State(NamedTuple):
    x: jax.Array  # [n] the parameter (torch's param data)
    loss: jax.Array  # torch's `loss`, the value at the current iterate
    grad: jax.Array  # [n] torch's `flat_grad`
    d: jax.Array  # [n] search direction
    t: jax.Array  # step length (or the line search's current trial step)
    gtd: jax.Array  # gᵀd at the start of the iteration
    rho: jax.Array  # [H] 1 / yᵀs of the pairs in the history ring (`History`)
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


def _end_step_or(s: State, brk, next_phase, max_evals: int) -> State:
    """Where `brk`, ends the outer step (the post's loop starts another while fewer than
    `max_evals` evaluations were made); otherwise moves on to `next_phase`."""
    after = jnp.where(s.evals >= max_evals, DONE, EVAL_START)
    return s._replace(phase=jnp.where(brk, after, next_phase), steps=s.steps + brk)


def _post_checks(s: State, opt_cond, cfg: LBFGSConfig, max_evals: int) -> State:
    """The checks at the end of torch's iteration."""
    brk = (
        (s.n_iter_step == cfg.max_iter)
        | (s.evals - s.step_start >= cfg.evals_per_step)
        | opt_cond
        | (_max_abs(s.d * s.t) <= cfg.tolerance_change)
        | (jnp.abs(s.loss - s.prev_loss) < cfg.tolerance_change)
    )
    return _end_step_or(s, brk, ITERATE, max_evals)


class History(NamedTuple):
    """torch's old_dirs / old_stps as ring buffers [H, n]. They stay outside `State`: buffers
    that pass through `lax.cond` get copied, which at H = 100 costs more than an evaluation."""

    ys: jax.Array  # [H, n] y = Δgrad
    ss: jax.Array  # [H, n] s = d·t


def _push(s: State, hist: History) -> tuple[State, History]:
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
    hist = History(
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


def _two_loop(s: State, hist: History) -> jax.Array:
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


def _iterate(s: State, cfg: LBFGSConfig, max_evals: int, hist: History) -> State:
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


def _after_start(s: State, value, grad, cfg, max_evals) -> State:
    s = s._replace(loss=value, grad=grad, step_start=s.evals - 1, n_iter_step=0 * s.n_iter_step)
    return _end_step_or(s, _max_abs(grad) <= cfg.tolerance_grad, ITERATE, max_evals)


def _after_iter(s: State, value, grad, cfg, max_evals) -> State:
    s = s._replace(loss=value, grad=grad)
    return _post_checks(s, _max_abs(grad) <= cfg.tolerance_grad, cfg, max_evals)


def _after_bracket(s: State, f_new, g_new, cfg, max_evals) -> State:
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


def _zoom_head(s: State, cfg: LBFGSConfig, max_evals: int) -> State:
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


def _after_zoom(s: State, f_new, g_new, cfg, max_evals) -> State:
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


def _ls_finish(s: State, cfg: LBFGSConfig, max_evals: int) -> State:
    """`_strong_wolfe` returns the bracket's low point; torch then steps there."""
    t, loss, grad = s.bt[s.low], s.bf[s.low], s.bg[s.low]
    s = s._replace(t=t, loss=loss, grad=grad, x=s.x + t * s.d)
    return _post_checks(s, _max_abs(grad) <= cfg.tolerance_grad, cfg, max_evals)


def _typed(phase_fn: Callable, config: LBFGSConfig, max_evals: int, **kwargs) -> Callable:
    """Binds a phase's static arguments and keeps every state leaf's dtype (branches of
    `lax.switch` must agree exactly; Python ints would otherwise widen under x64)."""

    def run(s: State, *args) -> State:
        out = phase_fn(s, *args, cfg=config, max_evals=max_evals, **kwargs)
        return jax.tree.map(lambda new, old: jnp.asarray(new, old.dtype), out, s)

    return run


def _keep(s: State, *args, **kwargs) -> State:
    """A phase the fixed-step mode never reaches (keeps its line search out of the program)."""
    return s


def init_state(x, value_tree, aux_tree, capacity: int, hist: int, record_points: bool):
    n, dtype = x.shape[0], x.dtype
    zero, vec = jnp.zeros((), dtype), jnp.zeros((n,), dtype)
    i0, f0 = jnp.zeros((), jnp.int32), jnp.zeros((), bool)
    records = jax.tree.map(lambda a: jnp.full((capacity, *a.shape), jnp.nan, a.dtype), aux_tree)
    return State(
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


def loop_body(evaluate: Callable, proj: Callable, config: LBFGSConfig, max_evals: int):
    """The `while_loop` body over (state, history): push the last curvature pair, then either
    evaluate the closure (`evaluate(v) -> (value, grad, aux)` at the projected point the phase
    asks for; one call site, so the objective is compiled once) or run the phase's logic."""
    line_search = config.line_search_fn is not None
    after = [_after_start, _after_iter, _after_bracket if line_search else _keep,
             _after_zoom if line_search else _keep]  # fmt: skip
    logic = [_iterate, _zoom_head if line_search else _keep, _ls_finish if line_search else _keep]

    def eval_phase(s: State) -> State:
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

    def logic_phase(s: State, hist: History) -> State:
        branches = [_typed(logic[0], config, max_evals, hist=hist)]
        branches += [_typed(f, config, max_evals) for f in logic[1:]]
        return lax.switch(s.phase - ITERATE, branches, s)

    def body(carry):
        s, hist = _push(*carry)
        s = lax.cond(s.phase < ITERATE, eval_phase, lambda s: logic_phase(s, hist), s)
        return s, hist

    return body
