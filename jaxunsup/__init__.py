"""jaxunsup: classic unsupervised learning in JAX/Flax, verified against PyTorch.

Imports no torch, no matplotlib and no orbax: those load only where they are used. Nor does it
change any JAX setting; `jaxunsup.enable_compilation_cache()` keeps compiled programs on disk
for the next run (the CLI does so by default; see `jaxunsup.cache`).
"""

from jaxunsup.cache import enable_compilation_cache

__version__ = "0.1.0"
__all__ = ["enable_compilation_cache"]
