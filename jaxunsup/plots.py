"""Figures for every experiment: image grids, GIFs, image rows, loss curves, scatter and t-SNE.

Headless by construction: matplotlib `Figure` objects rendered by `FigureCanvasAgg` (never
pyplot's global state) and imageio for PNG/GIF. Every figure is rendered to bytes in memory and
saved with `atomic_write_bytes`, which also creates parent directories.

Images are NHWC (or NHW for one channel). `value_range` says which values map to black and
white; the GAN posts produce tanh images in [-1, 1] but saved them as if in [0, 1] (their GIF
frames came out dark and clipped), so pass `value_range=(-1, 1)` for generator output.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import imageio.v3 as iio
import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxunsup.files import atomic_write_bytes

Range = tuple[float, float]
DPI = 100


def _as_images(images, name: str, batch: bool) -> np.ndarray:
    """[(N,) H, W] or [(N,) H, W, C] with C in {1, 3} → [(N,) H, W, C], validated."""
    arr = np.asarray(images)
    lead = "N, " if batch else ""
    if arr.ndim == 2 + batch:
        arr = arr[..., None]  # [(N,) H, W, 1]
    if arr.ndim != 3 + batch or arr.shape[-1] not in (1, 3) or 0 in arr.shape:
        raise ValueError(
            f"{name} must be a non-empty [{lead}H, W] or [{lead}H, W, C] array with C in (1, 3), "
            f"got shape {arr.shape}."
        )
    return arr


def _new_axes() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(6.4, 4.8))
    return fig, fig.add_subplot()


def image_grid(images, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> np.ndarray:
    """Tiles images into one, with torchvision's `make_grid` layout.

    `min(nrow, N)` columns and `ceil(N / columns)` rows, filled row by row; every cell is framed
    by `padding` pixels of `pad_value`. Two deviations from torchvision: one channel stays one
    channel (torchvision repeats it to three), and a single image is padded like any other
    (torchvision returns it unpadded).

    Args:
        images: [N, H, W] or [N, H, W, C] with C in (1, 3).
        nrow: Images per grid row.
        padding: Pixels between and around cells.
        pad_value: Value of the padding pixels.

    Returns:
        [rows * (H + padding) + padding, cols * (W + padding) + padding, C] array of the input's
        dtype (64 images of 28×28 give 242×242).
    """
    arr = _as_images(images, "images", batch=True)
    if nrow < 1 or padding < 0:
        raise ValueError(f"need nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}.")
    n, h, w, c = arr.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    ch, cw = h + padding, w + padding
    grid = np.full((rows * ch + padding, cols * cw + padding, c), pad_value, dtype=arr.dtype)
    for k in range(n):
        y, x = divmod(k, cols)
        grid[y * ch + padding : (y + 1) * ch, x * cw + padding : (x + 1) * cw] = arr[k]
    return grid


def to_uint8(images, value_range: Range = (0.0, 1.0)) -> np.ndarray:
    """Maps `value_range` linearly onto [0, 255], clips, rounds half up (like torchvision's
    `save_image`: 127.5 → 128) and casts to uint8.

    Raises:
        ValueError: On an empty range or non-finite values.
    """
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}.")
    arr = np.asarray(images, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("images contain NaN or inf; check the model output before saving.")
    scaled = (arr - lo) * (255.0 / (hi - lo))
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


def _png_bytes(image_u8: np.ndarray) -> bytes:
    if image_u8.shape[-1] == 1:
        image_u8 = image_u8[..., 0]  # [H, W]: a greyscale PNG
    return iio.imwrite("<bytes>", image_u8, extension=".png")


def save_image(path: str | os.PathLike, image, value_range: Range = (0.0, 1.0)) -> Path:
    """Saves one [H, W], [H, W, 1] or [H, W, 3] image as a PNG; returns the path."""
    return atomic_write_bytes(
        path, _png_bytes(to_uint8(_as_images(image, "image", batch=False), value_range))
    )


def save_grid(
    path: str | os.PathLike,
    images,
    nrow: int = 8,
    padding: int = 2,
    value_range: Range = (0.0, 1.0),
) -> np.ndarray:
    """Saves `image_grid(images, nrow, padding)` as a PNG (padding black) and returns the grid."""
    grid = image_grid(images, nrow=nrow, padding=padding, pad_value=value_range[0])
    atomic_write_bytes(path, _png_bytes(to_uint8(grid, value_range)))
    return grid


def save_gif(
    path: str | os.PathLike, frames, value_range: Range = (0.0, 1.0), fps: float = 5
) -> Path:
    """Saves frames (a list or array of equally shaped [H, W] / [H, W, C] images) as a looping
    GIF. GIF has a 256-colour palette, so RGB frames are quantised; Pillow merges identical
    consecutive frames into one longer frame."""
    if len(frames) == 0:
        raise ValueError("frames is empty; pass at least one image.")
    hwc = [_as_images(f, f"frames[{i}]", batch=False) for i, f in enumerate(frames)]
    if len({f.shape for f in hwc}) != 1:
        raise ValueError(f"all frames must share one shape, got {sorted({f.shape for f in hwc})}.")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    stack = to_uint8(np.stack(hwc), value_range)  # [T, H, W, C]
    if stack.shape[-1] == 1:
        stack = stack[..., 0]  # [T, H, W]
    # is_batch: otherwise imageio reads a [T, H, 3|4] stack as one RGB(A) image.
    data = iio.imwrite(
        "<bytes>", stack, extension=".gif", is_batch=True, duration=1000.0 / fps, loop=0
    )
    return atomic_write_bytes(path, data)


def _save_figure(path: str | os.PathLike, fig: Figure) -> Path:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return atomic_write_bytes(path, buf.getvalue())


def save_image_rows(
    path: str | os.PathLike,
    rows: Sequence,
    row_titles: Sequence[str] | None = None,
    value_range: Range = (0.0, 1.0),
) -> Path:
    """One figure with a row of images per entry of `rows` (e.g. test images over their
    reconstructions), grey colormap for one channel, no ticks, each row's title at its left.

    Args:
        rows: Arrays [n, H, W] or [n, H, W, C]; rows may differ in n and image size.
        row_titles: One title per row, or None.
        value_range: Values shown as black and white.
    """
    if len(rows) == 0:
        raise ValueError("rows is empty; pass at least one [n, H, W, C] array.")
    arrs = [
        to_uint8(_as_images(r, f"rows[{i}]", batch=True), value_range) for i, r in enumerate(rows)
    ]
    if row_titles is not None and len(row_titles) != len(arrs):
        raise ValueError(f"row_titles has {len(row_titles)} entries for {len(arrs)} rows.")
    ncols = max(len(a) for a in arrs)
    left = 1.2 if row_titles else 0.1
    fig = Figure(figsize=(left + ncols, 0.2 + len(arrs)))
    fig.subplots_adjust(left=left / (left + ncols), right=1, bottom=0, top=1, wspace=0.05)
    axes = fig.subplots(len(arrs), ncols, squeeze=False)
    for r, arr in enumerate(arrs):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(arr):
                ax.set_axis_off()
                continue
            img = arr[c, ..., 0] if arr.shape[-1] == 1 else arr[c]
            ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        if row_titles:
            axes[r, 0].set_ylabel(row_titles[r], rotation=0, ha="right", va="center")
    return _save_figure(path, fig)


def _curve_xy(name: str, curve) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(curve, tuple) and len(curve) == 2 and np.ndim(curve[0]) == 1:
        x, y = np.asarray(curve[0], float), np.asarray(curve[1], float)
    else:
        y = np.asarray(curve, float)
        x = np.arange(1, y.shape[0] + 1, dtype=float) if y.ndim else y
    if y.ndim != 1 or y.size == 0 or x.shape != y.shape:
        raise ValueError(
            f"curves[{name!r}] must be a non-empty 1-D sequence or an (x, y) pair of equal "
            f"lengths, got shapes x {x.shape}, y {y.shape}."
        )
    return x, y


def save_loss_curves(
    path: str | os.PathLike,
    curves: Mapping,
    xlabel: str = "epoch",
    ylabel: str = "loss",
    hlines: Mapping[str, float] | None = None,
    title: str | None = None,
    logy: bool = False,
) -> Path:
    """Plots named curves (name → y values, x = 1..len(y), or name → (x, y)) with optional
    dashed reference lines (label → y, e.g. {"ln 2": 0.693} for the GAN BCE equilibrium)."""
    if len(curves) == 0:
        raise ValueError("curves is empty; pass a dict name -> sequence of values.")
    fig, ax = _new_axes()
    for name, curve in curves.items():
        ax.plot(*_curve_xy(name, curve), label=str(name))
    for i, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(float(y), color=f"C{len(curves) + i}", linestyle="--", label=str(label))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "")
    if logy:
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return _save_figure(path, fig)


def _scatter(ax, points: np.ndarray, labels) -> None:
    """Scatters points, coloured by label: a legend for ≤ 20 classes, else a colourbar."""
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=8)
        return
    labels = np.asarray(labels)
    if labels.shape != (len(points),):
        raise ValueError(f"labels must have shape ({len(points)},), got {labels.shape}.")
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) <= 20:
        cmap = "tab10" if len(classes) <= 10 else "tab20"
        for k, cls in enumerate(classes):
            sel = codes.reshape(-1) == k
            color = matplotlib.colormaps[cmap](k)
            ax.scatter(points[sel, 0], points[sel, 1], s=8, color=color, label=str(cls))
        ax.legend(markerscale=2, fontsize="small", loc="best")
    else:
        sc = ax.scatter(points[:, 0], points[:, 1], s=8, c=codes, cmap="viridis")
        ax.figure.colorbar(sc, ax=ax)


def _as_points(points, name: str) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
        raise ValueError(f"{name} must be a non-empty [N, 2] array, got shape {arr.shape}.")
    return arr


def save_scatter(path: str | os.PathLike, points, labels=None, centroids=None, title=None) -> Path:
    """Scatters 2-D points coloured by label, with centroids as large black-edged stars."""
    pts = _as_points(points, "points")
    fig, ax = _new_axes()
    _scatter(ax, pts, labels)
    if centroids is not None:
        cen = _as_points(centroids, "centroids")
        ax.scatter(cen[:, 0], cen[:, 1], s=300, marker="*", c="gold", edgecolors="k", zorder=3)
    ax.set_title(title or "")
    fig.tight_layout()
    return _save_figure(path, fig)


def tsne_embed(
    x, seed: int = 0, max_points: int = 2000, perplexity: float = 30.0
) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE (scikit-learn, PCA init) of at most `max_points` rows of `x`.

    Rows beyond `max_points` are dropped by a seeded random subset (sorted indices). Perplexity
    is capped at (n - 1) / 3 so small inputs work.

    Args:
        x: [N, ...] features; trailing axes are flattened.

    Returns:
        (emb [n, 2] float32, idx [n] int64): the embedding and the rows of `x` it shows.
    """
    from sklearn.manifold import TSNE  # slow import, only when used

    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim < 2 or min(len(arr), max_points) < 5:
        raise ValueError(f"need x [N, D] and max_points with N, max_points >= 5, got {arr.shape}.")
    arr = arr.reshape(len(arr), -1)  # [N, D]
    idx = np.arange(len(arr), dtype=np.int64)
    if len(arr) > max_points:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(arr), size=max_points, replace=False)).astype(np.int64)
    perplexity = min(float(perplexity), (len(idx) - 1) / 3)
    tsne = TSNE(
        n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
    )
    import threadpoolctl  # scikit-learn's dependency

    # One OpenMP thread: on a busy small CPU, spinning threads made 300 points take 45 s, not 3.
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        return tsne.fit_transform(arr[idx]).astype(np.float32), idx


def save_tsne(
    path: str | os.PathLike, x, labels, seed: int = 0, max_points: int = 2000, title=None
) -> Path:
    """t-SNE of `x` (see `tsne_embed`) scattered and coloured by `labels` [N]."""
    labels = np.asarray(labels)
    if labels.shape != (len(np.asarray(x)),):
        raise ValueError(f"labels must have shape ({len(np.asarray(x))},), got {labels.shape}.")
    emb, idx = tsne_embed(x, seed=seed, max_points=max_points)
    fig, ax = _new_axes()
    _scatter(ax, emb, labels[idx])
    ax.set_title(title or f"t-SNE ({len(idx)} points)")
    fig.tight_layout()
    return _save_figure(path, fig)
