"""Post 000 §7's Deep K-Means in PyTorch, restated as the post wrote it (parity reference).

`Kmeans` (per-sample Python argmin loop), `Encoder` and `Decoder` are the post's classes (with
§4's `Flatten` and `Deflatten` from `torch_autoencoders`); `Kmeans` takes its initial centroids
as an argument (the post draws `torch.rand`) so that both implementations can start from the
same values, and `device` is CPU. `VectorizedKmeans` is the same module with one batched argmin
(the benchmark's faster torch baseline). `train_steps` is the body of the post's training loop.
"""

from __future__ import annotations

import torch
from torch import nn

from parity.torch_autoencoders import Deflatten, Flatten  # post 000 §4's, shared by §7


class Kmeans(nn.Module):
    """The post's `Kmeans`; `centroids` [K, D] replaces its `torch.rand((K, D))` when given."""

    def __init__(self, num_clusters, latent_size, centroids=None):
        super().__init__()
        self.num_clusters = num_clusters
        init = torch.rand((num_clusters, latent_size)) if centroids is None else centroids
        self.centroids = nn.Parameter(torch.as_tensor(init, dtype=torch.float32).clone())

    def argminl2distance(self, a, b):
        return torch.argmin(torch.sum((a - b) ** 2, dim=1), dim=0)

    def forward(self, x):
        y_assign = []
        for m in range(x.size(0)):
            h = x[m].expand(self.num_clusters, -1)
            assign = self.argminl2distance(h, self.centroids)
            y_assign.append(assign.item())
        return y_assign, self.centroids[y_assign]


class VectorizedKmeans(Kmeans):
    """`Kmeans` with the per-sample loop replaced by one batched argmin (same assignments)."""

    def forward(self, x):
        d2 = torch.sum((x[:, None, :] - self.centroids[None, :, :]) ** 2, dim=2)  # [B, K]
        y_assign = torch.argmin(d2, dim=1)
        return y_assign, self.centroids[y_assign]


class Encoder(nn.Module):
    def __init__(self, latent_size):
        super().__init__()
        k = 16
        self.encoder = nn.Sequential(
            nn.Conv2d(1, k, 3, stride=2), nn.ReLU(),
            nn.Conv2d(k, 2 * k, 3, stride=2), nn.ReLU(),
            nn.Conv2d(2 * k, 4 * k, 3, stride=1), nn.ReLU(),
            Flatten(),
            nn.Linear(1024, latent_size), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x):
        return self.encoder(x)


class Decoder(nn.Module):
    def __init__(self, latent_size):
        super().__init__()
        k = 16
        self.decoder = nn.Sequential(
            nn.Linear(latent_size, 1024), nn.ReLU(),
            Deflatten(4 * k),
            nn.ConvTranspose2d(4 * k, 2 * k, 3, stride=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * k, k, 3, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(k, 1, 3, stride=2, output_padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x):
        return self.decoder(x)


def loss(encoder, decoder, kmeans, inputs, alpha):
    """The post's loss for one batch (NCHW): MSE(recon) + α·MSE(latent, assigned centroid)."""
    latent_var = encoder(inputs)
    _, centroids = kmeans(latent_var.detach())
    outputs = decoder(latent_var)
    l_rec = nn.MSELoss()(inputs, outputs)
    l_clt = nn.MSELoss()(latent_var, centroids)
    return l_rec + alpha * l_clt


def train_steps(encoder, decoder, kmeans, batches, alphas, lr: float = 1e-3) -> list[float]:
    """The post's training loop body over `batches` (NCHW tensors), one α per batch."""
    params = list(encoder.parameters()) + list(decoder.parameters()) + list(kmeans.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for inputs, alpha in zip(batches, alphas, strict=True):
        optimizer.zero_grad()
        value = loss(encoder, decoder, kmeans, inputs, alpha)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    return losses
