"""Bad input across the CLI and the library: each class is refused with a clear error that
names the argument or file and the fix, in at most two lines, with no traceback from the CLI
(exit code 2), before anything is compiled or written (the workdir's files hashed before and
after)."""

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from jaxunsup import (
    ae_conv,
    ae_keras,
    autoencoder,
    checkpoint,
    cli,
    data,
    deep_kmeans,
    lbfgs,
    training,
    vae,
    vgg,
)


# --- helpers ------------------------------------------------------------------------------------
def assert_clear(message: str, *names) -> None:
    """At most two lines, no traceback, every name (argument or file) in it."""
    lines = message.strip().splitlines()
    assert 1 <= len(lines) <= 2, message
    assert len(message) <= 420, (len(message), message)
    assert "Traceback" not in message and "Event loop" not in message, message
    for name in names:
        assert str(name) in message, (name, message)


def cli_error(capsys, args: list[str], *names) -> str:
    """Runs the CLI; asserts exit code 2 and a clear message on stderr."""
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert_clear(err, *names)
    return err


def tree_digest(path: Path) -> dict[str, str]:
    """sha256 of every file under `path` (the test's notion of "unchanged")."""
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _linear_apply(params, x):
    return x @ params["w"] + params["b"][None, :]  # [B, 1]


def _mse_loss(params, apply_fn, batch, key):
    x, y = batch
    return jnp.mean((apply_fn(params, x) - y) ** 2), {}


_step = functools.partial(training.gradient_step, loss_fn=_mse_loss)


def _problem(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]])).astype(np.float32)


def _state(width=3):
    params = {"w": jnp.zeros((width, 1)), "b": jnp.zeros((1,))}
    return training.create_train_state(_linear_apply, params, optax.adam(0.05))


def _fit(workdir, epochs, **kw):
    return training.fit(
        kw.pop("state", None) or _state(), _step, _problem(), key=jax.random.key(0),
        epochs=epochs, batch_size=8, workdir=workdir, verbose=False, progress=False, **kw,
    )  # fmt: skip


def _damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "flip":
        raw = raw[: len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 0xFF]) + raw[len(raw) // 2 + 1 :]
    elif how == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw = b""
    path.write_bytes(raw)


def _step_file(step_dir: Path, part: str) -> Path:
    """One file of a checkpoint step: the array data, OCDBT manifest, metadata or meta JSON."""
    if part == "array data":
        return max((step_dir / "state" / "d").iterdir(), key=lambda p: p.stat().st_size)
    return (
        step_dir
        / {
            "ocdbt manifest": "state/manifest.ocdbt",
            "tree metadata": "state/_METADATA",
            "step metadata": "_CHECKPOINT_METADATA",
            "meta json": "meta/metadata",
        }[part]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workdir with checkpoints of epochs 1 and 2 (the tiny linear problem)."""
    workdir = tmp_path_factory.mktemp("trained")
    _fit(workdir, epochs=2)
    return workdir


def _mnist_npz(folder: Path, n_train=200, n_test=60) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "mnist.npz", **arrays)
    return folder / "mnist.npz"


# --- workdir that is a file, or lies under one --------------------------------------------------
@pytest.mark.parametrize("under", [False, True])
def test_cli_workdir_that_is_a_file(capsys, tmp_path, under):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    workdir = afile / "sub" if under else afile
    for cmd in (["run", "ae-stacked"], ["reproduce"]):
        cli_error(capsys, [*cmd, "--workdir", str(workdir)], "--workdir", afile)
    assert afile.read_text() == "keep me"


def test_library_workdir_that_is_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for workdir in (afile, afile / "sub" / "deeper"):
        with pytest.raises(ValueError, match="workdir") as err:
            _fit(workdir, epochs=1)
        assert_clear(str(err.value), afile)
        with pytest.raises(ValueError, match="workdir"):
            autoencoder.run(autoencoder.StackedConfig(epochs=1), workdir, data=_npz_data(tmp_path))
    assert afile.read_text() == "keep me"


def _npz_data(tmp_path):
    path = _mnist_npz(tmp_path / "npzdata", 100, 50)
    return data.load_mnist("train", "npz", path), data.load_mnist("test", "npz", path)


# --- style transfer: images and VGG weights -----------------------------------------------------
@pytest.fixture
def image_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(good)
    raw = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "garbage.pth").write_bytes(np.random.default_rng(0).bytes(3000))
    return tmp_path


@pytest.mark.parametrize("flag", ["--content", "--style"])
@pytest.mark.parametrize("name", ["truncated.png", "text.png"])
def test_cli_style_transfer_bad_image(capsys, image_files, flag, name):
    out = image_files / "out.png"
    args = ["style-transfer", "--random-vgg", "--size", "16", "--steps", "2", "--out", str(out)]
    cli_error(capsys, [*args, flag, str(image_files / name)], image_files / name, "PNG or JPEG")
    assert not out.exists()


def test_library_bad_image(image_files):
    for name in ("truncated.png", "text.png"):
        with pytest.raises(ValueError, match="not a readable image") as err:
            data.load_image(image_files / name, 16)
        assert_clear(str(err.value), image_files / name)


def test_cli_garbage_vgg_weights(capsys, image_files):
    garbage = image_files / "garbage.pth"
    args = ["style-transfer", "--vgg-weights", str(garbage), "--out", str(image_files / "o.png")]
    err = cli_error(capsys, args, garbage, "--vgg-weights")
    assert "weights_only" not in err and "pickle" not in err  # no advice to load unsafely
    with pytest.raises(ValueError, match="cannot read") as exc:
        vgg.load_vgg19(garbage)
    assert_clear(str(exc.value), garbage)
    assert "weights_only" not in str(exc.value)


def test_cli_style_transfer_output_under_a_file(capsys, image_files):
    afile = image_files / "text.png"
    args = ["style-transfer", "--random-vgg", "--size", "16", "--steps", "2"]
    cli_error(capsys, [*args, "--out", str(afile / "x.png")], "--out", afile)
    cli_error(capsys, [*args, "--out", str(image_files)], "--out", image_files)


def test_cli_style_transfer_weights_with_random_vgg(capsys, image_files):
    garbage = image_files / "garbage.pth"
    args = ["style-transfer", "--random-vgg", "--vgg-weights", str(garbage), "--size", "16"]
    cli_error(capsys, [*args, "--out", str(image_files / "o.png")], garbage, "random_vgg")


def test_library_writes_under_a_file_or_onto_a_folder(tmp_path):
    from jaxunsup import plots

    afile = tmp_path / "afile"
    afile.write_text("keep me")
    with pytest.raises(ValueError) as err:
        plots.save_image(afile / "x.png", np.zeros((4, 4)))
    assert_clear(str(err.value), afile / "x.png", afile)
    with pytest.raises(ValueError, match="folder") as err:
        plots.save_image(tmp_path, np.zeros((4, 4)))
    assert afile.read_text() == "keep me"


# --- damaged checkpoints ------------------------------------------------------------------------
PARTS = ["array data", "ocdbt manifest", "tree metadata", "step metadata", "meta json"]


@pytest.mark.parametrize("how", ["flip", "truncate", "empty"])
@pytest.mark.parametrize("part", PARTS)
def test_damaged_checkpoint_is_refused_and_left_alone(tmp_path, trained, part, how):
    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    _damage(_step_file(workdir / "checkpoints" / "2", part), how)
    before = tree_digest(workdir)
    with pytest.raises(checkpoint.CorruptCheckpoint) as err:
        _fit(workdir, epochs=3)
    assert isinstance(err.value, ValueError)
    assert_clear(str(err.value), workdir / "checkpoints" / "2", "step 1", "new workdir")
    assert tree_digest(workdir) == before
    with pytest.raises(checkpoint.CorruptCheckpoint):
        checkpoint.restore(workdir / "checkpoints", _state())
    assert tree_digest(workdir) == before


def test_the_way_out_works(tmp_path, trained):
    """Following the message (moving the damaged step away) resumes from step 1 and ends
    with the parameters of an uninterrupted run."""
    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    _damage(_step_file(workdir / "checkpoints" / "2", "array data"), "flip")
    shutil.move(workdir / "checkpoints" / "2", tmp_path / "damaged_step_2")
    resumed, history = _fit(workdir, epochs=3)
    full, _ = _fit(tmp_path / "fresh", epochs=3)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    np.testing.assert_array_equal(resumed.params["w"], full.params["w"])


def test_unverified_damaged_checkpoint_translated_without_stray_tracebacks(
    tmp_path, trained, capfd
):
    """A step without digests (a save killed between orbax's commit and the digests) is read
    by orbax; its errors become CorruptCheckpoint, and no "Event loop is closed" traceback
    follows (orbax's loop used to close under reads still in flight, about one run in three)."""
    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    step_dir = workdir / "checkpoints" / "2"
    (step_dir / checkpoint.DIGEST_FILE).unlink()
    _damage(_step_file(step_dir, "array data"), "flip")
    before = tree_digest(workdir)
    for _ in range(5):
        with pytest.raises(checkpoint.CorruptCheckpoint) as err:
            _fit(workdir, epochs=3)
        assert_clear(str(err.value), step_dir, "orbax cannot read it")
    time.sleep(0.5)  # callbacks of reads still in flight would print by now
    assert "Event loop" not in capfd.readouterr().err
    assert tree_digest(workdir) == before


_KILLED_RUN = """
import os, signal, sys
import numpy as np
sys.path.insert(0, {tests!r})
from jaxunsup import checkpoint
import test_bad_inputs as t

digests = checkpoint._file_digests
def killing(step_dir):  # SIGKILL after orbax commits step 2, before its digests are written
    if step_dir.name == "2" and os.environ.get("KILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    return digests(step_dir)
checkpoint._file_digests = killing
state, _ = t._fit(sys.argv[1], epochs=4)
np.save(sys.argv[1] + "_w.npy", np.asarray(state.params["w"]))
"""


def test_sigkill_between_commit_and_digests_resumes_bit_identical(tmp_path):
    """A run killed mid-save (orbax's step committed, its digests not yet written) resumes
    from that unverified step: the same parameters, bit for bit, and one row per epoch."""
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN.format(tests=str(Path(__file__).parent)))
    workdir = tmp_path / "w"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    killed = subprocess.run([sys.executable, script, workdir], env={**env, "KILL": "1"},
                            capture_output=True, timeout=300)  # fmt: skip
    assert killed.returncode == -9
    assert not (workdir / "checkpoints" / "2" / checkpoint.DIGEST_FILE).exists()
    resumed = subprocess.run([sys.executable, script, workdir], env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    full, _ = _fit(tmp_path / "full", epochs=4)
    np.testing.assert_array_equal(np.load(f"{workdir}_w.npy"), np.asarray(full.params["w"]))
    rows = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").open()]
    assert rows == [1, 2, 3, 4]


def test_cli_ctrl_c_exits_cleanly_with_intact_checkpoints(tmp_path):
    """Ctrl-C during training (a save included): exit 130, one line on stderr and no
    traceback, every checkpoint intact (a save in progress finishes first)."""
    folder = _mnist_npz(tmp_path / "data").parent
    workdir = tmp_path / "w"
    args = [sys.executable, "-m", "jaxunsup", "run", "ae-stacked", "--workdir", str(workdir),
            "--data-dir", str(folder), "--source", "npz", "--epochs", "1000",
            "--checkpoint-every", "1", "--batch-size", "20"]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics, start = workdir / "metrics.jsonl", time.monotonic()
    while not (metrics.exists() and metrics.stat().st_size) and time.monotonic() - start < 240:
        time.sleep(0.05)
    time.sleep(0.3)  # epochs of 10 steps: a save is often in flight
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err[-2000:]
    messages = [line for line in err.splitlines() if not line.startswith("[")]  # epoch lines
    assert messages == ["jaxunsup: interrupted; run the same command again to resume"], err
    for step in checkpoint.steps_on_disk(workdir / "checkpoints"):  # none if before the first
        assert (workdir / "checkpoints" / str(step) / checkpoint.DIGEST_FILE).exists()
        checkpoint.verify(workdir / "checkpoints", step)


def test_reproduce_names_a_user_error_without_traceback(tmp_path, trained, capsys):
    """`reproduce` goes on past a failed experiment; a user's error is one clear line."""
    shutil.copytree(trained, tmp_path / "ae-stacked")
    _damage(_step_file(tmp_path / "ae-stacked" / "checkpoints" / "2", "meta json"), "empty")
    before = tree_digest(tmp_path / "ae-stacked")
    assert cli.main(["reproduce", "--workdir", str(tmp_path), "--only", "ae-stacked"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("jaxunsup: ae-stacked failed"))
    assert_clear(line, tmp_path / "ae-stacked" / "checkpoints" / "2")
    assert tree_digest(tmp_path / "ae-stacked") == before
    assert json.loads((tmp_path / "results.json").read_text())["ae-stacked"]["status"] == "failed"


def test_checkpoint_of_another_model(tmp_path, trained):
    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    with pytest.raises(checkpoint.CorruptCheckpoint, match="does not fit this model") as err:
        _fit(workdir, epochs=3, state=_state(width=4))
    assert_clear(str(err.value), workdir / "checkpoints" / "2", "config.json")


def test_cli_damaged_checkpoint_whole_process(tmp_path, trained):
    """The CLI in its own process, resuming a workdir whose newest checkpoint is damaged:
    exit 2, a two-line message naming the checkpoint and nothing else on stderr (no
    traceback, at exit either), the workdir unchanged. The check runs before the experiment
    writes anything, so any model's checkpoints serve (the tiny linear problem's here)."""
    folder = _mnist_npz(tmp_path / "data").parent
    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    _damage(_step_file(workdir / "checkpoints" / "2", "ocdbt manifest"), "flip")
    before = tree_digest(workdir)
    args = [sys.executable, "-m", "jaxunsup", "run", "ae-stacked", "--workdir", str(workdir),
            "--data-dir", str(folder), "--source", "npz", "--epochs", "3"]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert_clear(done.stderr, "jaxunsup: error:", workdir / "checkpoints" / "2", "step 1")
    assert tree_digest(workdir) == before


def test_metrics_torn_last_line_resumes_other_damage_is_named(tmp_path, trained):
    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    metrics = workdir / "metrics.jsonl"
    good = metrics.read_text()
    metrics.write_text(good + '{"epoch": 3, "lo')  # a kill during epoch 3's append
    _, history = _fit(workdir, epochs=3)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2, 3]
    shutil.rmtree(workdir)
    shutil.copytree(trained, workdir)
    metrics.write_text("garbage\n" + good)
    before = tree_digest(workdir)
    with pytest.raises(ValueError, match="line 1") as err:
        _fit(workdir, epochs=3)
    assert_clear(str(err.value), metrics, "new workdir")
    assert tree_digest(workdir) == before


def test_damaged_config_json_is_named(tmp_path):
    (tmp_path / "config.json").write_text('{"channels": 16,')
    with pytest.raises(ValueError, match="not valid JSON") as err:
        ae_conv.restore(tmp_path)
    assert_clear(str(err.value), tmp_path / "config.json")


def test_damaged_saved_pytree(tmp_path):
    path = checkpoint.save_pytree(tmp_path / "params", {"w": jnp.arange(4.0)})
    np.testing.assert_array_equal(checkpoint.load_pytree(path)["w"], np.arange(4.0))
    _damage(max((path / "d").iterdir(), key=lambda p: p.stat().st_size), "flip")
    before = tree_digest(tmp_path)
    with pytest.raises(checkpoint.CorruptCheckpoint) as err:
        checkpoint.load_pytree(path, {"w": jnp.zeros(4)})
    assert_clear(str(err.value), path, "new workdir")
    assert tree_digest(tmp_path) == before


# --- damaged mnist.npz --------------------------------------------------------------------------
def _npz_variants(folder: Path) -> dict[str, Path]:
    good = _mnist_npz(folder / "good").read_bytes()
    out = {}
    for name, raw in {
        "garbage": b"hello, not a zip",
        "truncated": good[: len(good) // 2],
        "flipped": good[:400] + bytes([good[400] ^ 0xFF]) + good[401:],
        "empty": b"",
    }.items():
        (folder / name).mkdir()
        (folder / name / "mnist.npz").write_bytes(raw)
        out[name] = folder / name / "mnist.npz"
    (folder / "npy").mkdir()
    with open(folder / "npy" / "mnist.npz", "wb") as f:  # an .npy under the .npz name
        np.save(f, np.zeros((3, 28, 28), np.uint8))
    out["npy"] = folder / "npy" / "mnist.npz"
    return out


def test_damaged_mnist_npz(tmp_path, capsys):
    for name, path in _npz_variants(tmp_path).items():
        with pytest.raises(ValueError) as err:
            data.load_mnist("train", source="npz", data_dir=path.parent)
        assert_clear(str(err.value), path)
        assert "pickle" not in str(err.value), name
    workdir = tmp_path / "run"
    path = tmp_path / "truncated" / "mnist.npz"
    args = ["run", "ae-stacked", "--workdir", str(workdir), "--data-dir", str(path.parent)]
    err = cli_error(capsys, [*args, "--source", "npz"], path)
    assert "BadZipFile" not in err and not workdir.exists()


def test_data_dir_that_a_source_would_ignore(capsys, tmp_path):
    with pytest.raises(ValueError, match="embedded") as err:
        data.load_mnist("train", source="embedded", data_dir=tmp_path)
    assert_clear(str(err.value), "data_dir", tmp_path)
    workdir = tmp_path / "run"
    args = ["run", "deep-kmeans", "--preset", "quick", "--workdir", str(workdir)]
    cli_error(capsys, [*args, "--data-dir", str(tmp_path)], "data_dir", "source")
    assert not workdir.exists()


# --- create_state and encode check their input against the Config / the model ----------------
def test_vae_create_state_refuses_other_channels(key):
    with pytest.raises(ValueError, match="channels") as err:
        vae.create_state(key, vae.Config(), jnp.zeros((1, 32, 32, 3)))  # default channels (1, ...)
    assert_clear(str(err.value), "example", "(1, 32, 32, 3)")
    with pytest.raises(ValueError, match="square"):
        vae.create_state(key, vae.Config(), jnp.zeros((1, 28, 20, 1)))
    state = vae.create_state(key, vae.Config(channels=(3, 8, 16)), jnp.zeros((1, 32, 32, 3)))
    assert vae.encode(state, np.zeros((2, 32, 32, 3)))[0].shape == (2, 2)


@pytest.mark.parametrize(
    "create",
    [lambda k, x: ae_conv.create_state(k, ae_conv.ConvConfig(), x),
     lambda k, x: ae_keras.create_state(k, ae_keras.KerasMLPConfig(), x),
     lambda k, x: ae_keras.create_state(k, ae_keras.KerasCNNConfig(), x),
     lambda k, x: deep_kmeans.create_state(k, deep_kmeans.Config(), x)],
    ids=["ae-conv", "keras-mlp", "keras-cnn", "deep-kmeans"],
)  # fmt: skip
def test_create_state_refuses_an_example_its_model_cannot_take(key, create):
    for bad in (jnp.zeros((1, 32, 32, 1)), jnp.zeros((1, 28, 28, 3)), jnp.zeros((28, 28, 1))):
        with pytest.raises(ValueError, match="28×28×1") as err:
            create(key, bad)
        assert_clear(str(err.value), "example", tuple(bad.shape))


def test_stacked_create_state_needs_nhwc(key):
    with pytest.raises(ValueError, match="NHWC") as err:
        autoencoder.create_state(key, autoencoder.StackedConfig(), jnp.zeros((1, 784)))
    assert_clear(str(err.value), "example")


def test_encode_and_decode_refuse_wrong_shapes(key):
    state = vae.create_state(key, vae.Config(), jnp.zeros((1, 28, 28, 1)))
    for fn in (vae.encode, vae.reconstruct, functools.partial(vae.elbo, key=key)):
        with pytest.raises(ValueError, match="28×28×1") as err:
            fn(state, np.zeros((2, 32, 32, 1)))
        assert_clear(str(err.value), "images", "(2, 32, 32, 1)")
    with pytest.raises(ValueError, match="latents") as err:
        vae.decode(state, np.zeros((2, 5)))
    assert_clear(str(err.value), "z", "(2, 5)")
    conv = ae_conv.create_state(key, ae_conv.ConvConfig(), jnp.zeros((1, 28, 28, 1)))
    for fn in (ae_conv.encode, ae_conv.reconstruct):
        with pytest.raises(ValueError, match="28×28×1") as err:
            fn(conv, np.zeros((2, 28, 28, 3)))
        assert_clear(str(err.value), "images", "(2, 28, 28, 3)")
    with pytest.raises(ValueError, match="codes") as err:
        ae_conv.decode(conv, np.zeros((2, 7)))
    assert_clear(str(err.value), "codes", "(2, 7)")
    assert ae_conv.decode(conv, np.zeros((2, 10))).shape == (2, 28, 28, 1)


def test_gan_vgg_augment_and_blobs_refuse_wrong_inputs(key):
    from jaxunsup import augment, basics, gan

    g = gan.create_state(key, gan.GANConfig()).g
    with pytest.raises(ValueError, match="generator") as err:
        gan.generate(g, np.zeros((2, 7)))  # the MLP GAN's latent is 128
    assert_clear(str(err.value), "z", "(2, 7)")
    assert gan.generate(g, np.zeros((2, 128))).shape == (2, 28, 28, 1)
    params = vgg.init_vgg19(0, ("conv_1",))
    with pytest.raises(ValueError, match="RGB") as err:
        vgg.features(params, jnp.zeros((1, 8, 8, 1)), ("conv_1",))
    assert_clear(str(err.value), "images", "(1, 8, 8, 1)")
    with pytest.raises(ValueError, match="B, H, W, C") as err:
        augment.random_affine(jnp.zeros((2, 8, 8)), key)
    assert_clear(str(err.value), "images")
    state = basics.create_state(key, basics.BlobsConfig())
    with pytest.raises(ValueError, match="NaN") as err:
        basics.train(state, np.full((8, 2), np.nan), np.zeros(8), epochs=2, verbose=False)
    assert_clear(str(err.value), "train points")


# --- non-finite data and starting points --------------------------------------------------------
def test_fit_refuses_nan_data_before_compiling(tmp_path, key, compile_counter):
    x, y = _problem()
    x[3, 1] = np.nan
    with compile_counter, pytest.raises(ValueError, match="NaN") as err:
        training.fit(_state(), _step, (x, y), key=key, epochs=1, batch_size=8, workdir=tmp_path)
    assert compile_counter.count == 0
    assert_clear(str(err.value), "data[0]")
    assert not isinstance(err.value, training.TrainingDiverged)
    assert not (tmp_path / "checkpoints").exists()
    images = np.full((16, 28, 28, 1), np.inf, np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        training.fit(_state(), _step, images, key=key, epochs=1, batch_size=8)


def _quadratic(x):
    return jnp.sum(x**2), 2 * x, {}


def test_lbfgs_refuses_a_non_finite_start():
    for bad in (jnp.array([1.0, jnp.nan]), {"a": np.array([np.inf, 0.0], np.float32)}):
        with pytest.raises(ValueError, match="x0") as err:
            lbfgs.minimize(_quadratic, bad)
        assert_clear(str(err.value), "x0", "finite")
    with pytest.raises(ValueError, match="floating"):
        lbfgs.minimize(_quadratic, jnp.array([1, 2]))
    np.testing.assert_allclose(lbfgs.minimize(_quadratic, jnp.ones(3)).x, 0.0, atol=1e-6)


# --- every flag of every experiment -------------------------------------------------------------
def test_every_config_rejects_a_bad_number_before_writing(capsys, tmp_path):
    """A zero or negative count and a NaN rate for each experiment: exit 2, the flag named,
    nothing written (a sample of the flag checks that must keep holding)."""
    bad = {"epochs": "0", "batch_size": "-3", "lr": "nan"}
    for name, exp in cli.EXPERIMENTS.items():
        fields = {f.name for f in dataclasses.fields(exp.config)}
        for field, value in bad.items():
            if field not in fields:
                continue
            workdir = tmp_path / f"{name}-{field}"
            flag = f"--{field.replace('_', '-')}"
            err = cli_error(capsys, ["run", name, "--workdir", str(workdir), flag, value], field)
            assert not workdir.exists(), (name, field, err)


def test_message_helper_rejects_long_or_traceback_messages():
    """The checks above can fail: a third line, a traceback or a missing name is caught."""
    for message, names in (("a\nb\nc", ()), ("Traceback (most recent call last):", ()),
                           ("x" * 500, ()), ("lr must be positive", ("batch_size",))):  # fmt: skip
        with pytest.raises(AssertionError):
            assert_clear(message, *names)
    assert_clear("lr must be a positive number, got nan", "lr")
