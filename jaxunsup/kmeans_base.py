"""What `KMeans` and `MiniBatchKMeans` share as scikit-learn estimators: X checked with
scikit-learn's bookkeeping (`n_features_in_`, feature names, its wording), and `predict`,
`score` and `transform` on the fitted centres (dense or sparse X, jit-compiled)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from jaxunsup import kmeans_sparse as sparse
from jaxunsup.kmeans_checks import _as_data, _check_weight
from jaxunsup.kmeans_core import _assign, _distances, _tiling


class KMeansEstimator(ClusterMixin, TransformerMixin, BaseEstimator):
    """The shared half of the k-means estimators (subclasses set `n_clusters`, `chunk_size`
    and the fit)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR (any scipy format is converted), as scikit-learn's
        return tags

    def _validate(self, X, reset: bool, device_check: bool = True):
        """X as the jitted core takes it (a float array or sparse rows); `reset` records
        `n_features_in_` (and feature names), otherwise X is checked against them."""
        x = _as_data(X, device_check=device_check)
        plain = isinstance(X, np.ndarray | jax.Array)  # no feature names to record or check
        if not plain or (not reset and hasattr(self, "feature_names_in_")):
            validate_data(self, X, skip_check_array=True, reset=reset)  # scikit-learn's wording
        elif reset:  # validate_data's bookkeeping without its ~60 µs
            self.n_features_in_ = x.shape[1]
            self.__dict__.pop("feature_names_in_", None)
        elif x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {x.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return x

    def _assign(self, X, sample_weight=None):
        check_is_fitted(self)
        x = self._validate(X, reset=False)
        n, d = x.shape
        chunk, streams = _tiling(n, self.n_clusters, d, self.chunk_size)
        centers = jnp.asarray(self.cluster_centers_, x.dtype)
        w = None if sample_weight is None else _check_weight(sample_weight, n, x.dtype)
        return _assign(x, centers, w, chunk=chunk, streams=streams)

    def predict(self, X):
        """Index of the nearest centre for each row of X (dense or sparse): int32 [N]."""
        return np.asarray(self._assign(X)[0])

    def score(self, X, y=None, sample_weight=None):
        """Minus the (weighted) inertia of X under the fitted centres (higher is better)."""
        return -float(self._assign(X, sample_weight)[1])

    def transform(self, X):
        """Euclidean distances to every centre, [N, K]."""
        check_is_fitted(self)
        x = self._validate(X, reset=False)
        chunk = _tiling(x.shape[0], self.n_clusters, x.shape[1], self.chunk_size)[0]
        centers = jnp.asarray(self.cluster_centers_, x.dtype)
        chunk = chunk if isinstance(x, sparse.Ell) else None
        return np.asarray(_distances(x, centers, chunk=chunk))
