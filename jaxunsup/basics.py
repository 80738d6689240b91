"""Post 002 — tensors and autograd, image restoration by gradient descent, a first classifier.

Seed: post 002 ("3분 딥러닝" ch. 3). The tensor and autograd part (§3.1) is
the guide `docs/tensors-and-autograd.md`; the two experiments live in `restoration` (§3.2,
`restore-image`) and `blobs` (§3.3, `blobs-classifier`). This module names the post's public
API in one place.
"""

from jaxunsup.blobs import (
    BlobsConfig,
    NeuralNet,
    bce,
    boundary_image,
    check_points,
    create_state,
    evaluate,
    label_map,
    loss_fn,
    make_xor_blobs,
    run_blobs,
    train,
    train_epochs,
    train_step,
)
from jaxunsup.restoration import (
    RestoreConfig,
    descend,
    distance_loss,
    grey_square,
    recover_image,
    restoration_loss,
    run_restore,
    weird_function,
    weird_function_adjoint,
)

__all__ = [
    "BlobsConfig", "NeuralNet", "RestoreConfig", "bce", "boundary_image", "check_points",
    "create_state", "descend", "distance_loss", "evaluate", "grey_square", "label_map", "loss_fn",
    "make_xor_blobs", "recover_image", "restoration_loss", "run_blobs", "run_restore", "train",
    "train_epochs", "train_step", "weird_function", "weird_function_adjoint",
]  # fmt: skip
