"""The GANs of posts 000 §5 and 001, restated in PyTorch as the posts write them.

Module paths are the posts' (`linear.0`, `conv.3`, `model.2`), so `parity.convert` maps the
state_dicts onto jaxunsup's params mechanically. The training functions are the posts' loops
with the noise handed in (drawn by jaxunsup), so both sides see the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn


class MLPGenerator(nn.Module):
    """Post 000 §5.1's `Generator`."""

    def __init__(self):
        super().__init__()
        self.n_features, self.n_out = 128, 784
        self.linear = nn.Sequential(
            nn.Linear(self.n_features, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, self.n_out), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x):
        return self.linear(x).view(-1, 1, 28, 28)


class MLPDiscriminator(nn.Module):
    """Post 000 §5.1's `Discriminator` (`dropout` 0.3 as the post; 0 for deterministic checks)."""

    def __init__(self, dropout: float = 0.3):
        super().__init__()
        self.linear = nn.Sequential(
            nn.Linear(784, 1024), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(256, 1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x):
        return self.linear(x.view(-1, 784))


class DCGenerator(nn.Module):
    """Post 000 §5.2's `Generator`."""

    def __init__(self):
        super().__init__()
        self.n_features = 128
        self.conv = nn.Sequential(
            nn.ConvTranspose2d(self.n_features, 256, 3, 1, bias=False), nn.ReLU(True),
            nn.ConvTranspose2d(256, 128, 3, 2, bias=False), nn.ReLU(True),
            nn.ConvTranspose2d(128, 64, 3, 2, bias=False), nn.ReLU(True),
            nn.ConvTranspose2d(64, 1, 2, 2, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x):
        return self.conv(x.view(-1, self.n_features, 1, 1))


class DCDiscriminator(nn.Module):
    """Post 000 §5.2's `Discriminator`."""

    def __init__(self, dropout: float = 0.5):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 128, 3, 2, 1, bias=False), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv2d(128, 256, 3, 2, 1, bias=False), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv2d(256, 256, 3, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(256, 1, 3, 2, bias=False), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x):
        return self.conv(x).view(-1, 1)


def post000_train_steps(generator, discriminator, g_optim, d_optim, batches, noises):
    """Post 000 §5.1's loop body per batch: `train_discriminator` on the real batch and the
    detached fakes of `z_d`, then `train_generator` on the fakes of `z_g`. `noises` yields
    (z_d, z_g). Returns [(d_loss, g_loss)] per step."""
    criterion = nn.BCELoss()
    out = []
    for real, (z_d, z_g) in zip(batches, noises, strict=False):  # noises may be endless
        n = real.size(0)
        fake = generator(z_d).detach()
        d_optim.zero_grad()
        ones, zeros = torch.ones(n, 1, device=real.device), torch.zeros(n, 1, device=real.device)
        d_loss = criterion(discriminator(real), ones)
        d_loss = d_loss + criterion(discriminator(fake), zeros)
        d_loss.backward()
        d_optim.step()
        g_optim.zero_grad()
        g_loss = criterion(discriminator(generator(z_g)), ones)
        g_loss.backward()
        g_optim.step()
        out.append((d_loss.item(), g_loss.item()))
    return out


class SimpleDiscriminator(nn.Module):
    """Post 001's `Discriminator` (first form, or with LeakyReLU(0.02) + LayerNorm(200))."""

    def __init__(self, leaky_layernorm: bool = False):
        super().__init__()
        mid = [nn.LeakyReLU(0.02), nn.LayerNorm(200)] if leaky_layernorm else [nn.Sigmoid()]
        self.model = nn.Sequential(nn.Linear(784, 200), *mid, nn.Linear(200, 1), nn.Sigmoid())

    def forward(self, inputs):
        return self.model(inputs.reshape(inputs.shape[0], 784))


class SimpleGenerator(nn.Module):
    """Post 001's `Generator` (seed size 1 or 100)."""

    def __init__(self, seed_dim: int = 1, leaky_layernorm: bool = False):
        super().__init__()
        mid = [nn.LeakyReLU(0.02), nn.LayerNorm(200)] if leaky_layernorm else [nn.Sigmoid()]
        self.model = nn.Sequential(
            nn.Linear(seed_dim, 200), *mid, nn.Linear(200, 784), nn.Sigmoid()
        )

    def forward(self, inputs):
        return self.model(inputs).view(-1, 1, 28, 28)


def post001_train_steps(generator, discriminator, g_optim, d_optim, loss, images, noises):
    """Post 001's loop per image batch: D.train(real, 1), D.train(G(z_d).detach(), 0),
    G.train(D, z_g, 1), each with its own zero_grad/step. Returns [(d_real, d_fake, g)]."""
    criterion = nn.BCELoss() if loss == "bce" else nn.MSELoss()
    out = []

    def d_train(x, target):
        out_d = discriminator(x)
        value = criterion(out_d, torch.full_like(out_d, target))
        d_optim.zero_grad()
        value.backward()
        d_optim.step()
        return value.item()

    for real, (z_d, z_g) in zip(images, noises, strict=False):  # noises may be endless
        l_real = d_train(real, 1.0)
        l_fake = d_train(generator(z_d).detach(), 0.0)
        d_out = discriminator(generator(z_g))
        g_loss = criterion(d_out, torch.ones_like(d_out))
        g_optim.zero_grad()
        g_loss.backward()
        g_optim.step()
        out.append((l_real, l_fake, g_loss.item()))
    return out
