"""The parity tests' precision policy (`parity.device.full_float32`), set once at collection,
as `python -m parity` sets it: JAX's products at "highest" precision, torch's TF32 off."""

import os

# On a GPU each pytest worker would otherwise preallocate 75 % of its memory (before jax loads).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
try:
    from parity import device
except ImportError:  # no torch: every parity test file skips itself
    pass
else:
    device.full_float32()
