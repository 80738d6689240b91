"""Scale-out on JAX's own engine: a data mesh over devices and hosts.

- `make_mesh(devices)`: a one-axis `Mesh` named "data" over the first `devices` devices (or
  "all"), with GSPMD-style (Auto) axes, so model code needs no sharding annotations.
  `training.fit(..., mesh=)` shards every batch over it, keeps parameters and optimiser
  state replicated (`NamedSharding`), and lets XLA insert the gradient all-reduce.
- `initialize(...)`: `jax.distributed.initialize` from arguments or the environment
  (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`), so one command runs on
  several hosts; each process then feeds its own rows (`put_rows`), and only process 0
  writes files (`is_main_process`, asked by `files.atomic_write_bytes`).
- `set_default_devices` is what the CLI's `--devices` sets: `fit` calls without a mesh use it.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA = "data"
ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_default_devices: int | str = 1


def parse_devices(value: int | str) -> int | str:
    """`--devices` as given: a positive int, or "all"; a clear error otherwise."""
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ValueError(f"devices must be a positive integer or 'all', got {value!r}")


def make_mesh(devices: int | str | None) -> Mesh | None:
    """A mesh with one "data" axis over `devices` devices ("all": every device of every
    process); None for one device in one process (the plain single-device program)."""
    devices = 1 if devices is None else parse_devices(devices)
    available = jax.devices()
    n = len(available) if devices == "all" else devices
    if n > len(available):
        raise ValueError(
            f"devices={n}, but JAX sees {len(available)} device(s) here; pass --devices "
            f"{len(available)} or all"
        )
    if jax.process_count() > 1 and n != len(available):
        raise ValueError(
            f"devices={n} with {jax.process_count()} processes: use every device (--devices all)"
        )
    if n == 1 and jax.process_count() == 1:
        return None
    return Mesh(np.asarray(available[:n]), (DATA,), axis_types=(AxisType.Auto,))


def one_device_mesh() -> Mesh:
    """A "data" mesh of this process's first device (shard_map code on one device)."""
    return Mesh(np.asarray(jax.local_devices()[:1]), (DATA,), axis_types=(AxisType.Auto,))


def set_default_devices(devices: int | str) -> None:
    """The devices `training.fit` uses when it is given no mesh (the CLI's `--devices`)."""
    global _default_devices
    make_mesh(devices)  # refuse a count the machine cannot give, now
    _default_devices = parse_devices(devices)


def default_mesh() -> Mesh | None:
    return make_mesh(_default_devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def rows(mesh: Mesh) -> NamedSharding:
    """The leading axis split over the "data" axis."""
    return NamedSharding(mesh, PartitionSpec(DATA))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """`tree` on every device of `mesh` (each process passes the same host values)."""
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(x):  # several processes: built from each process's (equal) host copy
        if not isinstance(x, jax.Array | np.ndarray | np.generic):
            return x
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            raw = jax.make_array_from_process_local_data(
                sharding, np.asarray(jax.random.key_data(x))
            )
            return jax.random.wrap_key_data(raw, impl=jax.random.key_impl(x))
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(one, tree)


def process_rows(n: int) -> slice:
    """This process's contiguous share of `n` rows (equal shares; `n` divides evenly)."""
    share = n // jax.process_count()
    return slice(jax.process_index() * share, (jax.process_index() + 1) * share)


def put_rows(data: Any, mesh: Mesh) -> Any:
    """The dataset (every process holds all of it) placed for data-parallel epochs: one
    process keeps a copy on every device (batches are cut from it locally, no data moves);
    with several processes each feeds only its own rows, sharded over "data", and the data is
    cut to a multiple of the device count."""
    if jax.process_count() == 1:
        return jax.device_put(data, replicated(mesh))
    n = int(jax.tree.leaves(data)[0].shape[0]) // mesh.size * mesh.size
    local = process_rows(n)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(
            rows(mesh), np.asarray(x)[:n][local], (n, *np.shape(x)[1:])
        ),
        data,
    )


def to_host(tree: Any) -> Any:
    """NumPy copies of (replicated or local) arrays, in any process."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))  # replicated: every copy is the value
        return np.asarray(x)

    return jax.tree.map(one, tree)


def is_main_process() -> bool:
    """Whether this process writes files (process 0, or the only one)."""
    from jaxunsup.files import writes_files

    return writes_files()


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout_s: int = 300,
) -> bool:
    """Joins a multi-process run via `jax.distributed.initialize`, from the arguments or the
    environment (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`); does
    nothing (returns False) when neither names a coordinator. Call it before any JAX
    computation."""
    coordinator = coordinator or os.environ.get(ENV[0]) or None
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise ValueError(
                "num_processes/process_id need a coordinator (--coordinator HOST:PORT)"
            )
        return False
    num_processes = _env_int("num_processes", num_processes, ENV[1])
    process_id = _env_int("process_id", process_id, ENV[2])
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id {process_id} must be in [0, num_processes={num_processes})")
    if ":" not in coordinator:
        raise ValueError(f"coordinator {coordinator!r} must be HOST:PORT (e.g. 10.0.0.1:1234)")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
        initialization_timeout=timeout_s,
    )  # fmt: skip
    return True


def _env_int(name: str, value: int | None, env: str) -> int:
    text = value if value is not None else os.environ.get(env)
    if text is None:
        raise ValueError(f"{name} is needed with a coordinator: pass --{name.replace('_', '-')} "
                         f"or set {env}")  # fmt: skip
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None
