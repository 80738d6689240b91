"""Image grids against torchvision's make_grid loop, PNG/GIF round trips, and figure files."""

import math

import imageio.v3 as iio
import numpy as np
import pytest

from jaxunsup import plots


def make_grid_reference(images_nhwc, nrow, padding, pad_value):
    """torchvision.utils.make_grid's loop, transcribed to NumPy on an NCHW tensor."""
    tensor = np.transpose(images_nhwc, (0, 3, 1, 2))  # [N, C, H, W]
    nmaps = tensor.shape[0]
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(float(nmaps) / xmaps))
    height, width = int(tensor.shape[2] + padding), int(tensor.shape[3] + padding)
    num_channels = tensor.shape[1]
    grid = np.full(
        (num_channels, height * ymaps + padding, width * xmaps + padding), pad_value, tensor.dtype
    )
    k = 0
    for y in range(ymaps):
        for x in range(xmaps):
            if k >= nmaps:
                break
            # grid.narrow(1, y * height + padding, height - padding)
            #     .narrow(2, x * width + padding, width - padding).copy_(tensor[k])
            r0, c0 = y * height + padding, x * width + padding
            grid[:, r0 : r0 + height - padding, c0 : c0 + width - padding] = tensor[k]
            k += 1
    return np.transpose(grid, (1, 2, 0))  # [H', W', C]


def png_size(path):
    img = iio.imread(path)
    assert path.stat().st_size > 1000
    return img.shape[:2]


def test_grid_of_64_mnist_sized_images_is_242_square():
    grid = plots.image_grid(np.zeros((64, 28, 28, 1), np.float32))
    assert grid.shape == (242, 242, 1) and grid.dtype == np.float32
    assert plots.image_grid(np.zeros((64, 28, 28))).shape == (242, 242, 1)  # NHW accepted


def test_cell_placement_and_padding_value():
    n, h, w, p, nrow = 10, 5, 7, 3, 4
    images = np.arange(1, n + 1, dtype=np.float32)[:, None, None, None] * np.ones((1, h, w, 1))
    grid = plots.image_grid(images, nrow=nrow, padding=p, pad_value=-1.0)[..., 0]
    cols, rows = 4, 3
    assert grid.shape == (rows * (h + p) + p, cols * (w + p) + p)
    expected = np.full(grid.shape, -1.0)
    for k in range(n):
        y, x = divmod(k, cols)
        r0, c0 = y * (h + p) + p, x * (w + p) + p
        assert np.all(grid[r0 : r0 + h, c0 : c0 + w] == k + 1), k
        expected[r0 : r0 + h, c0 : c0 + w] = k + 1
    # Everything else, the two empty cells of the last row included, is padding.
    np.testing.assert_array_equal(grid, expected)
    assert grid[0, 0] == grid[p + h, p] == grid[-1, -1] == -1.0


@pytest.mark.parametrize(
    "n, nrow, padding, channels",
    [(10, 4, 2, 1), (10, 4, 0, 3), (3, 8, 5, 3), (1, 8, 2, 1), (17, 5, 1, 1), (64, 8, 2, 1)],
)
def test_matches_torchvision_make_grid_loop(n, nrow, padding, channels):
    images = np.random.default_rng(n).random((n, 6, 9, channels)).astype(np.float32)
    got = plots.image_grid(images, nrow=nrow, padding=padding, pad_value=0.25)
    np.testing.assert_array_equal(got, make_grid_reference(images, nrow, padding, 0.25))


def test_to_uint8_ranges_and_rounding():
    # 0 in [-1, 1] sits at 127.5, rounded half up to 128 like torchvision's save_image.
    np.testing.assert_array_equal(plots.to_uint8([-1.0, 0.0, 1.0], (-1, 1)), [0, 128, 255])
    np.testing.assert_array_equal(plots.to_uint8([-0.5, 0.0, 0.5, 1.0, 2.0]), [0, 0, 128, 255, 255])
    assert plots.to_uint8(np.zeros((2, 3, 4))).dtype == np.uint8
    with pytest.raises(ValueError, match="value_range"):
        plots.to_uint8([0.0], (1, 1))
    with pytest.raises(ValueError, match="NaN"):
        plots.to_uint8([np.nan])


@pytest.mark.parametrize("channels", [1, 3])
def test_save_grid_round_trip(tmp_path, channels):
    images = np.random.default_rng(0).uniform(-1, 1, (10, 12, 12, channels))
    path = tmp_path / "deep" / "dir" / "grid.png"
    grid = plots.save_grid(path, images, nrow=4, value_range=(-1, 1))
    assert grid.shape == (3 * 14 + 2, 4 * 14 + 2, channels)
    expected = plots.to_uint8(grid, (-1, 1))
    read = iio.imread(path)
    np.testing.assert_array_equal(read, expected[..., 0] if channels == 1 else expected)
    assert read[0, 0].max() == 0  # padding is black whatever the value range


@pytest.mark.parametrize("shape", [(9, 11), (9, 11, 1), (9, 11, 3)])
def test_save_image_round_trip(tmp_path, shape):
    image = np.random.default_rng(1).random(shape)
    path = plots.save_image(tmp_path / "a" / "img.png", image)
    assert path == tmp_path / "a" / "img.png"
    np.testing.assert_array_equal(
        iio.imread(path), plots.to_uint8(image).reshape(9, 11, -1).squeeze()
    )


def test_save_gif_frames_and_content(tmp_path):
    # Generator-style frames in [-1, 1]; distinct frames (Pillow merges identical neighbours).
    frames = [np.full((8, 10), v) for v in np.linspace(-1, 1, 6)]
    frames[0][2:5, 3:7] = 1.0
    path = plots.save_gif(tmp_path / "g" / "train.gif", frames, value_range=(-1, 1), fps=10)
    read = iio.imread(path, index=None)
    assert read.shape[0] == 6
    first = read[0] if read.ndim == 3 else read[0, ..., 0]  # greyscale GIFs read back as RGB
    np.testing.assert_array_equal(first, plots.to_uint8(frames[0], (-1, 1)))
    assert iio.immeta(path)["duration"] == 100 and iio.immeta(path)["loop"] == 0
    # Width 4 (or 3): imageio must not mistake a [T, H, 4] stack for one RGBA image.
    narrow = plots.save_gif(tmp_path / "narrow.gif", [np.zeros((5, 4)), np.ones((5, 4))])
    read = iio.imread(narrow, index=None)
    assert read.shape[:3] == (2, 5, 4) and read[0].max() == 0 and read[1].min() == 255
    assert iio.imread(plots.save_gif(tmp_path / "one.gif", [np.ones((6, 3))]), index=None).shape[
        :3
    ] == (1, 6, 3)
    rgb = plots.save_gif(tmp_path / "rgb.gif", np.random.default_rng(0).random((4, 8, 8, 3)))
    assert iio.imread(rgb, index=None).shape == (4, 8, 8, 3)


def test_save_image_rows(tmp_path):
    rng = np.random.default_rng(0)
    rows = [rng.random((10, 28, 28, 1)), rng.random((10, 28, 28)), rng.random((10, 28, 28, 1))]
    path = plots.save_image_rows(tmp_path / "r" / "rows.png", rows, ["clean", "noisy", "recon"])
    h, w = png_size(path)
    assert w > 3 * h and h >= 3 * 90  # a wide strip: three rows of ten ~1-inch images
    path = plots.save_image_rows(
        tmp_path / "rgb.png", [rng.random((4, 8, 8, 3)), rng.random((2, 8, 8))]
    )
    assert png_size(path)[1] > png_size(path)[0]


def test_save_loss_curves(tmp_path):
    curves = {"D": [1.4, 1.2, 1.3, 1.35], "G": ([0, 2, 4, 6], [0.9, 0.8, 0.75, 0.7])}
    path = plots.save_loss_curves(
        tmp_path / "l" / "loss.png", curves, hlines={"ln 2": np.log(2)}, title="GAN", logy=True
    )
    assert png_size(path) == (480, 640)


def test_save_scatter_and_tsne(tmp_path):
    rng = np.random.default_rng(0)
    centroids = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 5.0]])
    labels = rng.integers(0, 3, 90)
    points = centroids[labels] + rng.normal(size=(90, 2))
    path = plots.save_scatter(tmp_path / "s" / "km.png", points, labels, centroids, "k-means")
    assert png_size(path) == (480, 640)
    assert png_size(plots.save_scatter(tmp_path / "plain.png", points)) == (480, 640)
    features = np.concatenate([rng.normal(5 * c, 1, (40, 6)) for c in range(3)])  # [120, 6]
    path = plots.save_tsne(
        tmp_path / "t" / "tsne.png", features, np.repeat([0, 1, 2], 40), max_points=60
    )
    assert png_size(path) == (480, 640)


def test_tsne_embed_subset_is_deterministic():
    x = np.random.default_rng(0).random((50, 4, 2))  # trailing axes are flattened
    emb, idx = plots.tsne_embed(x, seed=3, max_points=20)
    assert emb.shape == (20, 2) and idx.shape == (20,)
    assert np.all(np.diff(idx) > 0) and idx.max() < 50
    emb2, idx2 = plots.tsne_embed(x, seed=3, max_points=20)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_allclose(emb, emb2)
    _, idx_all = plots.tsne_embed(x[:12], max_points=20)
    np.testing.assert_array_equal(idx_all, np.arange(12))


def test_bad_inputs_raise_value_error(tmp_path):
    png = tmp_path / "x.png"
    with pytest.raises(ValueError, match="C in"):
        plots.image_grid(np.zeros((4, 8, 8, 4)))
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="images"):
        plots.save_grid(png, np.zeros((0, 8, 8, 1)))
    with pytest.raises(ValueError, match="image must be"):
        plots.save_image(png, np.zeros((8, 8, 4)))
    with pytest.raises(ValueError, match="frames is empty"):
        plots.save_gif(tmp_path / "x.gif", [])
    with pytest.raises(ValueError, match="share one shape"):
        plots.save_gif(tmp_path / "x.gif", [np.zeros((8, 8)), np.zeros((9, 8))])
    with pytest.raises(ValueError, match="rows is empty"):
        plots.save_image_rows(png, [])
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        plots.save_image_rows(png, [np.zeros((2, 8, 8)), np.zeros((2, 8, 8, 4))])
    with pytest.raises(ValueError, match="row_titles"):
        plots.save_image_rows(png, [np.zeros((2, 8, 8))], ["a", "b"])
    with pytest.raises(ValueError, match="curves is empty"):
        plots.save_loss_curves(png, {})
    with pytest.raises(ValueError, match=r"curves\['g'\]"):
        plots.save_loss_curves(png, {"g": ([1, 2, 3], [1, 2])})
    with pytest.raises(ValueError, match="points"):
        plots.save_scatter(png, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="labels"):
        plots.save_scatter(png, np.zeros((5, 2)), labels=[0, 1])
    with pytest.raises(ValueError, match="labels"):
        plots.save_tsne(png, np.zeros((10, 3)), labels=[0, 1])
    assert not png.exists()
