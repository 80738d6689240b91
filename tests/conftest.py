"""Shared test fixtures: strict rank promotion, a `key`, and a compile counter."""

import contextlib

import jax
import jax.monitoring
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

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
