"""Small file helpers shared by every experiment: atomic writes, JSON, workdir setup."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def writes_files() -> bool:
    """Whether this process writes files: the only process, or process 0 of a multi-process
    run (`jaxunsup.distributed`); the others compute the same numbers and write nothing."""
    jax = sys.modules.get("jax")  # no JAX loaded yet: a single process
    return jax is None or jax.process_index() == 0


def _umask() -> int:
    """The process's umask: Linux reports it in /proc; elsewhere reading it means setting it
    (set back at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` through a temporary file and a rename, so a crash
    never leaves a half-written file behind; the file gets the mode `open` would give
    (0666 less the umask). Only `writes_files()` processes write."""
    path = Path(path)
    if not writes_files():
        return path
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; pass a file path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"cannot write {path}: {parent} is a file; pass a path in a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide a served report
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # NumPy / JAX scalars and arrays
        return obj.tolist()
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically writes `obj` (dicts, lists, dataclasses, arrays, scalars) as JSON."""
    text = json.dumps(_to_jsonable(obj), indent=2, sort_keys=False)
    return atomic_write_bytes(path, (text + "\n").encode())


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> Path:
    """`rows` as JSON lines (metrics.jsonl), written atomically."""
    return atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in `path`; a damaged file raises ValueError naming it (not json's bare
    "Expecting value: line 1 column 1")."""
    try:
        return json.loads(Path(path).read_bytes().decode())
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise ValueError(
            f"{path} is not valid JSON (damaged?); restore or remove it, or use a new workdir"
        ) from err


def check_workdir(workdir: str | os.PathLike, name: str = "workdir") -> Path:
    """`workdir` as a Path; raises ValueError naming `name` when it, or a folder above it, is a
    file (it need not exist: the run creates it)."""
    workdir = Path(workdir)
    for path in (workdir, *workdir.parents):
        if path.exists() and not path.is_dir():
            where = "is a file" if path == workdir else f"lies under the file {path}"
            raise ValueError(
                f"{name} {workdir} {where}, not a folder; pass a folder path (it is created if new)"
            )
    return workdir


def check_output_file(path: str | os.PathLike, name: str) -> Path:
    """`path` as a Path; raises ValueError naming `name` when it is a folder or lies under a
    file, so a command fails before its work rather than when it writes the result."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} {path} is a folder; pass a file path such as {path / 'out.png'}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{name} {path} lies under the file {parent}; pass a path in a folder")
    return path


def prepare_workdir(workdir: str | os.PathLike, cfg: Any) -> Path:
    """Creates `workdir` and records the experiment's config in `config.json`; a file in the
    way, or a damaged checkpoint to resume from, is refused before anything is written."""
    from jaxunsup import checkpoint

    workdir = check_workdir(workdir)
    checkpoint.verify(workdir / "checkpoints")
    if writes_files():
        workdir.mkdir(parents=True, exist_ok=True)
    write_json(workdir / "config.json", cfg)
    return workdir


def user_message(err: BaseException) -> str:
    """`err` as the command line prints it: its own message, or, for an operating-system error
    raised inside a library (permission denied, disk full), the file, the reason and the fix."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}; check the path and its permissions"
    return str(err)
