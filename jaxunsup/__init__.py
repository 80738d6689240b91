"""jaxunsup: classic unsupervised learning in JAX/Flax, verified against PyTorch.

The public API is the package's modules (`jaxunsup.data`, `jaxunsup.training`,
`jaxunsup.autoencoder`, ...) and the scikit-learn-style estimators `KMeans` and
`MiniBatchKMeans`; each is imported on first use (`jaxunsup.training` works after a bare
`import jaxunsup`), so `import jaxunsup` loads no JAX, torch, matplotlib or orbax. Nor does it
change any JAX setting; `jaxunsup.enable_compilation_cache()` keeps compiled programs on disk
for the next run (the CLI does so by default; see `jaxunsup.cache`).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from jaxunsup.cache import enable_compilation_cache

__version__ = "0.1.0"

# The modules README's examples use, and the estimators: name → module that defines it.
_MODULES = ("data", "training", "autoencoder", "kmeans", "minibatch_kmeans", "metrics",
            "distributed", "checkpoint", "vae", "gan", "dcgan", "deep_kmeans", "basics",
            "style_transfer", "vgg", "lbfgs")  # fmt: skip
_NAMES = {"KMeans": "kmeans", "MiniBatchKMeans": "minibatch_kmeans"}

__all__ = ["enable_compilation_cache", *_MODULES, *_NAMES]


def __getattr__(name: str):
    """`jaxunsup.<module>` (any submodule) or one of `_NAMES`, imported on first access."""
    if name in _NAMES:
        value = getattr(importlib.import_module(f"jaxunsup.{_NAMES[name]}"), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"jaxunsup.{name}") is not None:
        value = importlib.import_module(f"jaxunsup.{name}")
    else:
        raise AttributeError(f"module 'jaxunsup' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *(m.name for m in pkgutil.iter_modules(__path__))})
