"""The one backend test behind which every CPU-only path sits.

jaxunsup's default is the plain JAX program: XLA's own convolutions, whole batches, one
compiled loop. A few paths were measured faster on XLA:CPU only (DESIGN.md, "CPU-only
paths"); each of them asks `on_cpu()` here, and nothing else, whether to take its CPU form.
Tests monkeypatch `platform` to check that an accelerator gets the plain path everywhere.
"""

from __future__ import annotations

import jax


def platform() -> str:
    """The platform of JAX's default backend: "cpu", "gpu" or "tpu"."""
    return jax.default_backend()


def on_cpu() -> bool:
    """Whether the CPU-only paths apply (JAX's default backend is the CPU)."""
    return platform() == "cpu"


def on_mesh() -> bool:
    """Whether JAX traces under a device mesh (`training.fit` over several devices): the
    CPU-only batch tricks (micro-batches, evaluation in parts) then step aside."""
    return not jax.sharding.get_abstract_mesh().empty
