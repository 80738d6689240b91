"""Flax layers initialised as PyTorch initialises them.

The seeds' numbers come from torch's default initialisation: `nn.Linear`, `nn.Conv2d` and
`nn.ConvTranspose2d` draw weights and biases from U(-b, b) with b = 1/sqrt(fan_in) (that is
kaiming_uniform with a = sqrt(5) for the weights). Flax's defaults differ (LeCun-normal weights,
zero biases), which changes early training curves. These factories return ordinary flax layers
with torch's init, so parameter trees keep flax's layout (`kernel`, `bias`). Torch computes
fan_in of a ConvTranspose2d weight [in, out, kh, kw] from its second axis: out·kh·kw.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax


def uniform(bound: float):
    """Initializer drawing from U(-bound, bound)."""

    def init(key, shape, dtype=jax.numpy.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(in_features: int, features: int, *, use_bias: bool = True, name: str | None = None):
    """`nn.Dense` initialised like `torch.nn.Linear(in_features, features)`."""
    bound = 1.0 / math.sqrt(in_features)
    return nn.Dense(
        features, use_bias=use_bias, kernel_init=uniform(bound), bias_init=uniform(bound),
        name=name,
    )  # fmt: skip


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size,
    stride=1,
    padding=0,
    *,
    use_bias: bool = True,
    name: str | None = None,
):
    """`nn.Conv` (NHWC) computing `torch.nn.Conv2d(in, out, k, stride, padding)`, torch init.

    `padding` is an int or pair (symmetric, as torch) or a flax string ("SAME"/"VALID"; Keras's
    SAME pads the high side more for even kernels, as flax's SAME does).
    """
    kh, kw = _pair(kernel_size)
    bound = 1.0 / math.sqrt(in_channels * kh * kw)
    if not isinstance(padding, str):
        ph, pw = _pair(padding)
        padding = ((ph, ph), (pw, pw))
    return nn.Conv(
        out_channels, (kh, kw), strides=_pair(stride), padding=padding, use_bias=use_bias,
        kernel_init=uniform(bound), bias_init=uniform(bound), name=name,
    )  # fmt: skip


def conv_transpose(
    in_channels: int,
    out_channels: int,
    kernel_size,
    stride=1,
    padding=0,
    output_padding=0,
    *,
    use_bias: bool = True,
    name: str | None = None,
):
    """`nn.ConvTranspose` computing `torch.nn.ConvTranspose2d(in, out, k, stride, padding,
    output_padding)` exactly: output size (in − 1)·stride − 2·padding + k + output_padding.

    torch's transposed convolution is the gradient of a convolution, so the kernel is used
    flipped and with in/out swapped (`transpose_kernel=True`), and torch's `padding` p becomes
    k − 1 − p on each side of the stride-dilated input, plus `output_padding` on the high side.
    Kernel layout [kh, kw, out, in] = torch's [in, out, kh, kw] permuted (2, 3, 1, 0).
    `padding` may also be a flax string ("SAME", as Keras's Conv2DTranspose).
    """
    kh, kw = _pair(kernel_size)
    bound = 1.0 / math.sqrt(out_channels * kh * kw)  # torch's fan_in of a transposed weight
    if not isinstance(padding, str):
        (ph, pw), (oh, ow) = _pair(padding), _pair(output_padding)
        if ph > kh - 1 or pw > kw - 1:
            raise ValueError(f"padding {padding} must be < kernel_size {kernel_size}")
        padding = ((kh - 1 - ph, kh - 1 - ph + oh), (kw - 1 - pw, kw - 1 - pw + ow))
    return nn.ConvTranspose(
        out_channels, (kh, kw), strides=_pair(stride), padding=padding, use_bias=use_bias,
        transpose_kernel=True, kernel_init=uniform(bound), bias_init=uniform(bound), name=name,
    )  # fmt: skip
