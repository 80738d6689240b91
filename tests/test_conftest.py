import jax
import jax.numpy as jnp
import numpy as np
import pytest


def test_compile_counter_counts_new_shapes_only(compile_counter):
    f = jax.jit(lambda x: x * 2 + 1)
    a, b, c = jnp.ones(3), jnp.zeros(3), jnp.ones(4)
    with compile_counter:
        f(a)
        f(b)
    assert compile_counter.count == 1
    with compile_counter:
        f(c)
    assert compile_counter.count == 1


def test_rank_promotion_raises():
    with pytest.raises(ValueError):
        jnp.ones((3,)) + jnp.ones((2, 3))


def test_compile_counter_counts_a_program_loaded_from_the_persistent_cache(
    compile_counter, tmp_path
):
    """A warm persistent cache turns a compilation into a load; the counter counts either."""
    from jax.experimental.compilation_cache import compilation_cache

    from jaxunsup import cache

    session_dir = jax.config.jax_compilation_cache_dir
    f = jax.jit(lambda x: x * 3 - 2)
    x = np.ones(5, np.float32)  # a host array: no program of its own
    try:
        cache.enable_compilation_cache(tmp_path)
        with compile_counter:
            f(x).block_until_ready()  # compiled, written to tmp_path
        assert compile_counter.count == 1 and any(tmp_path.rglob("*-cache*"))
        jax.clear_caches()  # forget the in-memory executable: the next call reads the disk
        with compile_counter:
            f(x).block_until_ready()
        assert compile_counter.count == 1
    finally:
        compilation_cache.reset_cache()
        jax.config.update("jax_compilation_cache_dir", session_dir)
