"""JAX's persistent compilation cache, in a per-user folder keyed by the host CPU.

Most of a short run's start-up is XLA compiling the same small programs again; JAX can keep
them on disk (`jax_compilation_cache_dir`) and load them on the next run. The CLI turns this
on by default; the library changes no JAX setting on import, and a library user turns it on
with one line:

    import jaxunsup
    jaxunsup.enable_compilation_cache()  # ~/.cache/jaxunsup/xla/<host>, or $JAXUNSUP_CACHE_DIR

Where: `$JAXUNSUP_CACHE_DIR` if set (an empty value or "off" disables the cache), else
`$XDG_CACHE_HOME/jaxunsup/xla`, else `~/.cache/jaxunsup/xla`; entries go into a subfolder named
by the host (`host_key`). Deleting the folder is always safe.

Why the host subfolder: a cached CPU executable is machine code for the CPU that compiled it.
JAX's cache key hashes the program, jaxlib's version, the platform ("cpu"), XLA flags, the
compile options and the device topology's fingerprint; in jaxlib 0.10 that fingerprint
includes XLA:CPU's target-machine options (changing `--xla_cpu_max_isa` changes it), but older
jaxlibs (which `pyproject.toml` admits) and the fallback when a backend cannot fingerprint its
topology hash only the device kind, "cpu". A folder per CPU model and feature set means a
cache in a shared or synced home directory never hands one machine's AVX-512 code to another.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

ENV = "JAXUNSUP_CACHE_DIR"
MAX_ENV = "JAXUNSUP_CACHE_MAX_BYTES"  # -1: unbounded and unlocked (one process at a time)
MAX_BYTES = 2 * 1024**3  # the folder's default bound (the whole test suite leaves ~65 MB)


def max_bytes() -> int:
    """The cache folder's bound: `$JAXUNSUP_CACHE_MAX_BYTES`, else `MAX_BYTES`."""
    value = os.environ.get(MAX_ENV, "").strip()
    try:
        return int(value) if value else MAX_BYTES
    except ValueError:
        raise ValueError(
            f"{MAX_ENV} must be a whole number of bytes or -1, got {value!r}"
        ) from None


_OFF = ("", "off")


def _cpuinfo() -> dict[str, str]:
    """The first value of each field of /proc/cpuinfo (empty where there is none)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, sep, value = line.partition(":")
                if sep:
                    info.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return info


def host_key() -> str:
    """A short name for this host's CPU, e.g. "linux-x86_64-3f9c0a1b2c4d": the system, the
    architecture and a hash of the CPU model name and its feature flags (/proc/cpuinfo on
    Linux; `platform.processor()` elsewhere)."""
    info = _cpuinfo()
    model = info.get("model name") or info.get("cpu model") or platform.processor()
    flags = info.get("flags") or info.get("Features") or ""
    digest = hashlib.sha256(f"{model}\n{flags}".encode()).hexdigest()[:12]
    return f"{platform.system().lower()}-{platform.machine().lower() or 'unknown'}-{digest}"


def default_cache_dir() -> Path | None:
    """The cache root before the host subfolder: `$JAXUNSUP_CACHE_DIR` (None when it is empty
    or "off"), else `$XDG_CACHE_HOME/jaxunsup/xla`, else `~/.cache/jaxunsup/xla`."""
    if ENV in os.environ:
        value = os.environ[ENV].strip()
        return None if value.lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxunsup" / "xla"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turns on JAX's persistent compilation cache for this process.

    Args:
      path: the cache root; None means `default_cache_dir()`. Entries go into its `host_key()`
        subfolder. "off" (or an unset root, `$JAXUNSUP_CACHE_DIR=off`) leaves the cache off.

    Returns:
      The folder that receives the entries, or None when the cache stays off.

    Every compiled program is cached, however small or quick to compile (JAX's defaults keep
    only those that took over a second): most of these models' programs compile in 0.05-2 s.
    The folder is bounded (`max_bytes()`, least recently used entries go first), and every read
    and write holds JAX's file lock, so processes can share it; `$JAXUNSUP_CACHE_MAX_BYTES=-1`
    leaves it unbounded and unlocked, for a folder only one process uses at a time.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    bound = max_bytes()  # checked before any setting changes
    root = default_cache_dir() if path is None else Path(path)
    if root is None or str(root).strip().lower() in _OFF:
        return None
    folder = (root / host_key()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if jax.config.jax_compilation_cache_dir != str(folder):
        compilation_cache.reset_cache()  # a cache already opened elsewhere is let go
        jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    # A size bound turns on JAX's least-recently-used eviction, which holds a file lock around
    # every read and write of an entry: unbounded, an entry is written in place, and a process
    # that reads it mid-write (the test suite's workers, or two runs at once) deserializes a
    # torn executable. One worker of a second `make test` died so (a segfault in
    # `deserialize_executable`, the entry fine when read alone). The price: each new entry
    # lists the folder to evict, so a suite that compiles thousands of programs into one
    # folder slows down; the tests give each worker its own folder, unbounded (conftest.py).
    jax.config.update("jax_compilation_cache_max_size", bound)
    return folder
