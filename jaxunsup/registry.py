"""The experiments the CLI and the report know, as one explicit table.

Each entry names its seed (file and section), its Config class (whose defaults are the seed's
settings, the `--full` run) and its `run(cfg, workdir) -> results` function, plus the overrides
that make the `--quick` preset (minutes on a 2-core CPU, embedded data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from jaxunsup import (
    ae_conv,
    ae_denoising,
    ae_keras,
    autoencoder,
    basics,
    dcgan,
    deep_kmeans,
    gan,
    gan_simple,
    kmeans,
    style_transfer,
    vae,
)


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    seed: str  # seed file and section, e.g. "000 §2"
    summary: str
    config: type
    run: Callable[[Any, Any], dict]
    quick: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    full: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def make_config(self, preset: str = "default", **overrides) -> Any:
        """The Config for `preset` ("default" = the seed's settings, "quick", "full")."""
        base = {"default": {}, "quick": self.quick, "full": self.full}[preset]
        return self.config(**{**base, **overrides})


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in [
        Experiment(
            name="kmeans-circles",
            seed="000 §1",
            summary="k-means (k=2) on make_circles: jitted KMeans and the post's loop replayed",
            config=kmeans.CirclesConfig,
            run=kmeans.run_circles,
            quick={},  # 500 points take well under a second
        ),
        Experiment(
            name="ae-stacked",
            seed="000 §2",
            summary="stacked MLP autoencoder 784-128-32-10, MSE, Adam 1e-4",
            config=autoencoder.StackedConfig,
            run=autoencoder.run,
            # 60 epochs of the embedded 4,000 images = 4,800 steps = the post's 4 epochs.
            quick={"epochs": 60, "checkpoint_every": 20},
        ),
        Experiment(
            name="ae-denoising",
            seed="000 §3",
            summary="stacked AE on inputs + N(0, 0.5) noise, clean target (the post's bug fixed)",
            config=ae_denoising.DenoisingConfig,
            run=ae_denoising.run,
            quick={"epochs": 30, "checkpoint_every": 10},  # denoiser + plain AE, 2,400 steps each
        ),
        Experiment(
            name="ae-conv",
            seed="000 §4",
            summary="conv AE k=16, Conv s2-s2-s1 → Linear(1024, 10), ConvT mirror, Adam 1e-3",
            config=ae_conv.ConvConfig,
            run=ae_conv.run,
            quick={"epochs": 10},  # 800 steps on the embedded 4,000 images
        ),
        Experiment(
            name="ae-keras-mlp",
            seed="004 §1",
            summary="Keras FFN AE 784-256-100-256-784 on standardised digits + k-means on latents",
            config=ae_keras.KerasMLPConfig,
            run=ae_keras.run_mlp,
            quick={"epochs": 200},  # 2,000 steps on the post's first 3,000 images
        ),
        Experiment(
            name="ae-keras-cnn",
            seed="004 §2",
            summary="Keras CNN AE, Conv 5×5 + MaxPool → Dense(196) latent → ConvT + k-means",
            config=ae_keras.KerasCNNConfig,
            run=ae_keras.run_cnn,
            quick={"epochs": 20},  # 200 steps on the post's first 3,000 images
        ),
        Experiment(
            name="restore-image",
            seed="002 §3.2",
            summary="restore a corrupted 100×100 image by gradient descent through weird_function",
            config=basics.RestoreConfig,
            run=basics.run_restore,
            quick={},  # the post's 20,000 iterations take seconds
        ),
        Experiment(
            name="blobs-classifier",
            seed="002 §3.3",
            summary="2-5-1 net on XOR blobs, BCE, SGD 0.03, 2,000 epochs, save/load",
            config=basics.BlobsConfig,
            run=basics.run_blobs,
            quick={},  # the post's 2,000 full-batch epochs take a second
        ),
        Experiment(
            name="deep-kmeans",
            seed="000 §7",
            summary="conv AE + learnable centroids, hard argmin, α ramp T1=50 T2=200 λ=1e-3",
            config=deep_kmeans.Config,
            run=deep_kmeans.run,
            quick=deep_kmeans.QUICK,  # 1,000 digits: 20 pretrain epochs, k-means++, 2 joint
        ),
        Experiment(
            name="style-transfer",
            seed="000 §6",
            summary="neural style transfer, VGG19 conv_1-5, torch-faithful L-BFGS, 300 evals",
            config=style_transfer.Config,
            run=style_transfer.run,
            quick=style_transfer.QUICK,  # 64×64; random VGG19 weights when none are found
        ),
        Experiment(
            name="vae-z2",
            seed="003",
            summary="flexible ConvVAE (1-32-64), latent 2, BCE + KL, Adam 1e-3, IWAE NLL",
            config=vae.Config,
            run=vae.run,
            quick=vae.QUICK,  # 6 epochs of the embedded 4,000 digits; IWAE on 500 test images
        ),
        Experiment(
            name="vae-z4",
            seed="003",
            summary="flexible ConvVAE (1-32-64), latent 4, BCE + KL, Adam 1e-3, IWAE NLL",
            config=vae.Z4Config,
            run=vae.run,
            quick=vae.QUICK,
        ),
        Experiment(
            name="gan-mlp",
            seed="000 §5.1",
            summary="MLP GAN 128-256-512-1024-784 / 784-1024-512-256-1, BCE, Adam 2e-4, FD",
            config=gan.GANConfig,
            run=gan.run,
            quick=gan.QUICK,  # 8 epochs of 4,000 images (FashionMNIST if local, else MNIST)
        ),
        Experiment(
            name="dcgan",
            seed="000 §5.2",
            summary="DCGAN, ConvT 1→3→7→15→28 / Conv 28→14→7→4→1, no bias, BCE, Adam 2e-4, FD",
            config=dcgan.DCGANConfig,
            run=dcgan.run,
            quick=dcgan.QUICK,  # a smoke run: 40 steps at batch 50
        ),
        Experiment(
            name="gan-mnist-simple",
            seed="001",
            summary="post 001's 784-200-1 GAN and its fixes (MSE/SGD → BCE → LN → Adam → seeds)",
            config=gan_simple.SimpleGANConfig,
            run=gan_simple.run,
            quick=gan_simple.QUICK,  # every variant, 1 epoch of 4,000 digits at batch 1
        ),
    ]
}
