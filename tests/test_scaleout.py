"""Data parallelism on JAX's sharding: 8 host devices against 1, checkpoints across device
counts, and two processes under `jax.distributed` against one. Each check runs
`tests/multidevice.py` in a process of its own (the device count is fixed at JAX's start)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxunsup import cache, distributed

SCRIPT = Path(__file__).with_name("multidevice.py")


def _run(args, devices: int, timeout: int = 600, **popen) -> subprocess.Popen:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    if args[0] == "process":  # processes that run at once: not on the worker's cache folder
        env[cache.ENV] = "off"
    env.pop("JAX_NUM_CPU_DEVICES", None)
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, args)], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen,
    )  # fmt: skip


def _result(proc: subprocess.Popen, timeout: int = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module")
def dp():
    return _result(_run(["dp"], 8))


@pytest.mark.parametrize("name", ["ae-stacked", "vae-z2", "gan-mlp", "deep-kmeans"])
def test_eight_devices_train_what_one_device_trains(dp, name):
    assert dp["devices"] == 8
    assert dp[name]["max_diff"] < 1e-5  # 20 steps, same key and global batch


@pytest.mark.parametrize("name", ["ae-stacked", "vae-z2", "deep-kmeans"])
def test_the_compiled_epoch_all_reduces_gradients_and_gathers_no_data(dp, name):
    assert dp[name]["all-reduce"] >= 1 and dp[name]["all-gather"] == 0


def test_the_gan_step_gathers_only_its_joint_discriminator_batch(dp):
    """D sees real and fake rows as one [2B] batch (post 000's single D forward), so each
    step gathers the two image halves once; the gradients still take one all-reduce (why not
    a [2, B] stack: DESIGN.md, data parallelism)."""
    assert dp["gan-mlp"]["all-reduce"] >= 1 and dp["gan-mlp"]["all-gather"] <= 2


@pytest.fixture(scope="module")
def resumes(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    return _result(_run(["resume", base, "8:2", "1:8", "8:1"], 8))


@pytest.mark.parametrize("pair", ["8:2", "1:8", "8:1"])
def test_a_checkpoint_resumes_on_another_device_count(resumes, pair):
    result = resumes[pair]
    assert result["restored_diff"] == 0.0  # bit-exact, onto the new devices
    assert result["restored_devices"] == int(pair.split(":")[1])
    assert result["resumed_diff"] < 1e-5  # the second epoch as if never interrupted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_what_one_process_trains():
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = [_run(["process", coordinator, 2, i], 2) for i in (0, 1)]
    results = [_result(p, timeout=300) for p in procs]
    reference = _result(_run(["process", "none", 1, 0], 4))
    assert [r["processes"] for r in results] == [2, 2] and reference["processes"] == 1
    assert results[0]["devices"] == results[1]["devices"] == reference["devices"] == 4
    for ours in results:
        for a, b in zip(ours["params"], reference["params"], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_device_counts_and_process_settings_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="devices must be a positive integer or 'all'"):
        distributed.parse_devices("two")
    with pytest.raises(ValueError, match="JAX sees 1 device"):
        distributed.make_mesh(4)
    assert distributed.make_mesh(1) is None and distributed.make_mesh("all") is None
    for var in distributed.ENV:
        monkeypatch.delenv(var, raising=False)
    assert distributed.initialize() is False  # no coordinator: a single process
    with pytest.raises(ValueError, match="--coordinator"):
        distributed.initialize(process_id=1)
    with pytest.raises(ValueError, match="num_processes is needed"):
        distributed.initialize("127.0.0.1:1234")
    with pytest.raises(ValueError, match="process_id 2 must be in"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(ValueError, match="HOST:PORT"):
        distributed.initialize("localhost", 2, 0)


def test_the_cli_trains_over_every_device_as_on_one(tmp_path):
    """`jaxunsup run ... --devices all` on 2 host devices: the same epoch losses as on one."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    losses = {}
    for devices in ("1", "all"):
        workdir = tmp_path / devices
        cmd = [sys.executable, "-m", "jaxunsup", "run", "ae-stacked", "--workdir", str(workdir),
               "--epochs", "1", "--devices", devices]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
        losses[devices] = [r["loss"] for r in rows]
    assert len(losses["1"]) == 1
    np.testing.assert_allclose(losses["all"], losses["1"], rtol=1e-5)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--devices", "4"], "JAX sees 1 device(s) here; pass --devices 1 or all"),
        (["--devices", "0"], "devices must be a positive integer or 'all'"),
        (["--process-id", "1"], "--coordinator HOST:PORT"),
    ],
)
def test_the_cli_refuses_bad_scale_flags_in_one_line(tmp_path, capsys, flags, message):
    from jaxunsup import cli

    argv = ["run", "ae-stacked", "--workdir", str(tmp_path / "w"), "--epochs", "1", *flags]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def sharded_kmeans():
    return _result(_run(["kmeans"], 8))


@pytest.mark.parametrize("weights", ["unit", "weighted"])
def test_kmeans_on_eight_devices_is_one_devices_fit(sharded_kmeans, weights):
    """1,001 rows (7 padding rows on 8 devices), one centre emptied and relocated."""
    result = sharded_kmeans[weights]
    assert result["labels_equal"]
    np.testing.assert_allclose(*result["inertia"], rtol=1e-5)
    assert result["centers_diff"] < 1e-4 and result["n_iter"][0] == result["n_iter"][1]


def test_the_kmeans_sweep_sums_over_devices_and_gathers_no_data(sharded_kmeans):
    assert sharded_kmeans["all-reduce"] >= 1 and sharded_kmeans["all-gather"] == 0


def test_kmeans_parallel_init_is_as_good_as_kmeans_plusplus(sharded_kmeans):
    blobs = sharded_kmeans["blobs"]
    assert blobs["k-means||"] <= 1.05 * blobs["k-means++"]
    np.testing.assert_allclose(blobs["sharded k-means++"], blobs["k-means++"], rtol=0.05)


def test_kmeans_and_the_estimator_take_a_sharded_array_or_a_mesh(sharded_kmeans):
    api = sharded_kmeans["api"]
    assert api["labels_equal"] and api["facade_equal"]
    np.testing.assert_allclose(api["inertia"][1:], [api["inertia"][0]] * 2, rtol=1e-5)


def test_kmeans_parallel_init_on_one_device():
    from sklearn.datasets import make_blobs

    from jaxunsup.kmeans import KMeans, kmeans

    x, _ = make_blobs(3000, n_features=5, centers=8, random_state=2)
    x = x.astype(np.float32)
    plus = min(float(kmeans(s, x, 8).inertia) for s in range(3))
    fitted = KMeans(8, init="k-means||", random_state=0).fit(x)
    assert fitted.cluster_centers_.shape == (8, 5) and fitted.inertia_ <= 1.05 * plus
    with pytest.raises(ValueError, match="dense X without seed_compat"):
        kmeans(0, x, 8, init="k-means||", seed_compat=True)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        kmeans(0, x, 8, init="k-means||")
