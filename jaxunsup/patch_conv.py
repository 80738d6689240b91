"""2-D convolutions and max pools as slices and matrix products: `layers`' "matmul" impl.

XLA:CPU runs the *backward* convolutions of a training step (input and kernel gradients)
an order of magnitude slower inside a while loop than outside one (benchmarks/README.md);
`training.fit` runs every epoch as a `lax.scan`, so a small conv autoencoder trains several
times slower than its step alone.
These functions compute what `lax.conv_general_dilated`, `lax.conv_transpose(...,
transpose_kernel=True)` and VALID `reduce_window` max pooling compute, from strided slices and
matrix products whose gradients are slices, pads and matrix products: no convolution runs in
the backward pass, in or out of a loop. `layers.py` picks them on the CPU backend only
(`impl="auto"`); on an accelerator XLA's own ops run. Nothing else imports this file.

Kernels are laid out as flax's (`[kh, kw, in, out]` for a convolution, `[kh, kw, out, in]` for
a transposed one). Padding is explicit ((lo, hi), (lo, hi)) pairs or "SAME"/"VALID" with
XLA's (and Keras's) meaning: SAME puts the extra pixel of an even kernel on the high side.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Padding = str | Sequence[tuple[int, int]]


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _transpose_same_pads(k: int, s: int) -> tuple[int, int]:
    """`lax.conv_transpose`'s SAME padding of the stride-dilated input (output = input · s)."""
    pad_len = k + s - 2
    lo = k - 1 if s > k - 1 else math.ceil(pad_len / 2)
    return lo, pad_len - lo


def conv_pads(x, kernel_hw, strides, padding) -> tuple[tuple[int, int], tuple[int, int]]:
    if padding == "SAME":
        sizes = zip(x.shape[1:3], kernel_hw, strides, strict=True)
        return tuple(_same_pads(n, k, s) for n, k, s in sizes)
    if padding == "VALID":
        return ((0, 0), (0, 0))
    return tuple(tuple(p) for p in padding)


def _matmul(a: jax.Array, w: jax.Array) -> jax.Array:
    """a [B, H, W, K] @ w [K, N] → [B, H, W, N] as one 2-D product: inside a scanned training
    step XLA:CPU computes the weight gradient of the 4-D `dot_general` markedly slower."""
    return (a.reshape(-1, a.shape[-1]) @ w).reshape(*a.shape[:-1], w.shape[-1])


def conv2d(x: jax.Array, kernel: jax.Array, strides=(1, 1), padding: Padding = "VALID"):
    """`lax.conv_general_dilated(x, kernel, strides, padding)` in NHWC/HWIO, no convolution.

    With C ≤ O the kh·kw shifted (strided) slices of the padded input are concatenated and
    multiplied by the kernel matrix (im2col); with C > O every kernel tap is applied to the
    whole input first (one matrix product to kh·kw·O channels) and the shifted, strided taps
    are summed, which materialises the smaller tensor. A one-channel input with 16 or more
    taps takes `_banded_conv` (no im2col at all).

    Args:
      x: [B, H, W, C] input.
      kernel: [kh, kw, C, O].
      strides: (sh, sw).
      padding: "SAME", "VALID" or ((top, bottom), (left, right)).

    Returns:
      [B, Ho, Wo, O].
    """
    kh, kw, c, o = kernel.shape
    if x.shape[-1] != c:
        raise ValueError(f"x has {x.shape[-1]} channels but the kernel expects {c}")
    (sh, sw), pads = strides, conv_pads(x, (kh, kw), strides, padding)
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1

    def tap(a, i, j):  # [B, Ho, Wo, ...]: what kernel tap (i, j) sees at every output
        return a[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]

    if _takes_banded(c, kernel.shape[:2], x.shape[2]):
        return _banded_conv(x, kernel, strides, ho, wo)
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    if c <= o:
        patches = jnp.concatenate([tap(x, i, j) for i, j in taps], axis=-1)  # [B, Ho, Wo, k²C]
        return _matmul(patches, kernel.reshape(kh * kw * c, o))  # [B, Ho, Wo, O]
    z = _matmul(x, kernel.transpose(2, 0, 1, 3).reshape(c, kh * kw * o))  # [B, Hp, Wp, k²O]
    # `split` (not k² channel slices): its gradient is one concatenate, not k² padded sums
    parts = jnp.split(z, kh * kw, axis=-1)  # k² × [B, Hp, Wp, O]
    return sum(tap(parts[i * kw + j], i, j) for i, j in taps)


_BANDED_MIN_TAPS = 16  # one-channel convs with this many taps: banded products, not im2col
_BANDED_MAX_WIDTH = 8  # ... when the padded width is at most this many kernel widths


def _takes_banded(channels: int, kernel_hw, padded_width: int) -> bool:
    """Whether a conv (or a transposed conv, by its dilated input) runs as banded products:
    one input channel, ≥ 16 taps, and a (dilated) padded width ≤ 8 kernel widths."""
    (kh, kw) = kernel_hw
    return channels == 1 and kh * kw >= _BANDED_MIN_TAPS and padded_width <= _BANDED_MAX_WIDTH * kw


def _band_select(kw: int, n_in: int, n_out: int, in_step: int, out_step: int, in_offset: int = 0):
    """[kw, n_in, n_out] 0/1 (NumPy): 1 where input column a under kernel column j lands on
    output column b, i.e. in_offset + a·in_step − j = b·out_step."""
    j, a, b = np.ix_(np.arange(kw), np.arange(n_in), np.arange(n_out))
    return (in_offset + a * in_step - j == b * out_step).astype(np.float32)


def _banded_conv(x: jax.Array, kernel: jax.Array, strides, ho: int, wo: int) -> jax.Array:
    """`conv2d` of the padded one-channel x [B, Hp, Wp, C] as one product per output row:
    the kh input rows it reads, [kh·Wp·C], times a banded matrix [kh·Wp·C, Wo·O] that holds
    the kernel at each output column's offset.

    im2col copies kh·kw values per output pixel (25 for Keras's 5×5 conv), and with C = 1
    its product has K = kh·kw and N = O: small, memory-bound. This reads the input kh
    times and runs one product with K = kh·Wp·C and N = Wo·O, which a GEMM runs near its
    peak; it does Wp/kw times the multiply-adds, the cheaper trade when C = 1, kh·kw ≥ 16
    and Wp ≤ 8·kw (the Keras CNN AE's step is faster; at 3×3 stride 2, as in the conv AE
    and the VAE, im2col was as fast; a 4×4 conv on 66 padded columns would do 16× the work,
    so wide inputs keep it).
    """
    kh, kw, c, o = kernel.shape
    (sh, sw), (b, _, wp, _) = strides, x.shape
    rows = jnp.stack([x[:, i : i + sh * (ho - 1) + 1 : sh] for i in range(kh)], axis=2)
    select = _band_select(kw, wp, wo, 1, sw)  # [j, p, w] = 1 where p = w·sw + j
    band = jnp.einsum("ijco,jpw->ipcwo", kernel, select.astype(kernel.dtype))
    out = rows.reshape(b * ho, kh * wp * c) @ band.reshape(kh * wp * c, wo * o)
    return out.reshape(b, ho, wo, o)  # [B, Ho, Wo, O]


def _banded_transpose(x: jax.Array, kernel: jax.Array, strides, pads, ho: int, wo: int):
    """`conv_transpose2d` of a one-channel x [B, H, W, I] as banded products per output-row
    phase, on the undilated input.

    lax correlates the stride-dilated, padded input with the flipped kernel. Output row r
    reads dilated rows r + t for taps t, of which only those with (r + t − lo) ≡ 0 (mod sh)
    hold input rows: for the rows of phase a = r mod sh those taps are fixed, and row
    a + sh·m reads input row m + (a + t − lo) / sh. So each phase is one product, [B·M,
    T·W·I] × [T·W·I, Wo·O], whose banded matrix (for the taps T of that phase) places each
    input column at its dilated position; the phases interleave by a reshape. No product
    touches the dilation's zeros (`_banded_conv` on the dilated input would do sh² times the
    work), and the gradient needs no scatter onto the dilated grid.
    """
    kh, kw, o, c = kernel.shape
    (sh, sw), ((lo_h, _), (lo_w, _)), (b, h, w, _) = strides, pads, x.shape
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)  # [kh, kw, I, O], as on the grid
    select = _band_select(kw, w, wo, sw, 1, lo_w)  # column w sits at lo_w + w·sw, dilated
    band = jnp.einsum("ijco,jwv->iwcvo", flipped, select.astype(x.dtype))
    band = band.reshape(kh, w * c, wo * o)  # one [W·I, Wo·O] band per kernel row
    rows = -(-ho // sh)  # output rows per phase (the last phases may have one fewer)
    margin = kh + rows  # zero rows either side: every shifted slice stays inside
    xr = jnp.pad(x.reshape(b, h, w * c), ((0, 0), (margin, margin), (0, 0)))
    phases = []
    for a in range(sh):
        m = len(range(a, ho, sh))
        taps = [t for t in range(kh) if (a + t - lo_h) % sh == 0]
        if not taps or not m:
            phases.append(jnp.zeros((b, rows, wo * o), x.dtype))
            continue
        starts = [margin + (a + t - lo_h) // sh for t in taps]
        lhs = jnp.concatenate([xr[:, s : s + m] for s in starts], axis=-1)  # [B, M, T·W·I]
        rhs = jnp.concatenate([band[t] for t in taps], axis=0)  # [T·W·I, Wo·O]
        out = (lhs.reshape(b * m, -1) @ rhs).reshape(b, m, wo * o)
        phases.append(jnp.pad(out, ((0, 0), (0, rows - m), (0, 0))))
    out = jnp.stack(phases, axis=2).reshape(b, rows * sh, wo, o)  # rows interleave
    return out[:, :ho]  # [B, Ho, Wo, O]


def _transpose_pads(kernel_hw, strides, padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """lax's padding of the stride-dilated input for `conv_transpose2d`."""
    (kh, kw), (sh, sw) = kernel_hw, strides
    if padding == "SAME":
        return _transpose_same_pads(kh, sh), _transpose_same_pads(kw, sw)
    if padding == "VALID":
        return (kh - 1, sh - 1 + max(kh - sh, 0)), (kw - 1, sw - 1 + max(kw - sw, 0))
    return tuple(tuple(p) for p in padding)


def _overlap_add(y: jax.Array, axis: int, s: int) -> jax.Array:
    """y [..., P, k, ...] (positions at `axis`, kernel taps at `axis` + 1) → [..., (P + J − 1)·s,
    ...] with out[p·s + t] = Σ y[p, t] and J = ⌈k / s⌉: the taps in groups of s (a split, whose
    gradient is one concatenate of slices that XLA fuses), each group shifted by its index."""
    p, k = y.shape[axis : axis + 2]
    n_groups = -(-k // s)
    total = 0
    for j, group in enumerate(jnp.split(y, [s * g for g in range(1, n_groups)], axis=axis + 1)):
        pad = [(0, 0)] * y.ndim
        pad[axis], pad[axis + 1] = (j, n_groups - 1 - j), (0, s - group.shape[axis + 1])
        total = total + jnp.pad(group, pad)
    return total.reshape(*y.shape[:axis], (p + n_groups - 1) * s, *y.shape[axis + 2 :])


def _transpose_by_phases(x: jax.Array, kernel: jax.Array, strides) -> jax.Array:
    """The full transposed convolution (lax padding k − 1 on both sides), by output phase.

    Input pixel h adds x[h]·kernel[t] to output h·s + t. One matrix product gives every tap's
    contribution [B, H, W, kh, kw, O]; per kernel row, the column taps are overlap-added
    (`_overlap_add`: in groups of s, each group shifted by one column, the groups' members
    landing on the s column phases); then the kernel rows are summed by row phase and the
    phases interleave by a stack and a reshape. No products with (or sums of) the zeros of the
    dilated input, and the gradient's assembly of the taps' cotangents is one fusion. Output
    [B, (H−1)·sh + kh, (W−1)·sw + kw, O].
    """
    kh, kw, o, i = kernel.shape
    b, h, w, _ = x.shape
    sh, sw = strides
    taps = kernel.transpose(3, 0, 1, 2).reshape(i, kh * kw * o)  # [I, kh·kw·O]
    y = _matmul(x, taps).reshape(b, h, w, kh, kw, o)  # [B, H, W, kh, kw, O]
    rows = [_overlap_add(r[:, :, :, 0], 2, sw) for r in jnp.split(y, kh, axis=3)]  # [B,H,W',O]
    m = h - 1 + -(-kh // sh)  # rows per phase
    phases = []
    for a in range(sh):
        acc = jnp.zeros((b, m, *rows[0].shape[2:]), x.dtype)
        for p in range(a, kh, sh):  # kernel row p lands on phase a, shifted by p // sh rows
            acc = acc + jnp.pad(rows[p], ((0, 0), (p // sh, m - h - p // sh), (0, 0), (0, 0)))
        phases.append(acc)
    out = jnp.stack(phases, axis=2).reshape(b, m * sh, -1, o)  # [B, M·sh, W'', O]
    return out[:, : (h - 1) * sh + kh, : (w - 1) * sw + kw]


def conv_transpose2d(x: jax.Array, kernel: jax.Array, strides=(1, 1), padding: Padding = "VALID"):
    """`lax.conv_transpose(x, kernel, strides, padding, transpose_kernel=True)`, no convolution.

    lax correlates the stride-dilated, padded input with the flipped kernel. A one-channel
    input with 16 or more taps takes `_banded_transpose` (banded products per output-row
    phase; Keras's 4×4 stride-2 layer, where it beat the next route). When the patches of
    that dilated input are the smaller tensor (Ho·Wo·I ≤ H·W·O, roughly s²·I ≤ O) that is
    what happens here too (`conv2d` on the dilated input).
    Otherwise `_transpose_by_phases` computes the full output (padding k − 1 on both sides),
    and `lax.pad` by lo − (k − 1), hi − (k − 1) (negative values crop) gives the requested
    padding: no products with the dilated input's zeros, faster than im2col or per-tap
    scatters for strided layers in a scanned step on CPU.

    Args:
      x: [B, H, W, I] input.
      kernel: [kh, kw, O, I] (flax's `ConvTranspose` layout with `transpose_kernel=True`).
      strides: (sh, sw).
      padding: "SAME", "VALID" or explicit pairs padding the dilated input (as lax).

    Returns:
      [B, (H−1)·sh + 1 + lo + hi − kh + 1, ..., O].
    """
    kh, kw, o, i = kernel.shape
    if x.shape[-1] != i:
        raise ValueError(f"x has {x.shape[-1]} channels but the kernel expects {i}")
    (sh, sw), (pads_h, pads_w) = strides, _transpose_pads((kh, kw), strides, padding)
    h, w = x.shape[1:3]
    ho, wo = (h - 1) * sh + sum(pads_h) - kh + 2, (w - 1) * sw + sum(pads_w) - kw + 2
    zero = jnp.zeros((), x.dtype)
    if _takes_banded(i, (kh, kw), wo + kw - 1):  # by the dilated, padded input's width
        return _banded_transpose(x, kernel, strides, (pads_h, pads_w), ho, wo)
    if ho * wo * i <= h * w * o:  # im2col on the dilated input is the smaller tensor
        dilated = jax.lax.pad(
            x, zero, ((0, 0, 0), (*pads_h, sh - 1), (*pads_w, sw - 1), (0, 0, 0))
        )  # [B, (H−1)·sh + 1 + lo + hi, ..., I]
        return conv2d(dilated, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))  # [kh,kw,I,O]
    full = _transpose_by_phases(x, kernel, strides)  # [B, (H−1)·sh + kh, ..., O]
    crop = ((0, 0, 0), (pads_h[0] - kh + 1, pads_h[1] - kh + 1, 0),
            (pads_w[0] - kw + 1, pads_w[1] - kw + 1, 0), (0, 0, 0))  # fmt: skip
    return jax.lax.pad(full, zero, crop)  # [B, Ho, Wo, O]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    """VALID max pooling with stride 1 over [B, H, W, C], separably (rows, then columns).

    The gradient goes to one position per window (the first maximum of each separable pass,
    as torch's and XLA's pooling route it to one). The forward pass keeps each window's
    offset of that maximum (int8), and the backward pass gathers, for every input position,
    the gradients of the windows whose maximum it holds: one elementwise pass per axis, no
    `select_and_scatter`. Both passes work on the [B, H, W·C] view (a column shift is a shift
    by C along its last axis), so XLA:CPU's loops run over W·C contiguous values, not C. In a
    scanned step on CPU this is faster than flax's `max_pool` (`reduce_window`);
    benchmarks/README.md has the measurements.
    """
    return _max_pool_fwd(x, window)[0]


def _max_1d(x: jax.Array, k: int, axis: int, step: int) -> tuple[jax.Array, jax.Array]:
    """Max over windows of k taps `step` apart along `axis` (stride `step`: the windows
    start at every position, VALID), and the tap (0..k−1; int8 for k ≤ 127) of each
    window's first maximum (a NaN counts as the maximum, as in torch): one running pass."""
    n = x.shape[axis] - (k - 1) * step
    kind = jnp.int8 if k <= 127 else jnp.int32
    best = jax.lax.slice_in_dim(x, 0, n, axis=axis)
    offset = jnp.zeros(best.shape, kind)
    for i in range(1, k):
        tap = jax.lax.slice_in_dim(x, i * step, i * step + n, axis=axis)
        wins = (tap > best) | (jnp.isnan(tap) & ~jnp.isnan(best))  # a later tie loses
        best, offset = jnp.where(wins, tap, best), jnp.where(wins, kind(i), offset)
    return best, offset


def _max_1d_grad(offset: jax.Array, g: jax.Array, k: int, axis: int, step: int) -> jax.Array:
    """The input gradient of `_max_1d`: position p receives g of the window starting at
    p − i·step when that window's maximum is its tap i."""
    size = g.shape[axis] + (k - 1) * step  # the input's length along `axis`
    pads = [(0, 0)] * g.ndim
    pads[axis] = ((k - 1) * step, (k - 1) * step)
    g, offset = jnp.pad(g, pads), jnp.pad(offset, pads, constant_values=-1)
    grad = jnp.zeros((), g.dtype)
    for i in range(k):
        start = (k - 1 - i) * step  # window p − i·step, shifted by the pad
        gi = jax.lax.slice_in_dim(g, start, start + size, axis=axis)
        hit = jax.lax.slice_in_dim(offset, start, start + size, axis=axis) == i
        grad = grad + jnp.where(hit, gi, 0)
    return grad


def _in_halves(f, n: int) -> tuple[jax.Array, ...]:
    """The arrays f(lo, hi) computes for last-axis columns [lo, hi), for [0, n/2) and
    [n/2, n), joined along that axis: the same values as f(0, n), but stored once.

    XLA:CPU never fuses a concatenate along the minor axis (a copy loop beats a fused one),
    so the result is written to memory. Without it XLA fuses a separable pass into the next
    one, which reads it at k shifted positions and so recomputes it k times per element
    (3× slower pooling in the Keras CNN AE's step)."""
    cut = n // 2
    return tuple(jnp.concatenate(pair, axis=-1) for pair in zip(f(0, cut), f(cut, n), strict=True))


def _max_pool_fwd(x, window):
    (kh, kw), (b, h, w, c) = window, x.shape
    x3 = x.reshape(b, h, w * c)
    rows, row_offset = _in_halves(lambda lo, hi: _max_1d(x3[..., lo:hi], kh, 1, 1), w * c)
    out, col_offset = _max_1d(rows, kw, 2, c)  # [B, Ho, Wo·C]
    return out.reshape(b, h - kh + 1, w - kw + 1, c), (row_offset, col_offset)


def _max_pool_bwd(window, res, g):
    (kh, kw), (row_offset, col_offset), (b, ho, wo, c) = window, res, g.shape
    g3, w = g.reshape(b, ho, wo * c), wo + kw - 1
    g_rows = _max_1d_grad(col_offset, g3, kw, 2, c)  # [B, Ho, W·C]; stored by halves: slower
    g_x = _max_1d_grad(row_offset, g_rows, kh, 1, 1)  # [B, H, W·C]
    return (g_x.reshape(b, ho + kh - 1, w, c),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def _windows(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    """[B, H, W, C] → [B, H/kh, W/kw, C, kh·kw]: each window in row-major order (floor mode)."""
    (kh, kw), (b, h, w, c) = window, x.shape
    x = x[:, : h // kh * kh, : w // kw * kw]
    x = x.reshape(b, h // kh, kh, w // kw, kw, c)  # [B, H/kh, kh, W/kw, kw, C]
    return x.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // kh, w // kw, c, kh * kw)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool_tiled(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    """VALID max pooling of [B, H, W, C] with stride = window (torch's `MaxPool2d(k)`, floor
    mode: a partial last row/column of windows is dropped). The gradient goes to the first
    maximum of each window in row-major order, as torch's. The windows come from a reshape,
    so forward and backward are elementwise (on CPU much faster than `reduce_window` and its
    `select_and_scatter`)."""
    return jnp.max(_windows(x, window), axis=-1)


def _tiled_fwd(x, window):
    win = _windows(x, window)
    return jnp.max(win, axis=-1), (jnp.argmax(win, axis=-1), x.shape)


def _tiled_bwd(window, res, g):
    (kh, kw), (first, (b, h, w, c)) = window, res
    grad = jax.nn.one_hot(first, kh * kw, dtype=g.dtype) * g[..., None]  # [B, H', W', C, kh·kw]
    grad = grad.reshape(b, h // kh, w // kw, c, kh, kw).transpose(0, 1, 4, 2, 5, 3)
    grad = grad.reshape(b, h // kh * kh, w // kw * kw, c)  # [B, H', W', C]
    return (jnp.pad(grad, ((0, 0), (0, h % kh), (0, w % kw), (0, 0))),)


max_pool_tiled.defvjp(_tiled_fwd, _tiled_bwd)
