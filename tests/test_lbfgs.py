"""`jaxunsup.lbfgs` against `torch.optim.LBFGS`: the same evaluated points, evaluation by
evaluation, on Rosenbrock and a random convex quadratic, with and without strong-Wolfe, across
several outer steps (state carried over), a full history ring, a clamp before each evaluation
and a closure whose returned value is not the function it differentiates (the post's)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.optim.lbfgs import _cubic_interpolate

from jaxunsup import lbfgs

ROSEN_X0 = np.array([-1.2, 1.0, -0.5, 0.8, 1.3])


def _rosen(x, xp):
    return xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _quadratic_problem(n=8, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.geomspace(0.5, 50.0, n)) @ q.T  # SPD, condition number 100
    b = rng.normal(size=n) * 3.0  # the unconstrained minimiser leaves [0, 1]^n
    return a, b, rng.uniform(0.2, 0.8, n)


def _quad(x, a, b, xp):
    return 0.5 * xp.sum(x * (a @ x)) - xp.sum(b * x)


def _jax_closure(x, a, b, value_scale, kind):
    f = (lambda x: _rosen(x, jnp)) if kind == "rosen" else (lambda x: _quad(x, a, b, jnp))
    value, grad = jax.value_and_grad(f)(x)
    return value * value_scale, grad, {"f": value}


rosen_closure = functools.partial(_jax_closure, kind="rosen")
quad_closure = functools.partial(_jax_closure, kind="quad")


def _clamp(x):
    return jnp.clip(x, 0.0, 1.0)


def torch_run(kind, x0, max_evals, problem=None, clamp=False, value_scale=1.0, **kwargs):
    """The post's loop around `torch.optim.LBFGS`: steps while fewer than `max_evals` closure
    calls were made; records every evaluated point and returned value."""
    x = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.LBFGS([x], **kwargs)
    a, b = (torch.from_numpy(v) for v in problem[:2]) if problem is not None else (None, None)
    points, values = [], []

    def closure():
        if clamp:
            x.data.clamp_(0, 1)
        opt.zero_grad()
        loss = _rosen(x, torch) if kind == "rosen" else _quad(x, a, b, torch)
        loss.backward()
        points.append(x.detach().clone().numpy())
        values.append(loss.item() * value_scale)
        return loss * value_scale

    while len(values) < max_evals:
        opt.step(closure)
    return np.array(points), np.array(values), x.detach().numpy()


def _ours(kind, x0, max_evals, problem=None, clamp=False, value_scale=1.0, **kwargs):
    closure = rosen_closure if kind == "rosen" else quad_closure
    a, b = (problem[0], problem[1]) if problem is not None else (np.eye(1), np.zeros(1))
    res = lbfgs.minimize(
        closure, jnp.asarray(x0), jnp.asarray(a), jnp.asarray(b), value_scale,
        config=lbfgs.LBFGSConfig(**kwargs), max_evals=max_evals,
        projection=_clamp if clamp else None, record_points=True,
    )  # fmt: skip
    n = int(res.num_evals)
    return np.asarray(res.points)[:n], np.asarray(res.values)[:n], np.asarray(res.x), res


def _assert_same_run(ours, theirs, first=20, rtol=1e-8, atol=1e-10):
    (p, v, x, _), (tp, tv, tx) = ours, theirs
    assert len(v) == len(tv), "a different number of closure evaluations"
    np.testing.assert_allclose(p[:first], tp[:first], rtol=rtol, atol=atol)
    np.testing.assert_allclose(v[:first], tv[:first], rtol=rtol, atol=atol)
    np.testing.assert_allclose(v[-1], tv[-1], rtol=1e-6, atol=1e-9)  # the same final value
    np.testing.assert_allclose(x, tx, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_rosenbrock_matches_torch_float64(line_search):
    with jax.enable_x64(True):
        kw = dict(line_search_fn=line_search)
        ours = _ours("rosen", ROSEN_X0, 40, **kw)
        theirs = torch_run("rosen", ROSEN_X0, 40, **kw)
    _assert_same_run(ours, theirs)
    assert int(ours[3].num_steps) == 2  # 20 (or 25 with the line search) evaluations per step
    if line_search:  # the line search makes progress fixed steps cannot
        assert ours[1][-1] < 0.01 < ours[1][0]


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_clamped_quadratic_matches_torch_float64(line_search):
    """Four iterations per outer step (state carried across 5+ steps), a history of 3 (the ring
    buffer wraps), and the post's in-place clamp to [0, 1] before every evaluation."""
    problem = _quadratic_problem()
    kw = dict(line_search_fn=line_search, max_iter=4, history_size=3)
    with jax.enable_x64(True):
        ours = _ours("quad", problem[2], 30, problem, clamp=True, **kw)
        theirs = torch_run("quad", problem[2], 30, problem, clamp=True, **kw)
    _assert_same_run(ours, theirs)
    assert int(ours[3].num_steps) >= 5
    assert ours[0].min() >= 0 and ours[0].max() <= 1  # every evaluated point was clamped
    unclamped = np.linalg.solve(problem[0], problem[1])
    assert unclamped.min() < 0 or unclamped.max() > 1  # so the clamp binds


def test_returned_value_drives_the_line_search_float64():
    """The post's closure returns a value that is not the differentiated one; torch's line
    search and tolerance tests use the returned value, and so must ours."""
    problem = _quadratic_problem(seed=1)
    kw = dict(line_search_fn="strong_wolfe", max_iter=5)
    with jax.enable_x64(True):
        ours = _ours("quad", problem[2], 25, problem, value_scale=0.3, **kw)
        theirs = torch_run("quad", problem[2], 25, problem, value_scale=0.3, **kw)
    _assert_same_run(ours, theirs)
    np.testing.assert_allclose(ours[1], 0.3 * np.asarray(ours[3].aux["f"])[: len(ours[1])])


def test_rosenbrock_matches_torch_float32():
    ours = _ours("rosen", ROSEN_X0.astype(np.float32), 20)
    theirs = torch_run("rosen", ROSEN_X0.astype(np.float32), 20)
    assert ours[1].dtype == np.float32
    # fixed steps on Rosenbrock amplify float32 rounding: 1e-7 at first, 4e-4 by evaluation 20
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-3)
    np.testing.assert_allclose(ours[1][:8], theirs[1][:8], rtol=1e-5)


def test_compiles_once_and_stops_at_a_stationary_point(compile_counter):
    """At the minimum every outer step ends after its first evaluation (torch's
    `tolerance_grad` test), so the post's loop makes one evaluation per step."""
    x0 = np.ones(5, np.float32)
    _ours("rosen", ROSEN_X0.astype(np.float32), 20)  # compiled by the float32 test or here
    with compile_counter:
        p, v, x, res = _ours("rosen", x0, 20)
    assert compile_counter.count == 0
    assert int(res.num_steps) == 20 and len(v) == 20
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(v, np.zeros(20, np.float32))


def test_cubic_interpolate_matches_torch():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x1, x2 = rng.uniform(-1, 2, 2)
        f1, f2, g1, g2 = rng.normal(size=4)
        bounds = (min(x1, x2) - 0.5, max(x1, x2) + 1.0) if rng.uniform() < 0.5 else None
        t = [torch.tensor(v, dtype=torch.float64) for v in (x1, f1, g1, x2, f2, g2)]
        ref = float(_cubic_interpolate(*t, bounds=bounds))
        lo, hi = bounds if bounds else (min(x1, x2), max(x1, x2))
        with jax.enable_x64(True):
            ours = float(lbfgs.cubic_interpolate(x1, f1, g1, x2, f2, g2, lo, hi))
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(line_search_fn="wolfe"), "line_search_fn"),
        (dict(max_iter=0), "max_iter"),
        (dict(history_size=1.5), "history_size"),
        (dict(lr=-1.0), "lr"),
        (dict(max_eval=0), "max_eval"),
        (dict(tolerance_grad=-1.0), "tolerance"),
    ],
)
def test_bad_settings_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lbfgs.minimize(rosen_closure, jnp.zeros(3), jnp.eye(1), jnp.zeros(1), 1.0,
                       config=lbfgs.LBFGSConfig(**kwargs))  # fmt: skip
    with pytest.raises(ValueError, match="max_evals"):
        lbfgs.minimize(rosen_closure, jnp.zeros(3), jnp.eye(1), jnp.zeros(1), 1.0, max_evals=0)


def test_nonfinite_value_stops_the_run():
    """A NaN closure value ends the run at that evaluation (same program as the float32 test:
    the value is scaled by NaN)."""
    _, values, _, res = _ours("rosen", ROSEN_X0.astype(np.float32), 20, value_scale=np.nan)
    assert bool(res.nonfinite)
    assert int(res.num_evals) == 1 and np.isnan(values[0])
