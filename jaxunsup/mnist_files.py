"""MNIST on disk: the IDX / npz / CSV formats, finding a dataset's local files, and the
opt-in download (sha256-checked). `data` chooses among the sources; it re-exports
`ImageData`, `read_idx` and `write_idx`.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from jaxunsup.files import atomic_write_bytes

if TYPE_CHECKING:
    from jaxunsup.data import _Dataset as Dataset

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
IDX_FILES = {  # split -> (images, labels), the names every mirror uses
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DOWNLOAD_TIMEOUT_S = 60


class ImageData(NamedTuple):
    """A labelled image set: images float32 `[N, 28, 28, 1]` in [0, 1], labels int32 `[N]`."""

    images: np.ndarray
    labels: np.ndarray
    source: str


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


def read_csv(path: Path, label_col: int = 0) -> tuple[np.ndarray, np.ndarray]:
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


def image_data(parts, source: str) -> ImageData:
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


def splits(split: str) -> tuple[str, ...]:
    return ("train", "test") if split == "all" else (split,)


def _candidate_dirs(ds: Dataset, root: Path) -> list[Path]:
    return [root, root / ds.name, root / ds.title / "raw"]


def _existing(folder: Path, base: str) -> Path | None:
    return next((p for p in (folder / base, folder / f"{base}.gz") if p.is_file()), None)


def load_idx(folder: Path, split: str, what: str = "IDX files") -> ImageData:
    parts = []
    for s in splits(split):
        paths = [_existing(folder, base) for base in IDX_FILES[s]]
        if None in paths:
            want = ", ".join(str(folder / b) + "[.gz]" for b in IDX_FILES[s])
            raise FileNotFoundError(f"{split!r} split needs {want}")
        images, labels = read_idx(paths[0], IMAGE_MAGIC), read_idx(paths[1], LABEL_MAGIC)
        parts.append((images, labels, f"{paths[0]} / {paths[1]}"))
    return image_data(parts, f"{what} in {folder}: {split}")


def _load_npz(path: Path, split: str) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as f:
            parts = [(f[f"x_{s}"], f[f"y_{s}"], str(path)) for s in splits(split)]
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
    return image_data(parts, f"npz {path}: {split}")


def _csv_paths(ds: Dataset, where: Path) -> dict[str, Path]:
    if where.is_dir():
        names = {s: f"{ds.csv_prefix}_{s}.csv" for s in ("train", "test")}
        return {s: _existing(where, n) or where / n for s, n in names.items()}
    for own, other in (("train", "test"), ("test", "train")):
        if own in where.name:  # one split's file: its sibling holds the other split
            return {own: where, other: where.with_name(where.name.replace(own, other))}
    return {"all": where}  # a single file with no split in its name is the whole set


def _load_csv(ds: Dataset, where: Path, split: str) -> ImageData:
    paths = _csv_paths(ds, where)
    if "all" in paths:
        return image_data([(*read_csv(paths["all"]), str(where))], f"CSV {where} (whole file)")
    missing = [str(paths[s]) for s in splits(split) if not paths[s].is_file()]
    if missing:
        raise FileNotFoundError(f"{split!r} split needs {', '.join(missing)}")
    parts = [(*read_csv(paths[s]), str(paths[s])) for s in splits(split)]
    return image_data(parts, f"CSV {where}: {split}")


def load_local(ds: Dataset, kind: str, root: Path, split: str) -> ImageData | None:
    """Loads `kind` files of `ds` from `root` (a folder, or an .npz / .csv file); None if absent."""
    if root.is_file():
        if kind == "npz" and root.name.endswith(".npz"):
            return _load_npz(root, split)
        if kind == "csv" and root.name.endswith((".csv", ".csv.gz")):
            return _load_csv(ds, root, split)
        return None
    for folder in _candidate_dirs(ds, root):
        if kind == "idx" and any(_existing(folder, b) for pair in IDX_FILES.values() for b in pair):
            return load_idx(folder, split)  # partial sets raise, naming the missing files
        if kind == "npz" and (folder / f"{ds.name}.npz").is_file():
            return _load_npz(folder / f"{ds.name}.npz", split)
        if kind == "csv" and any(_existing(folder, f"{ds.csv_prefix}_{s}.csv") for s in IDX_FILES):
            return _load_csv(ds, folder, split)
    return None


def not_found(ds: Dataset, root: Path, kinds: tuple[str, ...]) -> FileNotFoundError:
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


def download(
    ds: Dataset, root: Path, base_url: str | None, checksums: Mapping[str, str] | None
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
