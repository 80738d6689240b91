"""The one layer boundary: dense, conv, transposed conv and max pool for every model.

Initialisation as PyTorch's: `nn.Linear`, `nn.Conv2d` and `nn.ConvTranspose2d` draw weights and
biases from U(-b, b) with b = 1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5) for the
weights). Flax's defaults differ (LeCun-normal weights, zero biases), which changes early
training curves. Parameter trees keep flax's layout (`kernel`, `bias`). Torch computes fan_in
of a ConvTranspose2d weight [in, out, kh, kw] from its second axis: out·kh·kw.

Implementation: every convolution and pool takes `impl`, one of `IMPLS`:
- "xla": XLA's own ops (`lax.conv_general_dilated`, `lax.conv_transpose`, `reduce_window`):
  cuDNN on a GPU, the TPU's convolutions;
- "matmul": `patch_conv`'s forms (strided slices and matrix products, no convolution in the
  backward pass), which XLA:CPU runs several times faster inside a scanned training step;
- "auto" (the default everywhere): "matmul" where `backend.on_cpu()`, else "xla".
Both give the same function and the same parameters, so a checkpoint trained with one
restores and trains with the other; models pass their Config's `conv_impl` through and never
branch on it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxunsup import backend, patch_conv

ConvImpl = Literal["auto", "xla", "matmul"]
IMPLS: tuple[str, ...] = ("auto", "xla", "matmul")
Padding = str | Sequence[tuple[int, int]]
_DIMS = ("NHWC", "HWIO", "NHWC")


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


def resolve_impl(impl: str) -> str:
    """ "xla" or "matmul": what `impl` means on the current backend."""
    if impl == "auto":
        return "matmul" if backend.on_cpu() else "xla"
    if impl in ("xla", "matmul"):
        return impl
    raise ValueError(f"conv_impl={impl!r} is not one of {IMPLS}; 'auto' suits every backend")


def conv2d(x, kernel, strides=(1, 1), padding: Padding = "VALID", impl: str = "auto"):
    """`lax.conv_general_dilated` in NHWC/HWIO (kernel [kh, kw, C, O]), by `impl`.

    "xla" on the CPU backend gives a stride-1 convolution a hand-written backward
    (`_conv_s1`): the same function and gradients, but no forward mode there."""
    if resolve_impl(impl) == "matmul":
        return patch_conv.conv2d(x, kernel, strides, padding)
    if backend.on_cpu() and tuple(strides) == (1, 1):
        pads = patch_conv.conv_pads(x, kernel.shape[:2], (1, 1), padding)
        return _conv_s1(x, kernel, pads)
    return _xla_conv(x, kernel, strides, padding)


def _xla_conv(x, kernel, strides, padding):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DIMS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_s1(x, kernel, pads):
    """A stride-1 XLA convolution whose input gradient convolves with a flipped kernel stored
    as an array of its own. Autodiff folds the flip into the convolution's dimension numbers,
    and XLA:CPU runs that form several times slower inside a while loop (style transfer's
    L-BFGS): a CPU-only path."""
    return _xla_conv(x, kernel, (1, 1), pads)


def _conv_s1_fwd(x, kernel, pads):
    return _xla_conv(x, kernel, (1, 1), pads), (x, kernel)


def _conv_s1_bwd(pads, res, g):
    x, kernel = res
    (kh, kw), ((t, b), (lt, r)) = kernel.shape[:2], pads
    kernel_t = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)  # [kh, kw, O, C]
    back = ((kh - 1 - t, kh - 1 - b), (kw - 1 - lt, kw - 1 - r))
    grad_x = _xla_conv(g, kernel_t, (1, 1), back)
    grad_kernel = jax.vjp(lambda k: _xla_conv(x, k, (1, 1), pads), kernel)[1](g)[0]
    return grad_x, grad_kernel  # grad_kernel is dropped when unused (an image's gradient)


_conv_s1.defvjp(_conv_s1_fwd, _conv_s1_bwd)


def conv_transpose2d(x, kernel, strides=(1, 1), padding: Padding = "VALID", impl: str = "auto"):
    """`lax.conv_transpose(..., transpose_kernel=True)` in NHWC (kernel [kh, kw, O, C]): the
    gradient of a convolution, `padding` applying to the stride-dilated input."""
    if resolve_impl(impl) == "matmul":
        return patch_conv.conv_transpose2d(x, kernel, strides, padding)
    return jax.lax.conv_transpose(
        x, kernel, strides, padding, dimension_numbers=_DIMS, transpose_kernel=True
    )


def max_pool(x, window: tuple[int, int], strides=None, impl: str = "auto"):
    """VALID max pooling of [B, H, W, C] (floor mode: a partial window is dropped); `strides`
    defaults to the window (torch's `MaxPool2d(k)`). The gradient goes to one position per
    window, the first maximum in row-major order (torch's rule; ties are common in clamped
    images). "matmul" covers stride 1 and stride = window, the pools the models use."""
    window = tuple(window)
    strides = tuple(window if strides is None else strides)
    matmul = resolve_impl(impl) == "matmul"
    if strides == window and (matmul or backend.on_cpu()):  # the CPU-only tiled pool
        return patch_conv.max_pool_tiled(x, window)
    if matmul and strides == (1, 1):
        return patch_conv.max_pool(x, window)
    if matmul:
        raise ValueError(f"impl='matmul' pools with stride 1 or = window, not {strides}")
    return nn.max_pool(x, window, strides=strides, padding="VALID")


class Conv(nn.Module):
    """A 2-D convolution (NHWC), flax's parameters (`kernel` [kh, kw, C, O], `bias` [O])."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: Padding = "SAME"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()
    impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, shape, jnp.float32).astype(x.dtype)
        y = conv2d(x, kernel, self.strides, self.padding, self.impl)
        return _add_bias(self, self._pool(y))

    def _pool(self, y):
        return y


class ConvMaxPool(Conv):
    """`Conv` then VALID max pooling (Keras's Conv2D + MaxPooling2D), `Conv`'s parameters.

    The bias is added after the pool, which commutes with a per-channel constant: the same
    values and gradients, and the bias touches the smaller map (on CPU the pool then reads the
    convolution's product as it is, measurably faster in the Keras CNN AE's step)."""

    window: tuple[int, int] = (2, 2)
    pool_strides: tuple[int, int] | None = None  # None: the window

    def _pool(self, y):
        return max_pool(y, self.window, self.pool_strides, self.impl)


class ConvTranspose(Conv):
    """`flax.linen.ConvTranspose(transpose_kernel=True)` (2-D, NHWC), flax's parameters
    (`kernel` [kh, kw, O, C], `bias` [O])."""

    @nn.compact
    def __call__(self, x):
        shape = (*self.kernel_size, self.features, x.shape[-1])
        kernel = self.param("kernel", self.kernel_init, shape, jnp.float32).astype(x.dtype)
        y = conv_transpose2d(x, kernel, self.strides, self.padding, self.impl)
        return _add_bias(self, y)


def _add_bias(module: nn.Module, y):
    if not module.use_bias:
        return y
    bias = module.param("bias", module.bias_init, (module.features,), jnp.float32)
    return y + bias.astype(y.dtype).reshape(1, 1, 1, -1)  # [1, 1, 1, O]


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
    impl: str = "auto",
    name: str | None = None,
) -> Conv:
    """`Conv` computing `torch.nn.Conv2d(in, out, k, stride, padding)`, torch's init.

    `padding` is an int or pair (symmetric, as torch) or a flax string ("SAME"/"VALID"; Keras's
    SAME pads the high side more for even kernels, as XLA's SAME does).
    """
    kh, kw = _pair(kernel_size)
    bound = 1.0 / math.sqrt(in_channels * kh * kw)
    if not isinstance(padding, str):
        ph, pw = _pair(padding)
        padding = ((ph, ph), (pw, pw))
    return Conv(
        out_channels, (kh, kw), _pair(stride), padding, use_bias=use_bias,
        kernel_init=uniform(bound), bias_init=uniform(bound), impl=impl, name=name,
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
    impl: str = "auto",
    name: str | None = None,
) -> ConvTranspose:
    """`ConvTranspose` computing `torch.nn.ConvTranspose2d(in, out, k, stride, padding,
    output_padding)` exactly: output size (in − 1)·stride − 2·padding + k + output_padding.

    torch's transposed convolution is the gradient of a convolution, so the kernel is used
    flipped and with in/out swapped (`transpose_kernel=True`), and torch's `padding` p becomes
    k − 1 − p on each side of the stride-dilated input, plus `output_padding` on the high side.
    Kernel layout [kh, kw, out, in] = torch's [in, out, kh, kw] permuted (2, 3, 1, 0).
    `padding` may also be a flax string ("SAME", as Keras's Conv2DTranspose).
    """
    kh, kw = _pair(kernel_size)
    (sh, sw), bound = _pair(stride), 1.0 / math.sqrt(out_channels * kh * kw)  # torch's fan_in
    if not isinstance(padding, str):
        (ph, pw), (oh, ow) = _pair(padding), _pair(output_padding)
        if not (0 <= ph <= kh - 1 and 0 <= pw <= kw - 1):
            raise ValueError(f"padding {padding} must be < kernel_size {kernel_size}")
        if not (0 <= oh < max(sh, 1) and 0 <= ow < max(sw, 1)):
            raise ValueError(f"output_padding {output_padding} must be < stride {stride}")
        padding = ((kh - 1 - ph, kh - 1 - ph + oh), (kw - 1 - pw, kw - 1 - pw + ow))
    return ConvTranspose(
        out_channels, (kh, kw), (sh, sw), padding, use_bias=use_bias,
        kernel_init=uniform(bound), bias_init=uniform(bound), impl=impl, name=name,
    )  # fmt: skip
