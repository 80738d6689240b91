"""k-means' input checks: data, weights, init arrays, seeds, each refused with a message
naming the argument and the fix."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from sklearn.utils.validation import _check_sample_weight

from jaxunsup import kmeans_sparse as sparse
from jaxunsup.kmeans_init import INITS


def _float_dtype():
    return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)


@jax.jit
def _all_finite(x):
    return jnp.all(jnp.isfinite(x))


def _as_data(x, name: str = "X", n_features: int | None = None, device_check: bool = True):
    """A finite 2-D float32 array (float64 under jax_enable_x64), sparse rows, or an error
    in scikit-learn's wording (its estimator checks match on it).

    NumPy input stays NumPy (the jitted core takes it as it is); a jax.Array stays on its
    device; a scipy sparse matrix or array becomes `kmeans_sparse.Ell` rows; inside a
    caller's jit only shapes are checked. `device_check=False` leaves a jax.Array's
    finiteness to the caller (`kmeans` reads it from its own compiled call).
    """
    dtype = _float_dtype()
    if isinstance(x, jax.Array) and x.dtype == dtype:
        arr = x  # the common case: no dtype checks (each jnp.issubdtype costs ~2 µs)
    elif isinstance(x, jax.Array):
        if not jnp.issubdtype(x.dtype, jnp.bool_) and not jnp.issubdtype(x.dtype, jnp.number):
            raise ValueError(f"{name} must be numeric, got dtype {x.dtype}.")
        _check_real(name, x.dtype)
        arr = x if x.dtype == dtype else x.astype(dtype)
    elif scipy.sparse.issparse(x):
        return _as_sparse(x, name, n_features, dtype)
    else:
        arr = _as_numpy(x, name, dtype)
    _check_shape(name, arr.shape, n_features)
    if isinstance(arr, jax.core.Tracer) or (isinstance(arr, jax.Array) and not device_check):
        return arr
    finite = np.isfinite(arr).all() if isinstance(arr, np.ndarray) else _all_finite(arr)
    if not finite:
        raise ValueError(f"{name} contains NaN or infinity; drop or impute those values first.")
    return arr


def _check_real(name, dtype) -> None:
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(
            f"{name} has dtype {dtype}: Complex data not supported; pass {name}.real or "
            f"abs({name})."
        )


def _as_numpy(x, name, dtype) -> np.ndarray:
    arr = np.asarray(x)
    _check_real(name, arr.dtype)
    if arr.dtype.kind not in "biuf" and arr.dtype != object:
        raise ValueError(f"{name} must be numeric (real), got dtype {arr.dtype}.")
    try:
        return arr.astype(dtype, copy=False)
    except (TypeError, ValueError) as err:  # the type numpy gave (scikit-learn's convention)
        raise type(err)(f"{name} must be numeric: {err}.") from None


def _check_shape(name, shape, n_features) -> None:
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be 2-D [n_samples, n_features], got shape {shape}. Reshape your data: "
            f"{name}.reshape(-1, 1) for one feature or {name}.reshape(1, -1) for one sample."
        )
    for size, what in ((shape[0], "sample"), (shape[1], "feature")):
        if size == 0:
            raise ValueError(
                f"{name} has 0 {what}(s) (shape={shape}) while a minimum of 1 is required."
            )
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"{name} has {shape[1]} features, but the model is expecting {n_features} features "
            f"as input."
        )


def _as_sparse(x, name, n_features, dtype):
    """CSR rows as `kmeans_sparse.Ell` (NumPy arrays), checked as dense input is."""
    _check_real(name, x.dtype)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric (real), got dtype {x.dtype}.")
    _check_shape(name, x.shape, n_features)
    x = x.tocsr()  # scikit-learn's KMeans converts any sparse format to CSR too
    if not np.isfinite(x.data).all():
        raise ValueError(f"{name} contains NaN or infinity; drop or impute those values first.")
    return sparse.from_csr(x, dtype)


def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    return int(value)


@functools.lru_cache(maxsize=4)
def _unit_weights(n: int, dtype) -> jax.Array:
    """[n] ones kept on the device, so repeated fits do not copy them over each time.
    Made eagerly even under a caller's jit (a cached tracer would leak into later calls)."""
    with jax.ensure_compile_time_eval():
        return jnp.ones(n, dtype)


@functools.lru_cache(maxsize=16)
def _scalar(value, dtype) -> jax.Array:
    """A scalar kept on the device (made eagerly, as `_unit_weights`): repeated fits with the
    same tol and max_iter copy nothing over (each host scalar is a transfer, about a
    quarter of a 500-point fit's time)."""
    with jax.ensure_compile_time_eval():
        return jnp.asarray(value, dtype)


def _check_weight(sample_weight, n: int, dtype):
    """[n] weights: scikit-learn's `_check_sample_weight` (its wording, prefixed with the
    argument's name); a traced array is only shape-checked."""
    if sample_weight is None:
        return _unit_weights(n, np.dtype(dtype))
    if isinstance(sample_weight, jax.core.Tracer):
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}.")
        return sample_weight.astype(dtype)
    try:
        w = _check_sample_weight(
            np.asarray(sample_weight), _n_rows(n), dtype=np.float64, ensure_non_negative=True
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"sample_weight: {err}".rstrip(".") + ".") from None
    return w.astype(dtype)


def _n_rows(n):  # a stand-in X of n rows for `_check_sample_weight` (it reads only len(X))
    return np.broadcast_to(np.float64(0.0), (n, 1))


def _check_init(init, n_clusters: int, n_features: int):
    """(name, array or None): a name from INITS, or "array" with a [K, D] finite array."""
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS} or a [K, D] array, got {init!r}.")
        return init, None
    traced = isinstance(init, jax.core.Tracer)
    device = isinstance(init, jax.Array) and not traced  # finiteness: checked by `kmeans`
    if (device and init.dtype != _float_dtype()) and not (
        jnp.issubdtype(init.dtype, jnp.floating) or jnp.issubdtype(init.dtype, jnp.integer)
    ):
        raise ValueError(
            f"init array must hold real numbers (a float or int array), got dtype {init.dtype}."
        )
    arr = init if traced or device else np.asarray(init, dtype=np.float64)
    if arr.shape != (n_clusters, n_features) or not (traced or device or np.isfinite(arr).all()):
        raise ValueError(
            f"init array must be finite with shape (n_clusters, n_features) = "
            f"({n_clusters}, {n_features}), got shape {arr.shape}."
        )
    return "array", arr


def _on_device(a) -> bool:
    return isinstance(a, jax.Array) and not isinstance(a, jax.core.Tracer)


def _check_finite(x, init_array, finite) -> None:
    """ValueError for a non-finite device x or init array, from `finite` = (x's flag, the
    init's flag), read with at most one transfer; NumPy inputs were checked on the host
    and traced ones cannot be."""
    if not (_on_device(x) or _on_device(init_array)):
        return
    finite_x, finite_init = np.asarray(
        finite if isinstance(finite, jax.Array) else jnp.stack(finite)
    )
    if _on_device(x) and not finite_x:
        raise ValueError("X contains NaN or infinity; drop or impute those values first.")
    if _on_device(init_array) and not finite_init:
        raise ValueError("init array must be finite; it contains NaN or infinity.")


def _as_key(random_state):
    """A PRNG key, or an int32 seed that the jitted core turns into one (no extra dispatch)."""
    if random_state is None:
        return np.int32(np.random.randint(2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return np.int32(random_state.randint(2**31 - 1))
    if isinstance(random_state, int | np.integer) and not isinstance(random_state, bool):
        if 0 <= random_state < 2**31:
            return np.int32(random_state)
    if isinstance(random_state, jax.Array) and jnp.issubdtype(
        random_state.dtype, jax.dtypes.prng_key
    ):
        return random_state
    if isinstance(random_state, jax.Array) and random_state.shape == (2,):
        return jax.random.wrap_key_data(random_state)  # a legacy uint32 PRNGKey
    raise ValueError(
        f"random_state must be None, an int in [0, 2**31), a RandomState or a key, "
        f"got {random_state!r}."
    )
