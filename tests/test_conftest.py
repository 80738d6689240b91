import jax
import jax.numpy as jnp
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
