"""Post 003's ConvVAE, its loss and its training step, restated in PyTorch (parity reference).

Two changes from the post, both for the comparison only: `sample` / `forward` accept the noise
`eps` (drawn in JAX and handed over; the post calls `torch.randn_like`), and the hard-coded
`nn.Unflatten(1, (64, 7, 7))` is the `unflatten` argument, whose default is the post's value —
pass the computed shape to build the post's rules for other channel lists and input sizes.
The DEVICE attribute is dropped (parity runs on CPU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ConvVAE(nn.Module):
    """The post's `ConvVAE` (revised 21/07/26), line for line."""

    def __init__(self, input_size, channels, kernel_size=3, stride=2, latent_dim=2,
                 unflatten=(64, 7, 7)):  # fmt: skip
        super().__init__()
        channels = list(channels)  # the post reverses the caller's list in place
        self.latent_dim = latent_dim
        last_channel = channels[0]
        last_size = input_size
        enc = []

        def convcalc(h, k, s, p):
            return math.floor((h + 2 * p - k) / s + 1)

        for c in channels[1:]:
            enc.append(nn.Conv2d(last_channel, c, kernel_size, stride=stride, padding=1))
            enc.append(nn.ReLU())
            last_channel = c
            last_size = convcalc(last_size, kernel_size, stride, 1)
        enc.append(nn.Flatten())
        enc.append(nn.Linear(last_size * last_size * channels[-1], latent_dim * 2))
        self.seq_enc = nn.Sequential(*enc)
        channels.reverse()
        dec = [
            nn.Linear(latent_dim, last_size * last_size * channels[0]),
            nn.ReLU(),
            nn.Unflatten(1, tuple(unflatten)),
            nn.ConvTranspose2d(channels[0], channels[0], kernel_size, stride),
            nn.ReLU(),
        ]

        def deconvcalc(h, k, s, p):
            return (h - 1) * s - 2 * p + k

        last_size = deconvcalc(last_size, kernel_size, stride, 0)
        last_channel = channels[0]
        for c in channels[1:-1]:
            dec.append(nn.ConvTranspose2d(last_channel, c, kernel_size, stride))
            dec.append(nn.ReLU())
            last_channel = c
            last_size = deconvcalc(last_size, kernel_size, stride, 0)
        if last_size >= input_size:
            dec.append(nn.Conv2d(channels[-2], channels[-1], last_size - input_size + 1, 1))
        elif last_size < input_size:
            dec.append(
                nn.ConvTranspose2d(channels[-2], channels[-1], input_size - last_size + 1, 1)
            )
        dec.append(nn.Sigmoid())
        self.seq_dec = nn.Sequential(*dec)

    def encoder(self, x):
        x = self.seq_enc(x)
        mean = x[:, 0 : self.latent_dim]
        logvar = x[:, self.latent_dim : self.latent_dim * 2]
        return mean, logvar

    def decoder(self, z):
        return self.seq_dec(z)

    def sample(self, mean, logvar, eps=None):
        if eps is None:  # the post's draw
            eps = torch.randn_like(mean)
        return mean + torch.exp(0.5 * logvar) * eps

    def forward(self, x, eps=None):
        mean, logvar = self.encoder(x)
        z = self.sample(mean, logvar, eps)
        xhat = self.decoder(z)
        return xhat, mean, logvar


def lossfunc(mean, logvar, x, xhat):
    """The post's loss: summed BCE and KLD, each averaged over the batch."""
    BCE = torch.mean(torch.sum(F.binary_cross_entropy(xhat, x, reduction="none"), (1, 2, 3)))
    KLD = torch.mean(-0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp(), 1), 0)
    return BCE + KLD


def train_steps(model, batches, eps_list, lr: float = 1e-3) -> list[float]:
    """The post's `train` loop body over NCHW batches with the given noise; returns losses."""
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for x, eps in zip(batches, eps_list, strict=True):
        optim.zero_grad()
        xhat, mean, logvar = model(x, eps)
        loss = lossfunc(mean, logvar, x, xhat)
        loss.backward()
        optim.step()
        losses.append(loss.item())
    return losses
