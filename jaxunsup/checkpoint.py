"""Checkpoints: the only module that imports orbax (its API changes between releases).

A checkpoint directory holds numbered steps (one per saved epoch), each written atomically by
orbax (temporary directory, then rename), so an interrupted save never replaces a good one.
Each step holds a pytree (a train state, or anything of arrays) and a small JSON `meta` dict.

Once orbax has committed a step, `save` adds the SHA-256 of each of the step's files
(`DIGEST_FILE`). `restore` checks them before orbax reads anything, so a damaged checkpoint is
refused with `CorruptCheckpoint` naming the step and the way out (an older step, or a new
workdir), and nothing in the directory is touched. A step with no digests (a save killed
between orbax's commit and the digests) is read by orbax, whose errors are translated.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import jax
import numpy as np

DIGEST_FILE = "jaxunsup_sha256.json"


class CorruptCheckpoint(ValueError):
    """A checkpoint step's files differ from what was saved, or orbax cannot read them."""


def _ocp():
    import orbax.checkpoint as ocp  # heavy import, kept lazy

    return ocp


def _run_draining(coro):
    """orbax's run-in-a-fresh-loop, except that the loop's unfinished tasks are awaited before
    it closes. When one of several concurrent reads fails, orbax closed the loop under the
    others; their tensorstore callbacks then printed "Event loop is closed" tracebacks later."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        pending = asyncio.all_tasks(loop)
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()


@contextlib.contextmanager
def _draining_loops():
    """Runs orbax's synchronous calls through `_run_draining` (where this orbax has the hook)."""
    try:
        from orbax.checkpoint._src import asyncio_utils
    except ImportError:
        asyncio_utils = None
    original = getattr(asyncio_utils, "_run_sync_via_new_loop", None)
    if original is None:
        yield
        return
    asyncio_utils._run_sync_via_new_loop = _run_draining
    try:
        yield
    finally:
        asyncio_utils._run_sync_via_new_loop = original


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C during a save takes effect once the save is done (as KeyboardInterrupt): an
    interrupted orbax save leaves its writer thread running while Python shuts down, which
    then prints tracebacks. Only the main thread can do this; elsewhere it is a no-op."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _file_digests(step_dir: Path) -> dict[str, str]:
    """{path relative to `step_dir`: sha256} for every file of a step but the digest file."""
    out = {}
    for path in sorted(step_dir.rglob("*")):
        if path.is_file() and path.name != DIGEST_FILE:
            with open(path, "rb") as f:
                out[path.relative_to(step_dir).as_posix()] = hashlib.file_digest(
                    f, "sha256"
                ).hexdigest()
    return out


def _damage(step_dir: Path) -> str | None:
    """What is wrong with a step's files (None: they match their digests, or have none)."""
    if not step_dir.is_dir():
        return "it is not a folder"
    digest_path = step_dir / DIGEST_FILE
    if not digest_path.exists():
        return None
    try:
        expected = json.loads(digest_path.read_text())
        assert isinstance(expected, dict)
    except (ValueError, AssertionError, UnicodeDecodeError):
        return f"{DIGEST_FILE} is unreadable"
    for name, digest in expected.items():
        path = step_dir / name
        if not path.is_file():
            return f"{name} is missing"
        with open(path, "rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != digest:
                return f"{name} changed since it was saved"
    return None


def steps_on_disk(directory: str | os.PathLike) -> list[int]:
    """The committed steps in `directory` (orbax renames a finished step to its number)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir())


def _refusal(directory: Path, step: int, problem: str) -> CorruptCheckpoint:
    older = [s for s in steps_on_disk(directory) if s < step]
    way_out = (
        f"move that folder out of {directory} to resume from step {older[-1]}, or use a new workdir"
        if older
        else "move it away to start over, or use a new workdir"
    )
    return CorruptCheckpoint(
        f"checkpoint {directory / str(step)} is unusable ({problem});\n{way_out}"
    )


def verify(directory: str | os.PathLike, step: int | None = None) -> None:
    """Checks step `step` (default: the newest on disk) of `directory` against its digests,
    without orbax; raises CorruptCheckpoint naming the step and the way out. No checkpoint
    (or no directory) passes."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CorruptCheckpoint(
            f"{directory} is a file where a checkpoint folder belongs;\n"
            "move it away, or use a new workdir"
        )
    steps = steps_on_disk(directory)
    step = steps[-1] if step is None and steps else step
    if step is None or int(step) not in steps:
        return
    problem = _damage(directory / str(int(step)))
    if problem:
        raise _refusal(directory, int(step), problem)


def _manager(directory: str | os.PathLike, max_to_keep: int | None = 3):
    ocp = _ocp()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def _abstract(target: Any) -> Any:
    def spec(x):  # a jax.Array target keeps its sharding: a checkpoint saved on any
        # number of devices is restored onto the target's devices (a mesh, or one device)
        sharding = x.sharding if isinstance(x, jax.Array) else None
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)

    return jax.tree.map(lambda x: spec(x) if hasattr(x, "dtype") else x, target)


def save(
    directory: str | os.PathLike,
    step: int,
    tree: Any,
    meta: dict | None = None,
    max_to_keep: int | None = 3,
) -> None:
    """Saves `tree` (and the JSON-able `meta`) as checkpoint `step` in `directory`."""
    from jaxunsup.files import atomic_write_bytes

    with _interrupts_deferred():  # the first save also imports orbax: an import cut short
        ocp = _ocp()  # by Ctrl-C can leave Python to die by SIGINT at exit (code -2)
    with _interrupts_deferred(), _draining_loops(), _manager(directory, max_to_keep) as mngr:
        mngr.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta or {})
            ),
            force=True,
        )
        mngr.wait_until_finished()
        step_dir = Path(directory).absolute() / str(int(step))
        atomic_write_bytes(step_dir / DIGEST_FILE, json.dumps(_file_digests(step_dir)).encode())


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
      CorruptCheckpoint: the step's files differ from what was saved, or orbax cannot read
        them into `target` (another model's checkpoint); the message names the way out.
    """
    ocp = _ocp()
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory!s}")
    with _manager(directory) as mngr:
        step = mngr.latest_step() if step is None else int(step)
        if step is None or step not in mngr.all_steps():
            raise FileNotFoundError(
                f"no checkpoint{'' if step is None else f' for step {step}'} in {directory!s}; "
                f"available steps: {sorted(mngr.all_steps())}"
            )
    verify(directory, step)  # before orbax reads the step
    try:
        with _draining_loops(), _manager(directory) as mngr:
            out = mngr.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(_abstract(target)), meta=ocp.args.JsonRestore()
                ),
            )
    except Exception as err:  # orbax and tensorstore raise many types; all mean "unusable"
        raise _unreadable(directory, step, err) from err
    if not isinstance(out["meta"] or {}, dict):
        raise _refusal(directory, step, "its meta is not a JSON object")
    return out["state"], dict(out["meta"] or {})


def _unreadable(directory: Path, step: int, err: Exception) -> CorruptCheckpoint:
    reason = " ".join(str(err).split())[:120]
    if (directory / str(step) / DIGEST_FILE).exists():  # intact files: another model's state
        return CorruptCheckpoint(
            f"checkpoint {directory / str(step)} does not fit this model ({reason});\n"
            "resume with the settings it was saved with (config.json), or use a new workdir"
        )
    return _refusal(directory, step, f"orbax cannot read it: {reason}")


def save_pytree(path: str | os.PathLike, tree: Any) -> Path:
    """Saves a pytree of arrays (e.g. trained params) to `path` (a directory), atomically,
    with the SHA-256 of its files (checked by `load_pytree`)."""
    from jaxunsup.files import atomic_write_bytes

    ocp = _ocp()
    path = Path(path).absolute()
    with _draining_loops(), ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, tree, force=True)
        ckptr.wait_until_finished()
    atomic_write_bytes(path / DIGEST_FILE, json.dumps(_file_digests(path)).encode())
    return path


def load_pytree(path: str | os.PathLike, target: Any = None) -> Any:
    """Loads a pytree saved by `save_pytree`; `target` (optional) gives structure and dtypes.

    Raises:
      FileNotFoundError: nothing at `path`.
      CorruptCheckpoint: its files differ from what was saved, or orbax cannot read them.
    """
    ocp = _ocp()
    path = Path(path).absolute()
    if not path.exists():
        raise FileNotFoundError(f"no saved pytree at {path!s}; save one with save_pytree first")
    problem = _damage(path)
    if problem is None:
        try:
            with _draining_loops(), ocp.StandardCheckpointer() as ckptr:
                return ckptr.restore(path, None if target is None else _abstract(target))
        except Exception as err:  # orbax and tensorstore raise many types
            problem = f"orbax cannot read it: {' '.join(str(err).split())[:120]}"
    raise CorruptCheckpoint(
        f"saved pytree {path} is unusable ({problem});\n"
        "remove it (the run that wrote it makes it again), or use a new workdir"
    )
