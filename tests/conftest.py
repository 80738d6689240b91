"""Shared test fixtures: strict rank promotion, the precision policy, a `key`, a compile
counter, and the session's compilation-cache setting."""

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


_OURS = "_JAXUNSUP_TEST_CACHE"  # set when the folder below is the suite's choice, not the user's


def pytest_configure(config):
    """The session's persistent compilation cache: `$JAXUNSUP_CACHE_DIR` if the user set it
    ("off" disables it), else the clone's own `.pytest_cache/jaxunsup-xla/<xdist worker>`.
    Each worker has its own folder, which its in-process CLI runs and the subprocesses it
    starts (one at a time; they inherit the variables) share, unbounded: no two processes use
    one folder at once, so JAX's lock and its per-entry folder scan are not needed
    (`cache.max_bytes`). A second `make test` on the same clone loads what the first compiled;
    a fresh clone starts empty. Tests of the cache pass their own folders."""
    if cache.ENV not in os.environ or os.environ.get(_OURS) == "1":
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        os.environ[cache.ENV] = str(config.rootpath / ".pytest_cache" / "jaxunsup-xla" / worker)
        os.environ[_OURS] = "1"
        os.environ.setdefault(cache.MAX_ENV, "-1")
    cache.enable_compilation_cache()


_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def key():
    return jax.random.key(0)


class CompileCounter:
    """Counts XLA backend compilations inside a `with counter:` block. JAX records one for a
    program loaded from the persistent cache too, so a warm cache leaves the counts alone."""

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
