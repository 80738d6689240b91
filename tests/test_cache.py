"""The persistent compilation cache (jaxunsup.cache, the CLI's flags) and a light start-up."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

from jaxunsup import autoencoder, cache, cli, data

_CACHE_HITS = "/jax/compilation_cache/cache_hits"


def _entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*-cache"))


def _run_cli(args: list[str], env_cache: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **{cache.ENV: env_cache})
    cmd = [sys.executable, "-m", "jaxunsup", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_the_cli_cache_setting_reaches_jax(tmp_path):
    """A run fills --cache-dir's host folder (the flag beats $JAXUNSUP_CACHE_DIR); with
    --no-cache the folder the environment names stays empty."""
    run = ["run", "blobs-classifier", "--epochs", "20", "--log-every", "10"]
    flag_dir, env_dir = tmp_path / "flag", tmp_path / "env"
    done = _run_cli([*run, "--workdir", str(tmp_path / "a"), "--cache-dir", str(flag_dir)],
                    env_cache=str(env_dir))  # fmt: skip
    assert done.returncode == 0, done.stderr
    entries = _entries(flag_dir)
    assert len(entries) >= 3, entries  # init, the training step, the evaluation, ...
    assert {p.parent.name for p in entries} == {cache.host_key()}
    assert not _entries(env_dir)
    done = _run_cli([*run, "--workdir", str(tmp_path / "b"), "--no-cache"], str(env_dir))
    assert done.returncode == 0, done.stderr
    assert not _entries(env_dir)
    assert json.loads((tmp_path / "b" / "results.json").read_text())  # it did run


def test_an_unusable_cache_folder_costs_a_one_line_notice(capsys, tmp_path):
    """The run goes on without the cache (and JAX keeps its setting)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = jax.config.jax_compilation_cache_dir
    cli._enable_cache(argparse.Namespace(no_cache=False, cache_dir=blocker / "cache"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compilation cache off" in err[0] and "--cache-dir" in err[0]
    assert jax.config.jax_compilation_cache_dir == before


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_cache_dir() == tmp_path / "xdg" / "jaxunsup" / "xla"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.default_cache_dir() == Path.home() / ".cache" / "jaxunsup" / "xla"
    monkeypatch.setenv(cache.ENV, str(tmp_path / "mine"))
    assert cache.default_cache_dir() == tmp_path / "mine"
    for off in ("", "off", "OFF"):
        monkeypatch.setenv(cache.ENV, off)
        assert cache.default_cache_dir() is None
        assert cache.enable_compilation_cache() is None
    assert cache.enable_compilation_cache("off") is None


def test_host_key_separates_cpu_feature_sets(monkeypatch):
    """Machine code compiled with AVX-512 must not reach a CPU without it: another folder."""
    avx512 = {"model name": "Some CPU", "flags": "fpu sse2 avx2 avx512f"}
    monkeypatch.setattr(cache, "_cpuinfo", lambda: dict(avx512))
    with_avx512 = cache.host_key()
    assert with_avx512 == cache.host_key()  # stable
    monkeypatch.setattr(cache, "_cpuinfo", lambda: {**avx512, "flags": "fpu sse2 avx2"})
    assert cache.host_key() != with_avx512
    monkeypatch.setattr(cache, "_cpuinfo", lambda: {**avx512, "model name": "Other CPU"})
    assert cache.host_key() != with_avx512


def _one_step(batch):
    """The stacked AE's training step on `batch` from a fresh state, compiled anew in this
    process (jax.clear_caches drops the in-memory executables), pulled to the host."""
    jax.clear_caches()
    cfg = autoencoder.StackedConfig()
    state = autoencoder.create_state(jax.random.key(0), cfg, batch)
    state, metrics = autoencoder.train_step(state, batch, jax.random.key(1))
    return jax.device_get((state.params, state.opt_state, metrics))


def test_a_cached_step_is_bit_identical_to_a_fresh_compile(tmp_path):
    batch = jnp.asarray(data.load_mnist("test", source="embedded").images[:16])
    session_dir = jax.config.jax_compilation_cache_dir
    hits = []

    def listener(event, **kwargs):
        if event == _CACHE_HITS:
            hits.append(event)

    jax.monitoring.register_event_listener(listener)
    try:
        compilation_cache.reset_cache()
        jax.config.update("jax_compilation_cache_dir", None)
        fresh = _one_step(batch)  # no persistent cache
        cache.enable_compilation_cache(tmp_path)
        written = _one_step(batch)  # compiled, written
        assert _entries(tmp_path) and not hits
        loaded = _one_step(batch)  # read back from disk
        assert hits, "the second step did not load from the persistent cache"
    finally:
        jax.monitoring.unregister_event_listener(listener)
        compilation_cache.reset_cache()
        jax.config.update("jax_compilation_cache_dir", session_dir)
    for other in (written, loaded):
        same = jax.tree.map(lambda a, b: np.array_equal(a, b, equal_nan=True), fresh, other)
        assert all(jax.tree.leaves(same))


def test_the_cache_is_bounded_and_every_entry_goes_through_the_file_lock(tmp_path, monkeypatch):
    """Processes share the folder: JAX locks reads and writes only when the cache is bounded
    (unbounded, a reader can load an entry another process is still writing)."""
    session_dir, session_max = (
        jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_max_size
    )  # fmt: skip
    monkeypatch.delenv(cache.MAX_ENV, raising=False)  # the user's default, not the suite's
    try:
        folder = cache.enable_compilation_cache(tmp_path)
        assert jax.config.jax_compilation_cache_max_size == cache.MAX_BYTES > 0
        jax.jit(lambda x: x * 5 + 1)(np.ones(7, np.float32)).block_until_ready()
        names = [p.name for p in folder.iterdir()]
        assert ".lockfile" in names  # the lock JAX's bounded cache takes
        assert any(n.endswith("-cache") for n in names) and any(n.endswith("-atime") for n in names)
        monkeypatch.setenv(cache.MAX_ENV, "-1")
        assert cache.max_bytes() == -1
        monkeypatch.setenv(cache.MAX_ENV, "lots")
        with pytest.raises(ValueError, match="JAXUNSUP_CACHE_MAX_BYTES must be a whole number"):
            cache.max_bytes()
    finally:
        compilation_cache.reset_cache()
        jax.config.update("jax_compilation_cache_max_size", session_max)
        jax.config.update("jax_compilation_cache_dir", session_dir)


def _probe(code: str) -> str:
    """The last line `code` prints in a fresh interpreter (no JAX cache variables set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("code", [
    "import jaxunsup",
    "from jaxunsup import cli; cli.main(['list'])",
    "from jaxunsup import cli; cli.main(['run', '--help'])",
])  # fmt: skip
def test_import_and_list_load_no_heavy_module(code):
    """`import jaxunsup`, `jaxunsup list` and `run --help` import neither matplotlib, torch
    nor orbax, nor even JAX: they start in a fraction of a second."""
    probe = (
        f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'matplotlib', 'torch', 'orbax', 'jax', 'flax', 'sklearn'}))\n"
    )
    assert _probe(probe) == "[]"


def test_importing_the_library_changes_no_jax_setting():
    probe = (
        "import jax, jaxunsup, jaxunsup.ae_conv, jaxunsup.latent_clustering, jaxunsup.registry\n"
        "c = jax.config\n"
        "print(c.jax_compilation_cache_dir, c.jax_persistent_cache_min_compile_time_secs)\n"
    )
    assert _probe(probe) == "None 1.0"


def test_a_bad_cache_bound_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(cache.MAX_ENV, "lots")
    before = jax.config.jax_compilation_cache_dir
    argv = ["run", "kmeans-circles", "--workdir", str(tmp_path / "w"), "--cache-dir", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "JAXUNSUP_CACHE_MAX_BYTES must be a whole number of bytes or -1" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "w").exists()
    assert jax.config.jax_compilation_cache_dir == before  # refused before any setting changed
