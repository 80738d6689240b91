"""The autoencoders of posts 000 (§3-4) and 004, in PyTorch (references for parity).

Post 000 §4's `Autoencoder` (with its `Flatten`/`Deflatten`) and training loop are restated as
the post wrote them. Post 004's Keras models are written in torch with Keras's semantics:
Glorot-uniform weights and zero biases, `Flatten` in NHWC order (Keras is channels-last), SAME
padding of an even kernel as one pixel before and two after (as TensorFlow pads), and
Conv2DTranspose(4, stride 2, SAME) as ConvTranspose2d(padding=1) (the same 28×28 output).
The denoising AE of §3 is the stacked AE of `torch_models` with noise added in the loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from parity import torch_models


class Flatten(nn.Module):
    """Post 000 §4: (B, C, H, W) → (B, C·H·W)."""

    def forward(self, x):
        # The post's `x.view`: recent CPU torch may return a channels-last conv output for a
        # 1-channel input (which `view` rejects); `reshape` gives the same NCHW-order values.
        return x.reshape(x.shape[0], -1)


class Deflatten(nn.Module):
    """Post 000 §4: (B, N) → (B, k, s, s) with s = sqrt(N // k)."""

    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        s = x.size()
        feature_size = int((s[1] // self.k) ** 0.5)
        return x.view(s[0], self.k, feature_size, feature_size)


class ConvAutoencoder(nn.Module):
    """Post 000 §4 `Autoencoder`, k = 16, as the post has it."""

    def __init__(self, k: int = 16):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, k, 3, stride=2), nn.ReLU(),
            nn.Conv2d(k, 2 * k, 3, stride=2), nn.ReLU(),
            nn.Conv2d(2 * k, 4 * k, 3, stride=1), nn.ReLU(),
            Flatten(), nn.Linear(1024, 10), nn.ReLU(),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(10, 1024), nn.ReLU(),
            Deflatten(4 * k),
            nn.ConvTranspose2d(4 * k, 2 * k, 3, stride=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * k, k, 3, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(k, 1, 3, stride=2, output_padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x):
        return self.decoder(self.encoder(x))


def _keras_init(module: nn.Module) -> None:
    """Keras's defaults: Glorot-uniform weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class KerasMLPAutoencoder(nn.Module):
    """Post 004 §1: 784 → 256 ReLU → 100 ReLU [→ 100 linear] → 256 ReLU → 784 linear."""

    def __init__(self, linear_latent: bool = False):
        super().__init__()
        self.encoder_1, self.encoder_2 = nn.Linear(784, 256), nn.Linear(256, 100)
        self.e_latent = nn.Linear(100, 100) if linear_latent else None
        self.decoder_1, self.decoder_2 = nn.Linear(100, 256), nn.Linear(256, 784)
        _keras_init(self)

    def forward(self, x):  # x: (B, 1, 28, 28)
        h = F.relu(self.encoder_2(F.relu(self.encoder_1(x.reshape(x.shape[0], -1)))))
        if self.e_latent is not None:
            h = self.e_latent(h)
        return self.decoder_2(F.relu(self.decoder_1(h))).view(-1, 1, 28, 28)


class KerasCNNAutoencoder(nn.Module):
    """Post 004 §2: Conv 5×5 SAME → MaxPool 5×5/1 → Dense(196) → ConvT 4×4/2 → Conv 4×4 SAME."""

    def __init__(self, filters: int = 10):
        super().__init__()
        self.e_conv = nn.Conv2d(1, filters, 5, padding=2)  # SAME, odd kernel
        self.e_latent = nn.Linear(24 * 24 * filters, 196)
        self.d_conv_t = nn.ConvTranspose2d(1, filters, 4, stride=2, padding=1)  # 14 → 28
        self.x_output = nn.Conv2d(filters, 1, 4)  # SAME via F.pad(1, 2) below
        _keras_init(self)

    def encode(self, x):  # x: (B, 1, 28, 28)
        h = F.max_pool2d(F.relu(self.e_conv(x)), 5, stride=1)  # (B, f, 24, 24)
        return self.e_latent(h.permute(0, 2, 3, 1).reshape(x.shape[0], -1))  # NHWC flatten

    def forward(self, x):
        z = self.encode(x).view(-1, 1, 14, 14)  # Keras's Reshape((14, 14, 1)), C = 1
        h = F.relu(self.d_conv_t(z))
        return self.x_output(F.pad(h, (1, 2, 1, 2)))  # TensorFlow's SAME for an even kernel


def train_steps(model: nn.Module, batches, lr: float, eps: float = 1e-8, inputs=None):
    """The posts' loop: MSE(model(input), image), `Adam(lr, eps)`; returns the losses.

    Args:
      batches: NCHW image tensors (the targets).
      inputs: what the model sees per batch (post 000 §3's noisy images); default the batches.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=eps)
    losses = []
    for i, target in enumerate(batches):
        optimizer.zero_grad()
        x = target if inputs is None else inputs[i]
        loss = F.mse_loss(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


class DenoisingAutoencoder(torch_models.StackedAutoencoder):
    """Post 000 §3: the stacked AE of §2 on images, (B, 1, 28, 28) in and out."""

    def forward(self, x):
        return super().forward(x.view(-1, 28 * 28)).view(-1, 1, 28, 28)
