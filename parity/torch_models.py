"""The seeds' PyTorch models, restated as the posts wrote them (reference for parity)."""

from __future__ import annotations

import torch
from torch import nn


class StackedAutoencoder(nn.Module):
    """Post 000 §2.1 `Autoencoder`: 784-128-32-10 (ReLU after the code too), mirror, Sigmoid."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 10),
            nn.ReLU(),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 28 * 28),
            nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x):
        return self.decoder(self.encoder(x))


def stacked_ae_train_steps(model: nn.Module, batches, lr: float = 1e-4) -> list[float]:
    """The post's training loop body over the given batches (NCHW tensors); returns losses."""
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for inputs in batches:
        optimizer.zero_grad()
        outputs = model(inputs.view(-1, 28 * 28)).view(-1, 1, 28, 28)
        loss = criterion(inputs, outputs)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
