"""Parity of post 000 §1's k-means: `jaxunsup.kmeans.KMeans(seed_compat=True)` against the
post's PyTorch loop (`parity/torch_kmeans.py`), from the same initial centroids."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from jaxunsup import data
from jaxunsup.kmeans import KMeans
from parity.device import numpy, torch_device
from parity.helpers import row
from parity.torch_kmeans import initial_centroids, kmeans


def check_kmeans(seeds=(0, 1, 2), max_iteration: int = 5) -> list[dict]:
    """Same circles, same centroids: labels and centroids after `max_iteration` sweeps.

    One case per seed (the post's U[0,1) centroids) plus one whose second centroid is far
    away, so its cluster empties and both sides go NaN the post's way.
    """
    x, _ = data.make_circles(500, noise=0.1, seed=0)
    cases = {f"torch.rand seed {s}": initial_centroids(2, 2, s) for s in seeds}
    cases["empty cluster → NaN"] = torch.tensor([[0.5, 0.5], [5.0, 5.0]])
    rows = []
    for what, c0 in cases.items():
        y_ref, c_ref = kmeans(torch.from_numpy(x), c0, 2, max_iteration, device=torch_device())
        ours = KMeans(2, init=c0.numpy(), max_iter=max_iteration, seed_compat=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the NaN case leaves one distinct cluster
            ours.fit(x)
        rows.append(row("kmeans", "L3", f"{what}: labels", ours.labels_, y_ref, atol=0))
        c_ours, c_ref = ours.cluster_centers_, numpy(c_ref)
        same_nan = np.array_equal(np.isnan(c_ours), np.isnan(c_ref))
        fin = ~np.isnan(c_ref)
        r = row("kmeans", "L3", f"{what}: centroids", c_ours[fin], c_ref[fin], atol=1e-6)
        rows.append(dict(r, ok=r["ok"] and same_nan))
    return rows
