"""Seeds as an axis (jaxunsup/seeds.py): S stacked models trained by one vmapped step give,
seed by seed, what S single-seed runs with seeds s, s+1, ... give."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import ae_conv, ae_denoising, autoencoder, cli, data, seeds, training, vae

STEPS, BATCH = 10, 32


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist("train", source="embedded"), data.load_mnist("test", source="embedded")


def _small(mnist, n_train: int, n_test: int):
    train, test = mnist
    return (
        train._replace(images=train.images[:n_train], labels=train.labels[:n_train]),
        test._replace(images=test.images[:n_test], labels=test.labels[:n_test]),
    )


def _fit(seed: int, n_seeds: int, images, epochs: int = 2, mesh=None):
    key_init, key_fit = seeds.split(seeds.keys(seed, n_seeds))
    cfg = autoencoder.StackedConfig(lr=1e-3)
    state = autoencoder.create_states(
        autoencoder.create_state, key_init, cfg, jnp.asarray(images[:1])
    )
    return training.fit(
        state, seeds.step_for(autoencoder.train_step, state), images, key=key_fit,
        epochs=epochs, batch_size=BATCH, verbose=False, progress=False, mesh=mesh,
    )  # fmt: skip


def _max_diff(a, b) -> float:
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)))


def test_stacked_fit_trains_each_seed_as_its_own_run(mnist):
    images = mnist[0].images[: STEPS * BATCH]
    stacked = _fit(5, 3, images)
    assert seeds.count(stacked.state) == 3
    assert jax.tree.leaves(stacked.state.params)[0].shape[0] == 3
    for i in range(3):
        single = _fit(5 + i, 1, images)
        assert seeds.count(single.state) is None
        assert _max_diff(seeds.unstack(stacked.state.params, i), single.state.params) < 1e-5
        for row, one in zip(stacked.history, single.history, strict=True):
            assert row["loss_per_seed"][i] == pytest.approx(one["loss"], abs=1e-5)
    last = stacked.history[-1]
    assert last["loss"] == pytest.approx(np.mean(last["loss_per_seed"]), abs=1e-7)
    # the seeds differ: another init and another batch order each
    assert (
        _max_diff(seeds.unstack(stacked.state.params, 0), seeds.unstack(stacked.state, 1).params)
        > 1e-3
    )


def test_the_stacked_step_compiles_once(mnist, compile_counter):
    images = jnp.asarray(mnist[0].images[: 3 * BATCH].reshape(BATCH, 3, 28, 28, 1).swapaxes(0, 1))
    key_init, key_step = seeds.split(seeds.keys(0, 3))
    cfg = autoencoder.StackedConfig(lr=1e-3)
    state = autoencoder.create_states(autoencoder.create_state, key_init, cfg, images[0, :1])
    step = seeds.step_for(autoencoder.train_step, state)
    assert step is seeds.vmapped(autoencoder.train_step)  # one object: one jit cache entry
    state, first = step(state, images, key_step)
    with compile_counter:
        for _ in range(20):
            state, metrics = step(state, images, key_step)
    assert compile_counter.count == 0
    assert metrics["loss_per_seed"].shape == (3,)
    assert np.all(np.asarray(metrics["loss_per_seed"]) < np.asarray(first["loss_per_seed"]))


def test_conv_ae_with_three_seeds_reports_what_three_runs_report(tmp_path, mnist):
    small = _small(mnist, 200, 100)
    cfg = ae_conv.ConvConfig(epochs=1, batch_size=20, seed=3)
    stacked = ae_conv.run(dataclasses.replace(cfg, n_seeds=3), tmp_path / "s", data=small)
    assert stacked["seeds"] == [3, 4, 5]
    singles = []
    for i in range(3):
        one = ae_conv.run(dataclasses.replace(cfg, seed=3 + i), tmp_path / str(i), data=small)
        singles.append(one["test_mse"])
        assert stacked["train_loss_per_seed"][0][i] == pytest.approx(one["train_loss"][0], abs=1e-5)
    np.testing.assert_allclose(stacked["test_mse_per_seed"], singles, atol=1e-5)
    assert stacked["test_mse"] == pytest.approx(np.mean(singles), abs=1e-5)
    assert stacked["test_mse_std"] == pytest.approx(np.std(singles), abs=1e-5)
    assert stacked["stalled_seeds"] == [3 + i for i, v in enumerate(singles) if v > 0.1]
    rows = {row["metric"]: row["ours"] for row in stacked["table"]}
    assert rows["test MSE, mean/std over 3 seeds"] == pytest.approx(
        [np.mean(singles), np.std(singles)], abs=1e-4
    )
    assert rows["seeds stalled (test MSE > 0.1)"] == f"{len(stacked['stalled_seeds'])} of 3"
    assert len(stacked["clustering"]["latent_per_seed"]) == 3
    state, _ = ae_conv.restore(tmp_path / "s")
    assert seeds.count(state) == 3


def test_denoising_with_two_seeds_scores_each_seed_as_its_run(tmp_path, mnist):
    small = _small(mnist, 200, 50)
    cfg = ae_denoising.DenoisingConfig(epochs=1, batch_size=20, seed=1, n_train=200)
    stacked = ae_denoising.run(dataclasses.replace(cfg, n_seeds=2), tmp_path / "s", data=small)
    one = ae_denoising.run(cfg, tmp_path / "one", data=small)  # seed 1: the same noisy test set
    for name in ("test_mse", "test_mse_noisy"):
        assert stacked[f"{name}_per_seed"][0] == pytest.approx(one[name], abs=1e-5)
        assert stacked["baseline"][f"{name}_per_seed"][0] == pytest.approx(
            one["baseline"][name], abs=1e-5
        )
    rows = {row["metric"]: row["ours"] for row in stacked["table"]}
    assert rows["test MSE, noisy inputs, mean/std over 2 seeds"] == pytest.approx(
        seeds.mean_std(stacked["test_mse_noisy_per_seed"])
    )


def test_vae_with_two_seeds_reports_what_the_single_runs_report(tmp_path, mnist):
    small = _small(mnist, 200, 40)
    cfg = vae.Config(epochs=1, batch_size=20, iwae_images=10, iwae_samples=4, seed=1)
    stacked = vae.run(dataclasses.replace(cfg, n_seeds=2), tmp_path / "s", data=small)
    one = vae.run(dataclasses.replace(cfg, seed=2), tmp_path / "one", data=small)
    for name in ("test_loss", "test_nll_iwae", "test_loss_on_iwae_images"):
        assert stacked[f"{name}_per_seed"][1] == pytest.approx(one[name], rel=1e-5)
    assert stacked["train_loss_per_seed"][0][1] == pytest.approx(one["train_loss"][0], rel=1e-5)
    rows = [row["ours"] for row in stacked["table"]]
    assert rows[0] == seeds.mean_std(stacked["test_loss_per_seed"], 2)


def test_gan_with_two_seeds_reports_what_the_single_run_reports(tmp_path, capsys):
    def args(workdir, *more):
        return ["run", "gan-mlp", "--workdir", str(tmp_path / workdir), "--n-train", "200",
                "--epochs", "1", "--batch-size", "50", "--eval-samples", "100",
                "--epoch-eval-samples", "50", "--classifier-epochs", "1", "--source", "embedded",
                "--classifier-dir", str(tmp_path / "clf"), *more]  # fmt: skip

    assert cli.main(args("s", "--seed", "1", "--n-seeds", "2")) == 0
    stacked = json.loads((tmp_path / "s" / "results.json").read_text())
    assert stacked["seeds"] == [1, 2]
    for i in (0, 1):
        assert cli.main(args(str(i), "--seed", str(1 + i))) == 0
        one = json.loads((tmp_path / str(i) / "results.json").read_text())
        for name in ("d_loss", "g_loss"):
            assert stacked[f"{name}_per_seed"][0][i] == pytest.approx(one[name][0], abs=1e-5)
    # every seed is scored with seed 1's feature classifier (one yardstick), as run 0 is
    one = json.loads((tmp_path / "0" / "results.json").read_text())
    for name in ("fid", "label_entropy", "mean_pairwise_distance"):
        assert stacked["scores"][f"{name}_per_seed"][0] == pytest.approx(
            one["scores"][name], rel=1e-4, abs=1e-6
        )
    row = stacked["table"][1]
    assert row["metric"].endswith("mean/std over 2 seeds")
    assert row["ours"] == seeds.mean_std(stacked["scores"]["fid_per_seed"], 3)


def test_cli_n_seeds_trains_stacked_ae_like_single_runs(tmp_path, capsys):
    args = ["--epochs", "1", "--seed", "2", "--checkpoint-every", "1"]
    assert cli.main(["run", "ae-stacked", "--workdir", str(tmp_path / "s"), *args,
                     "--n-seeds", "2"]) == 0  # fmt: skip
    assert "test MSE, mean/std over 2 seeds" in capsys.readouterr().out
    stacked = json.loads((tmp_path / "s" / "results.json").read_text())
    assert json.loads((tmp_path / "s" / "config.json").read_text())["n_seeds"] == 2
    row = json.loads((tmp_path / "s" / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(row["loss_per_seed"]) == len(row["test_mse_per_seed"]) == 2
    args[3] = "3"
    assert cli.main(["run", "ae-stacked", "--workdir", str(tmp_path / "one"), *args]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert stacked["test_mse_per_seed"][1] == pytest.approx(one["test_mse"], abs=1e-5)
    state, cfg = autoencoder.restore(tmp_path / "s")
    assert cfg.n_seeds == 2 and seeds.count(state) == 2


def test_bad_n_seeds_is_refused_before_anything_is_written(tmp_path, capsys):
    assert cli.main(["run", "ae-stacked", "--workdir", str(tmp_path / "w"),
                     "--n-seeds", "0"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "n_seeds must be a positive integer" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_summary_is_mean_and_std_over_seeds():
    s = seeds.summary([0.1, 0.3])
    assert s == {"mean": pytest.approx(0.2), "std": pytest.approx(0.1), "per_seed": [0.1, 0.3]}
    assert seeds.mean_std([0.1, 0.3]) == [0.2, 0.1]


SCRIPT = """
import json, sys
import jax
from jaxunsup import data, distributed
sys.path.insert(0, "tests")
import test_seeds as t  # this file: its _fit and _max_diff
images = data.load_mnist("train", source="embedded").images[: t.STEPS * t.BATCH]
one = t._fit(0, 3, images, epochs=1)
mesh = t._fit(0, 3, images, epochs=1, mesh=distributed.make_mesh(8))
leaf = jax.tree.leaves(mesh.state.params)[0]
print("RESULT " + json.dumps({
    "diff": t._max_diff(one.state.params, jax.device_get(mesh.state.params)),
    "devices": len(leaf.sharding.device_set), "replicated": leaf.sharding.is_fully_replicated,
    "loss": [one.history[-1]["loss_per_seed"], mesh.history[-1]["loss_per_seed"]]}))
"""


def test_stacked_seeds_train_on_a_mesh_as_on_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env.pop("JAX_NUM_CPU_DEVICES", None)
    root = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root, text=True,
                          capture_output=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads([x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1][7:])
    assert out["devices"] == 8 and out["replicated"]  # the seed axis stays replicated
    assert out["diff"] < 1e-5
    np.testing.assert_allclose(out["loss"][0], out["loss"][1], atol=1e-6)
