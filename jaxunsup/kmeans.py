"""k-means (post 000 §1) with scikit-learn's semantics — experiment `kmeans-circles`.

Seed: post 000 §1 ("K-평균 알고리즘"): `make_circles(500, noise=0.1)`, two
clusters, centroids drawn from U[0,1), `max_iteration=5` sweeps of a per-point Python loop,
the last sweep assigning without updating, and `torch.mean` of an empty cluster giving NaN.

Here Lloyd's algorithm is one jit-compiled `lax.while_loop`. Each sweep walks over X in
chunks of rows, so the [N, K] distance matrix never exists at once: per chunk, one matrix
product gives ||c||² − 2c·x ([K, C]; ||x||² cannot change the argmin), a few elementwise
passes give the argmin (XLA:CPU's own argmin reduce is slow), and a segment sum adds the
chunk's weighted rows to its clusters (a masked sum when K·D is tiny). XLA:CPU runs a compiled
loop on one core, so on a CPU a large eager fit runs Lloyd's loop from the host instead, two
threads each sweeping half of X with the compiled sweep (benchmarks/README.md).

Semantics follow `sklearn.cluster.KMeans(algorithm="lloyd")`: X is centred first (float32
precision), tol is relative to the mean feature variance, a sweep stops on unchanged labels
or a squared centre shift <= tol, empty clusters move to the points farthest from their
centres, `k-means++` is greedy with 2 + floor(ln k) trials, `n_init` restarts run together
under `vmap` and the lowest inertia wins, and a sample weight of k equals k copies. X may be
a scipy sparse matrix (CSR rows, `kmeans_sparse`; not centred, as in scikit-learn). `KMeans`
passes scikit-learn's `check_estimator`; `minibatch_kmeans.MiniBatchKMeans` is the streaming
variant.

Deviations: labels are always recomputed against the final centres (scikit-learn skips that
after a sweep with unchanged labels — the same labels unless there are exact ties); with
several empty clusters the far points are dealt out farthest-first (scikit-learn's order is
argpartition's); random numbers come from JAX keys, so inits differ from scikit-learn's.

`seed_compat=True` replays the post: U[0,1) centroids (or the `init` array), exactly
`max_iter` assignments, the last one without an update, direct (x − c)² distances, and NaN
centroids for empty clusters, which then win every argmin as they do in torch. `empty="nan"`
gives that last behaviour without the rest.

Run: `jaxunsup run kmeans-circles --workdir runs/kmeans-circles`.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from sklearn.exceptions import ConvergenceWarning

from jaxunsup import backend, distributed, kmeans_sharded
from jaxunsup import kmeans_sparse as sparse
from jaxunsup.kmeans_base import KMeansEstimator
from jaxunsup.kmeans_checks import (
    _all_finite,
    _as_data,
    _as_key,
    _check_finite,
    _check_init,
    _check_int,
    _check_weight,
    _on_device,
    _scalar,
)
from jaxunsup.kmeans_core import (  # noqa: F401 (re-exported: the module's public core)
    _SMALL,
    EMPTY_POLICIES,
    KMeansResult,
    _assign,
    _distances,
    _fit,
    _Plan,
    _plan,
    _tiling,
    default_chunk_size,
)
from jaxunsup.kmeans_init import INITS, Init, init_centers, kmeans_plusplus  # noqa: F401
from jaxunsup.kmeans_threads import _lloyd_threads


@dataclasses.dataclass(frozen=True)
class CirclesConfig:
    """Post 000 §1 on `make_circles`; defaults are the post's settings."""

    n_samples: int = 500
    noise: float = 0.1
    n_clusters: int = 2
    max_iter: int = 5  # the post's max_iteration, used by the seed_compat replay
    seed: int = 0
    init: Init = "k-means++"  # the default (non-replay) fit
    n_init: int = 1
    fit_max_iter: int = 300
    tol: float = 1e-4


@functools.partial(jax.jit, static_argnames="plan")
def _kmeans(key, x, w, init_array, tol, max_iter, plan: _Plan):
    """(KMeansResult, [whether x is all finite, whether the init array is]): the caller
    checks device arrays' finiteness from this call's output (one transfer) rather than by
    more dispatches."""
    finite_init = True if init_array is None else jnp.all(jnp.isfinite(init_array))
    res = _fit(key, x, w, init_array, tol, max_iter, plan)
    values = x.val if isinstance(x, sparse.Ell) else x
    return res, jnp.stack([jnp.all(jnp.isfinite(values)), jnp.asarray(finite_init)])


# Lloyd on the host, one thread per part of X: see kmeans_threads.
_THREAD_MIN_WORK = 2**24  # N·K·D multiply-adds per sweep from which threads pay off


def kmeans(key, x, n_clusters: int, *, init="k-means++", n_init: int = 1, max_iter: int = 300,
           tol: float = 1e-4, sample_weight=None, empty: str = "relocate",
           seed_compat: bool = False, chunk_size: int | None = None,
           streams: int | None = None, mesh=None) -> KMeansResult:  # fmt: skip
    """k-means, jit-compiled: the functional core of `KMeans` (same arguments and semantics).

    Args:
        key: PRNG key for the init (unused with an init array), or an int seed.
        x: [N, D] data: an array, or a scipy sparse matrix (turned into CSR rows).
        n_clusters: K, 1 <= K <= N.
        init: "k-means++", "random", "uniform" (U[0,1), the post's) or a [K, D] array.
        n_init: restarts, run together with vmap; the lowest inertia wins.
        max_iter: most Lloyd sweeps (seed_compat: exactly this many assignments).
        tol: relative tolerance: stop when the squared centre shift <= tol · mean var(x).
        sample_weight: [N] non-negative weights.
        empty: "relocate" (scikit-learn), "keep" (the old centre) or "nan" (the post).
        seed_compat: replay post 000 §1 (see the module docstring).
        chunk_size: rows per chunk; default `default_chunk_size`.
        streams: parts of X swept in parallel (one per core); default 2 on CPU, else 1. On
            CPU an eager call with N·K·D >= 2**24 sweeps each part in its own thread (XLA:CPU
            runs a compiled loop on one core); smaller or traced calls run one compiled loop.
        mesh: fit over a device mesh (`distributed.make_mesh`; `kmeans_sharded`): rows split
            over its "data" axis, Lloyd's sweep under `shard_map`. A row-sharded jax.Array x
            brings its own mesh. init="k-means||" (the scalable k-means++) runs this way too,
            on one device when there is no mesh.

    Returns:
        KMeansResult(centers [K, D], labels [N], inertia [], n_iter []).
    """
    # fmt: off
    mesh = kmeans_sharded.mesh_of(x, mesh)
    if mesh is not None or (isinstance(init, str) and init == "k-means||"):
        return _fit_sharded(key, x, n_clusters, mesh, init=init, n_init=n_init,
                            max_iter=max_iter, tol=tol, sample_weight=sample_weight,
                            empty=empty, seed_compat=seed_compat)
    return _fit_data(_as_key(key), _as_data(x, device_check=False), n_clusters, init=init,
                     n_init=n_init, max_iter=max_iter, tol=tol, sample_weight=sample_weight,
                     empty=empty, seed_compat=seed_compat, chunk_size=chunk_size,
                     streams=streams)
    # fmt: on


def _fit_data(key, x, n_clusters, *, init, n_init, max_iter, tol, sample_weight, empty,
              seed_compat, chunk_size, streams) -> KMeansResult:  # fmt: skip
    """`kmeans` on a key and an x already through `_as_data`."""
    n, d = x.shape
    k = _check_int("n_clusters", n_clusters)
    if k > n:
        raise ValueError(f"n_clusters={k} must be <= n_samples={n}; lower n_clusters.")
    name, arr = _check_init(init, k, d)
    n_init, max_iter = _check_int("n_init", n_init), _check_int("max_iter", max_iter)
    if not (isinstance(tol, numbers.Real) and np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}.")
    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty must be one of {EMPTY_POLICIES}, got {empty!r}.")
    w = _check_weight(sample_weight, n, x.dtype)
    if name == "random" and isinstance(w, np.ndarray) and int((w > 0).sum()) < k:
        raise ValueError(f"init='random' needs >= n_clusters={k} samples with positive weight.")
    exact = bool(seed_compat)
    if exact and isinstance(x, sparse.Ell):
        raise ValueError("seed_compat=True replays the post on dense X; pass X.toarray().")
    if chunk_size is not None:
        _check_int("chunk_size", chunk_size)
    if streams is not None:
        _check_int("streams", streams)
    plan = _plan(k, name, n_init, empty, exact, n, d, chunk_size, streams)
    init_array = arr if arr is None or arr.dtype == x.dtype else arr.astype(x.dtype)
    tol, max_iter = _scalar(float(tol), np.dtype(x.dtype)), _scalar(max_iter, np.dtype(np.int32))
    if _threaded(plan, n * k * d, key, x, w, init_array):
        finite = [_all_finite(a) if _on_device(a) else True for a in (x, init_array)]
        _check_finite(x, init_array, finite)
        return _lloyd_threads(key, x, w, init_array, tol, max_iter, plan)
    res, finite = _kmeans(key, x, w, init_array, tol, max_iter, plan=plan)
    _check_finite(x, init_array, finite)
    return res


def _fit_sharded(key, x, n_clusters, mesh, *, init, n_init, max_iter, tol, sample_weight,
                 empty, seed_compat) -> KMeansResult:  # fmt: skip
    """`kmeans` over `mesh` (one device for k-means|| without one): dense X, the same checks;
    `n_init` restarts run one after another, the lowest inertia wins."""
    if seed_compat or scipy.sparse.issparse(x) or isinstance(x, sparse.Ell):
        raise ValueError("a mesh (or init='k-means||') fits dense X without seed_compat; "
                         "pass X.toarray() or drop the mesh")  # fmt: skip
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"X must be a float [N, D] array, got shape {x.shape}, dtype {x.dtype}.")
    n, d = x.shape
    k = _check_int("n_clusters", n_clusters)
    if k > n:
        raise ValueError(f"n_clusters={k} must be <= n_samples={n}; lower n_clusters.")
    parallel = isinstance(init, str) and init == "k-means||"
    name, arr = ("k-means||", None) if parallel else _check_init(init, k, d)
    if name == "uniform":
        raise ValueError("init='uniform' is the post's replay; use k-means++ on a mesh.")
    w = np.asarray(_check_weight(sample_weight, n, np.dtype(x.dtype)))
    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty must be one of {EMPTY_POLICIES}, got {empty!r}.")
    if not distributed.to_host(jnp.all(jnp.isfinite(x))):  # on the devices: no copy of X
        raise ValueError("X contains NaN or infinity; drop or impute those values first.")
    mesh = mesh if mesh is not None else distributed.one_device_mesh()
    keys = jax.random.split(_key(key), _check_int("n_init", n_init))
    runs = [
        kmeans_sharded.fit(
            k_i,
            x,
            k,
            mesh=mesh,
            init=name if arr is None else arr,
            max_iter=_check_int("max_iter", max_iter),
            tol=float(tol),
            sample_weight=w,
            empty=empty,
        )  # fmt: skip
        for k_i in keys
    ]
    return min(runs, key=lambda r: float(r.inertia))


def _key(key):
    key = _as_key(key)
    return key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.key(key)


def _threaded(plan: _Plan, work: int, *arrays) -> bool:
    """Whether `kmeans` runs `_lloyd_threads`: several streams, the CPU backend, enough work
    per sweep, and concrete inputs (under a caller's jit the compiled loop runs)."""
    return (
        plan.streams > 1
        and not plan.seed_compat
        and not any(isinstance(a, sparse.Ell) for a in arrays)  # measured no faster: compiled
        and work >= _THREAD_MIN_WORK
        and backend.on_cpu()
        and not any(isinstance(a, jax.core.Tracer) for a in arrays)
    )


# ----------------------------------------------------------------------------- facade


class KMeans(KMeansEstimator):
    """scikit-learn's `KMeans` API on the jit-compiled core; see `kmeans` for the arguments.

    `n_init="auto"` means 1 for "k-means++" and arrays, 10 for "random" and "uniform".
    With `seed_compat=True`, string inits become "uniform", `empty`/`tol` are ignored and
    `n_init` is 1.
    """

    def __init__(
        self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300, tol=1e-4,
        random_state=None, empty="relocate", seed_compat=False, chunk_size=None, mesh=None,
    ):  # fmt: skip
        self.n_clusters, self.init, self.n_init, self.max_iter = n_clusters, init, n_init, max_iter
        self.tol, self.random_state, self.empty = tol, random_state, empty
        self.seed_compat, self.chunk_size, self.mesh = seed_compat, chunk_size, mesh

    def fit(self, X, y=None, sample_weight=None):
        """Fits the centres to X ([N, D]); returns self."""
        init = self.init
        if self.seed_compat and isinstance(init, str):
            init = "uniform"
        n_init = self.n_init
        if isinstance(n_init, str) and n_init == "auto":
            n_init = 10 if isinstance(init, str) and init != "k-means++" else 1
        if not isinstance(init, str) and n_init != 1 and not self.seed_compat:
            warnings.warn(f"explicit init array: running n_init=1, not {n_init}.", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
        if self.seed_compat or not isinstance(init, str):
            n_init = 1
        empty = "nan" if self.seed_compat else self.empty
        mesh = kmeans_sharded.mesh_of(X, self.mesh)
        x = self._validate(X, reset=True, device_check=False)
        # fmt: off
        if mesh is not None or (isinstance(init, str) and init == "k-means||"):
            res = _fit_sharded(self.random_state, X if mesh is not None else x,
                               self.n_clusters, mesh, init=init, n_init=n_init,
                               max_iter=self.max_iter, tol=self.tol,
                               sample_weight=sample_weight, empty=empty,
                               seed_compat=self.seed_compat)
        else:
            res = _fit_data(_as_key(self.random_state), x, self.n_clusters, init=init,
                            n_init=n_init, max_iter=self.max_iter, tol=self.tol,
                            sample_weight=sample_weight, empty=empty,
                            seed_compat=self.seed_compat, chunk_size=self.chunk_size,
                            streams=None)
        # fmt: on
        centers, labels, inertia, n_iter = distributed.to_host(tuple(res))  # copies overlap
        self.cluster_centers_, self.labels_ = np.asarray(centers), np.asarray(labels)
        self.inertia_, self.n_iter_ = float(inertia), int(n_iter)
        distinct = np.count_nonzero(np.bincount(self.labels_, minlength=self.n_clusters))
        if distinct < self.n_clusters:
            msg = (f"only {distinct} distinct clusters found, fewer than n_clusters="
                   f"{self.n_clusters}: X has fewer distinct points than clusters, or the "
                   f"empty-cluster policy ({empty!r}) left clusters empty.")  # fmt: skip
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        return self


# ----------------------------------------------------------------------------- experiment


def check_config(cfg: CirclesConfig) -> None:
    """Raises ValueError naming the field of a bad `cfg`."""
    for name in ("n_samples", "n_clusters", "max_iter", "n_init", "fit_max_iter"):
        _check_int(name, getattr(cfg, name))
    _check_int("seed", cfg.seed, low=0)
    if cfg.n_clusters > cfg.n_samples:
        raise ValueError(f"n_clusters={cfg.n_clusters} must be <= n_samples={cfg.n_samples}.")
    if not cfg.noise >= 0 or not cfg.tol >= 0:
        raise ValueError(f"noise and tol must be >= 0, got {cfg.noise} and {cfg.tol}.")
    if cfg.init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {cfg.init!r}.")


def run_circles(cfg: CirclesConfig, workdir: str | os.PathLike, data=None) -> dict:
    """Clusters make_circles with our KMeans and with the post's replay; writes the results.

    Writes config.json, results.json, kmeans_circles.png and kmeans_circles_seed_compat.png.
    `data` = (X [N, 2], y [N]) replaces the generated circles.
    """
    from jaxunsup import data as data_lib
    from jaxunsup import metrics, plots
    from jaxunsup.files import prepare_workdir, write_json

    check_config(cfg)
    x, y = data if data is not None else data_lib.make_circles(cfg.n_samples, cfg.noise, cfg.seed)
    workdir = prepare_workdir(workdir, cfg)
    fits = {
        "kmeans": KMeans(cfg.n_clusters, init=cfg.init, n_init=cfg.n_init,
                         max_iter=cfg.fit_max_iter, tol=cfg.tol, random_state=cfg.seed),
        "seed_compat": KMeans(cfg.n_clusters, max_iter=cfg.max_iter, random_state=cfg.seed,
                              seed_compat=True),
    }  # fmt: skip
    results = {"experiment": "kmeans-circles", "figures": [],
               "data": f"make_circles({len(x)}, noise={cfg.noise}, seed={cfg.seed})"}  # fmt: skip
    for name, km in fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the replay may empty a cluster
            km.fit(x)
        results[name] = {
            "inertia": km.inertia_, "ari": metrics.ari(y, km.labels_), "n_iter": km.n_iter_,
            "centers": km.cluster_centers_,
            "cluster_sizes": np.bincount(km.labels_, minlength=cfg.n_clusters),
        }  # fmt: skip
        fig = "kmeans_circles.png" if name == "kmeans" else f"kmeans_circles_{name}.png"
        title = f"{name}: inertia {km.inertia_:.1f}, ARI {results[name]['ari']:.3f}"
        plots.save_scatter(workdir / fig, x, km.labels_, km.cluster_centers_, title)
        results["figures"].append(fig)
    results["table"] = [
        {"metric": f"{n}: inertia / ARI vs circle labels", "seed": "figure only (a line split)",
         "ours": [round(results[n]["inertia"], 2), round(results[n]["ari"], 3)]}
        for n in fits
    ]  # fmt: skip
    write_json(workdir / "results.json", results)
    return results
