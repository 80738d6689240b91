"""Post 000 §1's PyTorch k-means, restated (the reference of `parity/check_kmeans.py`).

`l2distance` and `kmeans` are the post's functions line for line, with one change: the
initial centroids are an argument (the post draws `torch.rand(num_clusters, x.size(1))`
inside `kmeans`), so both sides can start from the same centroids. The post's device line is
the `device` argument: the parity check passes `parity.device.torch_device()` (the device JAX
runs on), the benchmark follows the post.
"""

from __future__ import annotations

import numpy as np
import torch


def l2distance(x, centroids):
    # Index of the centroid nearest to x (x is one point expanded to [K, D]).
    return torch.argmin(torch.sum((x - centroids) ** 2, dim=1), dim=0)


def kmeans(x, centroids, num_clusters=2, max_iteration=5, device="cpu"):
    """The post's loop. Returns (y_assign [N] NumPy ints, centroids [K, D] tensor on `device`).

    Args:
        x: [N, D] float tensor.
        centroids: [K, D] initial centroids (the post's `torch.rand(K, D)`); not modified.
        num_clusters: K.
        max_iteration: assignments; the last one does not update the centroids.
        device: where the loop runs; the post picks CUDA when there is one (the parity check
            takes JAX's device, the benchmark follows the post).
    """
    device = torch.device(device)
    x = x.to(device)
    centroids = centroids.clone().to(device)
    for update in range(max_iteration):
        y_assign = []
        for m in range(x.size(0)):
            h = x[m].expand(num_clusters, -1)
            assign = l2distance(h, centroids)
            y_assign.append(assign.item())
        y_assign = np.array(y_assign)
        if update != max_iteration - 1:
            for i in range(num_clusters):
                idx = np.where(y_assign == i)[0]
                centroids[i] = torch.mean(x[idx], dim=0)
    return y_assign, centroids


def initial_centroids(num_clusters: int, n_features: int, seed: int) -> torch.Tensor:
    """The post's init, `torch.rand(num_clusters, n_features)`, under `torch.manual_seed`."""
    torch.manual_seed(seed)
    return torch.rand(num_clusters, n_features)
