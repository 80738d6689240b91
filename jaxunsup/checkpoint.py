"""Checkpoints: the only module that imports orbax (its API changes between releases).

A checkpoint directory holds numbered steps (one per saved epoch), each written atomically by
orbax (temporary directory, then rename), so an interrupted save never replaces a good one.
Each step holds a pytree (a train state, or anything of arrays) and a small JSON `meta` dict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np


def _ocp():
    import orbax.checkpoint as ocp  # heavy import, kept lazy

    return ocp


def _manager(directory: str | os.PathLike, max_to_keep: int | None = 3):
    ocp = _ocp()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def _abstract(target: Any) -> Any:
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype) if hasattr(x, "dtype") else x,
        target,
    )


def save(
    directory: str | os.PathLike,
    step: int,
    tree: Any,
    meta: dict | None = None,
    max_to_keep: int | None = 3,
) -> None:
    """Saves `tree` (and the JSON-able `meta`) as checkpoint `step` in `directory`."""
    ocp = _ocp()
    with _manager(directory, max_to_keep) as mngr:
        mngr.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta or {})
            ),
            force=True,
        )
        mngr.wait_until_finished()


def latest_step(directory: str | os.PathLike) -> int | None:
    """The newest complete checkpoint step in `directory`, or None when there is none."""
    if not Path(directory).is_dir():
        return None
    with _manager(directory) as mngr:
        return mngr.latest_step()


def restore(directory: str | os.PathLike, target: Any, step: int | None = None) -> tuple[Any, dict]:
    """Restores checkpoint `step` (default: the latest) into the structure of `target`.

    Args:
      directory: the checkpoint directory given to `save`.
      target: a pytree with the same structure, shapes and dtypes (e.g. a freshly created
        train state); only its structure is used.
      step: which checkpoint; None means the latest.

    Returns:
      (tree, meta).

    Raises:
      FileNotFoundError: no checkpoint in `directory` (or not that step).
    """
    ocp = _ocp()
    if not Path(directory).is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory!s}")
    with _manager(directory) as mngr:
        step = mngr.latest_step() if step is None else int(step)
        if step is None or step not in mngr.all_steps():
            raise FileNotFoundError(
                f"no checkpoint{'' if step is None else f' for step {step}'} in {directory!s}; "
                f"available steps: {sorted(mngr.all_steps())}"
            )
        out = mngr.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(target)), meta=ocp.args.JsonRestore()
            ),
        )
    return out["state"], dict(out["meta"] or {})


def save_pytree(path: str | os.PathLike, tree: Any) -> Path:
    """Saves a pytree of arrays (e.g. trained params) to `path` (a directory), atomically."""
    ocp = _ocp()
    path = Path(path).absolute()
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, tree, force=True)
        ckptr.wait_until_finished()
    return path


def load_pytree(path: str | os.PathLike, target: Any = None) -> Any:
    """Loads a pytree saved by `save_pytree`; `target` (optional) gives structure and dtypes."""
    ocp = _ocp()
    path = Path(path).absolute()
    if not path.exists():
        raise FileNotFoundError(f"no saved pytree at {path!s}; save one with save_pytree first")
    with ocp.StandardCheckpointer() as ckptr:
        if target is None:
            return ckptr.restore(path)
        return ckptr.restore(path, _abstract(target))
