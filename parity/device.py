"""Where the torch references run, and the float32 policy every parity check runs under.

Device rule: the torch side runs on the device JAX runs on, so a GPU run compares cuDNN with
cuDNN: CUDA when JAX's default backend is a GPU and this torch sees one, else the CPU (a CPU
torch next to a GPU JAX, or the reverse, keeps the CPU for torch). Every check builds its
torch models and tensors there (`tensor`, `module`) and brings results back with `numpy`.

Precision policy (docs/DESIGN.md): parity compares full float32 products, so
`full_float32()` sets JAX's default matmul precision to "highest" for the whole process and
turns torch's TF32 off. `python -m parity` and `parity/conftest.py` call it once, before any
check runs; a check never flips these global flags itself.
"""

from __future__ import annotations

import jax
import numpy as np
import torch

from jaxunsup import backend


def torch_device() -> torch.device:
    """CUDA when JAX's default backend is a GPU and torch sees one, else the CPU."""
    use_cuda = backend.platform() == "gpu" and torch.cuda.is_available()
    return torch.device("cuda" if use_cuda else "cpu")


def tensor(x, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A NumPy/JAX array (or number list) as a torch tensor on `torch_device()` (a copy)."""
    t = torch.from_numpy(np.array(x, order="C"))  # a C-ordered copy: torch may write into it
    return t.to(torch_device(), dtype=dtype)


def module(m: torch.nn.Module) -> torch.nn.Module:
    """`m` moved to `torch_device()` (in place, as `Module.to` does)."""
    return m.to(torch_device())


def numpy(t: torch.Tensor) -> np.ndarray:
    """A copy of a torch tensor's values on the host (on the CPU `.numpy()` alone would share
    the tensor's memory, which an in-place op such as the VGG's ReLU then overwrites)."""
    return t.detach().cpu().numpy().copy()


def full_float32() -> None:
    """The parity precision policy, set once for the process: JAX's matrix products and
    convolutions at "highest" precision, torch's TF32 off (matmul and cuDNN)."""
    jax.config.update("jax_default_matmul_precision", "highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def describe() -> str:
    """One line naming both sides' devices and precision, for the table's header."""
    dev = jax.devices()[0]
    t_dev = torch_device()
    t_name = torch.cuda.get_device_name(t_dev) if t_dev.type == "cuda" else "CPU"
    precision = jax.config.jax_default_matmul_precision or "default"
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    return (
        f"jax {jax.__version__} on {dev.platform}:{dev.device_kind} (matmul precision "
        f"{precision}); torch {torch.__version__} on {t_dev.type}:{t_name} "
        f"(TF32 {'on' if tf32 else 'off'})"
    )
