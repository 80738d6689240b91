"""training.fit: convergence, resume equality, NaN stop, compile-once, chunking."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxunsup import checkpoint, training


def _linear_apply(params, x):
    return x @ params["w"] + params["b"][None, :]  # [B, 1]


def _mse_loss(params, apply_fn, batch, key):
    x, y = batch
    noise = 0.0 * jax.random.normal(key, y.shape)  # key is threaded through
    return jnp.mean((apply_fn(params, x) - y - noise) ** 2), {"abs_w": jnp.abs(params["w"]).sum()}


_step = functools.partial(training.gradient_step, loss_fn=_mse_loss)


def _explode_loss(params, apply_fn, batch, key):
    x, y = batch
    loss = jnp.mean((apply_fn(params, x) - y) ** 2)
    return jnp.where(params["b"][0] > 0.05, jnp.nan, loss), {}  # NaN once b grows


_explode_step = functools.partial(training.gradient_step, loss_fn=_explode_loss)


def _problem(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    return x, y


def _state(lr=0.05):
    params = {"w": jnp.zeros((3, 1)), "b": jnp.zeros((1,))}
    return training.create_train_state(_linear_apply, params, optax.adam(lr))


def test_fit_converges_and_writes_metrics(tmp_path, key):
    data = _problem()
    state, history = training.fit(
        _state(), _step, data, key=key, epochs=30, batch_size=8, workdir=tmp_path, verbose=False
    )
    assert [r["epoch"] for r in history] == list(range(1, 31))
    assert history[-1]["loss"] < 1e-2 * history[0]["loss"]
    np.testing.assert_allclose(state.params["w"][:, 0], [1.0, -2.0, 0.5], atol=0.05)
    assert int(state.step) == 30 * 8
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == history
    assert checkpoint.latest_step(tmp_path / "checkpoints") == 30


def test_resume_gives_identical_params(tmp_path, key):
    data = _problem()
    full, _ = training.fit(
        _state(), _step, data, key=key, epochs=4, batch_size=8, workdir=tmp_path / "a",
        verbose=False,
    )  # fmt: skip
    training.fit(
        _state(), _step, data, key=key, epochs=2, batch_size=8, workdir=tmp_path / "b",
        verbose=False,
    )  # fmt: skip
    resumed, history = training.fit(
        _state(), _step, data, key=key, epochs=4, batch_size=8, workdir=tmp_path / "b",
        verbose=False,
    )  # fmt: skip
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert int(resumed.step) == int(full.step) == 32
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(
        jax.tree.leaves(full.opt_state), jax.tree.leaves(resumed.opt_state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nan_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path, key):
    data = _problem()
    with pytest.raises(training.TrainingDiverged, match=r"epoch \d+, step \d+"):
        training.fit(
            _state(lr=0.01), _explode_step, data, key=key, epochs=50, batch_size=8,
            workdir=tmp_path, verbose=False,
        )  # fmt: skip
    last = checkpoint.latest_step(tmp_path / "checkpoints")
    assert last is not None and last >= 1
    restored, epoch = training.restore_latest(tmp_path, _state())
    assert epoch == last
    assert float(restored.params["b"][0]) <= 0.05  # the good state, before the blow-up
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == last


def test_epochs_after_the_first_compile_nothing(key, compile_counter):
    data = _problem()
    training.fit(_state(), _step, data, key=key, epochs=1, batch_size=8, verbose=False)
    with compile_counter:
        state, _ = training.fit(_state(), _step, data, key=key, epochs=3, batch_size=8)
    assert compile_counter.count == 1  # a new optimiser compiles the epoch, once
    with compile_counter:
        training.fit(state, _step, data, key=key, epochs=2, batch_size=8, verbose=False)
    assert compile_counter.count == 0  # the same state (same optimiser) reuses it


def test_chunked_epochs_equal_whole_epochs(key):
    data = _problem(80)  # 10 steps per epoch → chunks of 4, 4, 2
    assert training._chunks(10, 4) == [(0, 4), (4, 4), (8, 2)]
    whole, h1 = training.fit(
        _state(), _step, data, key=key, epochs=2, batch_size=8, chunk_steps=None, verbose=False
    )
    chunked, h2 = training.fit(
        _state(), _step, data, key=key, epochs=2, batch_size=8, chunk_steps=4, verbose=False
    )
    np.testing.assert_allclose(whole.params["w"], chunked.params["w"], rtol=1e-6)
    np.testing.assert_allclose(h1[-1]["loss"], h2[-1]["loss"], rtol=1e-6)


def test_epoch_loss_is_mean_of_step_losses(key):
    """The logged epoch loss is the mean of the per-step losses, like the seeds' prints."""
    x, y = _problem(16)
    state = _state()
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.split(key)[0], 1), 16))
    step_key = jax.random.split(key)[1]
    losses, s = [], _state()
    for i in range(2):
        idx = perm[i * 8 : (i + 1) * 8]
        s, m = _step(s, (x[idx], y[idx]), step_key)
        losses.append(float(m["loss"]))
    _, history = training.fit(state, _step, (x, y), key=key, epochs=1, batch_size=8, verbose=False)
    np.testing.assert_allclose(history[0]["loss"], np.mean(losses), rtol=1e-6)


def test_batched_apply_pads_and_trims():
    fn = jax.jit(lambda b: b * 2.0)
    x = np.arange(25, dtype=np.float32).reshape(25, 1)
    np.testing.assert_array_equal(training.batched_apply(fn, x, batch_size=10), x * 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 1000}, "larger than the dataset"),
    ],
)
def test_bad_arguments(kwargs, match, key):
    args = {"epochs": 1, "batch_size": 8} | kwargs
    with pytest.raises(ValueError, match=match):
        training.fit(_state(), _step, _problem(), key=key, verbose=False, **args)


def test_check_images():
    with pytest.raises(ValueError, match="NHWC"):
        training.check_images("images", np.zeros((3, 28, 28)))
    with pytest.raises(ValueError, match="NaN"):
        training.check_images("images", np.full((2, 28, 28, 1), np.nan))
    with pytest.raises(ValueError, match=r"\(28, 28, 1\)"):
        training.check_images("images", np.zeros((2, 32, 32, 1)), (28, 28, 1))


@pytest.mark.parametrize(
    "batch, limit, size", [(100, 20, 20), (64, 20, 16), (30, 20, 15), (8, 20, 8), (97, 20, 97),
                           (22, 20, 11), (46, 20, 46), (128, 20, 16), (100, 1, 1)],
)  # fmt: skip
def test_micro_batch_size_is_a_near_divisor_or_the_whole_batch(batch, limit, size):
    assert training.micro_batch_size(batch, limit) == size


def test_map_over_micro_batches_keeps_every_row_in_place():
    """A row-wise function over 5 micro-batches of 4 rows gives the whole batch's rows, in
    order, for a pytree output whose leaves have different trailing shapes (NumPy reference)."""
    x = np.arange(20 * 3, dtype=np.float32).reshape(20, 3) / 7.0
    w = np.linspace(-1.0, 2.0, 20, dtype=np.float32)

    def fn(x, w):
        return {"s": jnp.sum(x**2, axis=1) * w, "outer": x[:, :, None] * x[:, None, :]}

    out = jax.jit(lambda x, w: training.map_over_micro_batches(fn, 4, x, w))(x, w)
    np.testing.assert_allclose(out["s"], (x**2).sum(1) * w, rtol=1e-6)
    np.testing.assert_allclose(out["outer"], x[:, :, None] * x[:, None, :], rtol=1e-6)
    whole = training.map_over_micro_batches(fn, 20, x, w)  # one part: fn itself
    np.testing.assert_allclose(whole["s"], out["s"], rtol=1e-6)
    with pytest.raises(ValueError, match="must divide"):
        training.map_over_micro_batches(fn, 6, x, w)


def test_mean_over_micro_batches_equals_the_whole_batch_mean():
    """Batch means (of a value and of a pytree) over 5 micro-batches of 4 rows equal the
    whole batch's, as computed in NumPy."""
    x = np.arange(20 * 3, dtype=np.float32).reshape(20, 3) / 7.0
    w = np.linspace(-1.0, 2.0, 20, dtype=np.float32)

    def fn(x, w):
        return jnp.mean(jnp.sum(x**2, axis=1) * w), {"m": jnp.mean(x, axis=0)}

    value, aux = jax.jit(lambda x, w: training.mean_over_micro_batches(fn, 4, x, w))(x, w)
    np.testing.assert_allclose(value, np.mean((x**2).sum(1) * w), rtol=1e-6)
    np.testing.assert_allclose(aux["m"], x.mean(0), rtol=1e-6)
    with pytest.raises(ValueError, match="must divide"):
        training.mean_over_micro_batches(fn, 6, x, w)
