"""torch state_dict ↔ jaxunsup params.

Layer names follow one rule: the torch module path with dots replaced by underscores
(`encoder.0.weight` → `params["encoder_0"]["kernel"]`). Weights change layout:

| torch                            | flax                                            |
|----------------------------------|-------------------------------------------------|
| Linear.weight [out, in]          | Dense.kernel [in, out] (transpose)              |
| Conv2d.weight [O, I, kh, kw]     | Conv.kernel [kh, kw, I, O] (permute 2, 3, 1, 0)  |
| ConvTranspose2d.weight [I, O, ..]| ConvTranspose.kernel [kh, kw, O, I] (same perm.) |
| LayerNorm.weight / .bias         | LayerNorm.scale / .bias                         |

Both convolutions use the same permutation; with `transpose_kernel=True` flax flips the
kernel spatially and swaps its in/out axes itself, which is what torch's transposed
convolution computes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def torch_to_params(state_dict: Mapping, norm_layers: tuple[str, ...] = ()) -> dict:
    """Converts a torch `state_dict` into a flax params dict `{"params": {...}}`.

    Args:
      state_dict: torch parameter names → tensors (or arrays).
      norm_layers: torch module paths that are LayerNorms (their `weight` becomes `scale`).
    """
    params: dict = {}
    for name, value in state_dict.items():
        module, _, leaf = name.rpartition(".")
        if leaf in ("running_mean", "running_var", "num_batches_tracked"):
            raise ValueError(f"{name}: batch-norm statistics are not supported here")
        w = _to_numpy(value)
        if leaf == "weight" and module in norm_layers:
            leaf, out = "scale", w
        elif leaf == "weight" and w.ndim == 2:
            leaf, out = "kernel", w.T
        elif leaf == "weight" and w.ndim == 4:
            leaf, out = "kernel", w.transpose(2, 3, 1, 0)
        elif leaf in ("bias", "weight") and w.ndim == 1:
            out = w
        else:
            raise ValueError(f"{name}: cannot convert a tensor of shape {w.shape}")
        params.setdefault(module.replace(".", "_"), {})[leaf] = out
    return {"params": params}


def params_to_torch(params: Mapping, reference: Mapping) -> dict:
    """The inverse of `torch_to_params`: flax params (or grads) → {torch name: np.ndarray}.

    Args:
      params: `{"params": {...}}` as `torch_to_params` makes it (or the inner dict).
      reference: the torch `state_dict` (or its names → anything) whose names and order to use.
    """
    tree = params["params"] if "params" in params else params
    out = {}
    for name in reference:
        module, _, leaf = name.rpartition(".")
        leaves = tree[module.replace(".", "_")]
        if leaf == "weight":
            w = np.asarray(leaves["kernel"] if "kernel" in leaves else leaves["scale"])
            w = w.T if w.ndim == 2 else w.transpose(3, 2, 0, 1) if w.ndim == 4 else w
        else:
            w = np.asarray(leaves[leaf])
        out[name] = w
    return out
