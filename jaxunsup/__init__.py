"""jaxunsup: classic unsupervised learning in JAX/Flax, verified against PyTorch.

Imports no torch, no matplotlib and no orbax: those load only where they are used.
"""

__version__ = "0.1.0"
