"""Shared test fixtures: strict rank promotion, the precision policy, a `key`, a compile
counter, and one persistent compilation cache for the session."""

import contextlib
import os

# On a GPU each pytest worker would otherwise preallocate 75 % of its memory (before jax loads).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.monitoring  # noqa: E402
import pytest  # noqa: E402

from jaxunsup import cache  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
# The precision policy (DESIGN.md): tests compare at full float32, never TF32 / bf16 passes.
jax.config.update("jax_default_matmul_precision", "highest")


def pytest_configure(config):
    """One persistent compilation cache for the session: `.pytest_cache/d/jax-compilation-cache`
    (its `<host>` subfolder), shared by the xdist workers, so a second `make test` loads what
    the first compiled; a fresh clone starts empty. $JAXUNSUP_CACHE_DIR, when set, names
    another folder or "off". The variable is set for the session, so the CLI run in-process
    and the tests' subprocesses use the same folder."""
    if cache.ENV not in os.environ:
        store = getattr(config, "cache", None)  # None under `-p no:cacheprovider`
        root = store.mkdir("jax-compilation-cache") if store else cache.default_cache_dir()
        os.environ[cache.ENV] = str(root)
    cache.enable_compilation_cache()


_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def key():
    return jax.random.key(0)


class CompileCounter:
    """Counts XLA backend compilations inside a `with counter:` block."""

    def __init__(self):
        self.count = 0
        self._active = False

    def _listener(self, event, duration_secs, **kwargs):
        if self._active and event == _BACKEND_COMPILE_EVENT:
            self.count += 1

    def __enter__(self):
        self.count = 0
        self._active = True
        return self

    def __exit__(self, *exc):
        self._active = False
        return False


@pytest.fixture
def compile_counter():
    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter._listener)
    try:
        yield counter
    finally:
        with contextlib.suppress(Exception):
            jax.monitoring.unregister_event_duration_listener(counter._listener)
