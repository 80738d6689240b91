"""The CHECKS table: check name → function returning parity rows (`parity.helpers.row`).

Each family's checks live in `check_<topic>.py`, which import `parity.helpers` and never this
module, so the table imports them all without a cycle. `python -m parity` runs the table;
`pytest parity/` runs the same functions (some shorter) from its `test_*.py`. Importing
changes no global setting: the runners set the precision policy (`parity.device.full_float32`).
"""

from __future__ import annotations

from parity.check_autoencoders import (
    check_conv_ae,
    check_denoising_ae,
    check_keras_cnn,
    check_keras_mlp,
    check_stacked_ae,
)
from parity.check_basics import check_blobs_classifier, check_restore_image
from parity.check_deep_kmeans import check_deep_kmeans
from parity.check_gans import check_bce, check_dcgan, check_gan_mlp, check_gan_simple
from parity.check_kmeans import check_kmeans
from parity.check_style import check_style_transfer
from parity.check_vae import check_vae, check_vae_ops

CHECKS = {
    "kmeans": check_kmeans,
    "gan-losses": check_bce,
    "gan-mlp": check_gan_mlp,
    "dcgan": check_dcgan,
    "gan-mnist-simple": check_gan_simple,
    "ae-stacked": check_stacked_ae,
    "ae-denoising": check_denoising_ae,
    "ae-conv": check_conv_ae,
    "ae-keras-mlp": check_keras_mlp,
    "ae-keras-cnn": check_keras_cnn,
    "restore-image": check_restore_image,
    "blobs-classifier": check_blobs_classifier,
    "style-transfer": check_style_transfer,
    "deep-kmeans": check_deep_kmeans,
    "vae-z2": check_vae,
    "vae-ops": check_vae_ops,
}
