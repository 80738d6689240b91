"""Multi-device checks, run by tests/test_scaleout.py in processes of their own (the device
count is fixed when JAX starts): `python tests/multidevice.py CHECK [ARGS]` prints one JSON
object. Checks:
- `dp`: ae-stacked, vae-z2, gan-mlp and deep-kmeans trained 20 steps on 1 device and on a
  mesh of every device, same key and global batch: the largest parameter difference; the
  compiled epoch's collectives.
- `resume BASE SAVE:LOAD ...`: one epoch saved on SAVE devices, restored and trained a
  second epoch on LOAD devices, against two epochs on SAVE devices.
- `process COORD N ID`: one of N processes under `jax.distributed` (N = 1 is the reference),
  training ae-stacked data-parallel over every device of every process.
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import autoencoder, data, deep_kmeans, distributed, gan, training, vae

STEPS, BATCH = 20, 16


def _images(n: int = STEPS * BATCH) -> np.ndarray:
    return data.load_mnist("train", source="embedded").images[:n]


def _setups():
    """name → (state factory, step, data): every model at its default Config."""
    x = _images()
    key = jax.random.key(0)
    dkm_cfg = deep_kmeans.Config(batch_size=BATCH)
    dkm_step = deep_kmeans.pretrain_step
    return {
        "ae-stacked": (
            lambda: autoencoder.create_state(key, autoencoder.StackedConfig(), jnp.asarray(x[:1])),
            autoencoder.train_step,
            x,
        ),
        "vae-z2": (
            lambda: vae.create_state(key, vae.Config(), jnp.asarray(x[:1])),
            vae.train_step,
            x,
        ),
        "gan-mlp": (lambda: gan.create_state(key, gan.GANConfig()), gan.train_step, x * 2 - 1),
        "deep-kmeans": (lambda: deep_kmeans.create_state(key, dkm_cfg, x[:1]), dkm_step, x),
    }


def _fit(state, step, x, mesh, epochs=1, workdir=None):
    return training.fit(
        state, step, x, key=jax.random.key(1), epochs=epochs, batch_size=BATCH, mesh=mesh,
        workdir=workdir, verbose=False, progress=False,
    ).state  # fmt: skip


def _max_diff(a, b) -> float:
    leaves = jax.tree.leaves(distributed.to_host(a)), jax.tree.leaves(distributed.to_host(b))
    pairs = zip(*leaves, strict=True)
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)), initial=0)) for u, v in pairs)


def _collectives(mesh, state, step, x) -> dict:
    state = distributed.replicate(state, mesh)
    keys = distributed.replicate(tuple(jax.random.split(jax.random.key(1))), mesh)
    args = (state, distributed.put_rows(x, mesh), keys[0], np.int32(1), np.int32(0), keys[1])
    with jax.set_mesh(mesh):
        text = (
            training._run_chunk.lower(
                *args, train_step=step, batch_size=BATCH, n_steps=STEPS,
                batch_sharding=distributed.rows(mesh),
            ).compile().as_text()
        )  # fmt: skip
    return {"all-reduce": text.count("all-reduce("), "all-gather": text.count("all-gather(")}


def check_dp() -> dict:
    mesh = distributed.make_mesh("all")
    out = {"devices": jax.device_count()}
    for name, (make, step, x) in _setups().items():
        one = _fit(make(), step, x, None)
        many = _fit(make(), step, x, mesh)
        out[name] = {
            "max_diff": _max_diff(
                one.params if hasattr(one, "params") else one,
                many.params if hasattr(many, "params") else many,
            )
        }
        out[name].update(_collectives(mesh, make(), step, x))
    return out


def check_resumes(base: str, *pairs: str) -> dict:
    """`check_resume` for each "SAVE:LOAD" pair, in its own workdir under `base`."""
    out = {}
    for pair in pairs:
        save, load = pair.split(":")
        out[pair] = check_resume(f"{base}/{save}-{load}", save, load)
    return out


def check_resume(workdir: str, save_devices: str, load_devices: str) -> dict:
    make, step, x = _setups()["ae-stacked"]
    save_mesh, load_mesh = distributed.make_mesh(save_devices), distributed.make_mesh(load_devices)
    saved = _fit(make(), step, x, save_mesh, epochs=1, workdir=workdir)
    restored, _ = training.restore_latest(
        workdir, distributed.replicate(make(), load_mesh) if load_mesh else make()
    )
    resumed = _fit(make(), step, x, load_mesh, epochs=2, workdir=workdir)
    straight = _fit(make(), step, x, save_mesh, epochs=2)
    return {
        "restored_diff": _max_diff(restored.params, saved.params),
        "resumed_diff": _max_diff(resumed.params, straight.params),
        "restored_devices": len(jax.tree.leaves(restored.params)[0].sharding.device_set),
    }


def check_process(coordinator: str, n: int, process_id: int) -> dict:
    if n > 1:
        distributed.initialize(coordinator, n, process_id, timeout_s=60)
    make, step, x = _setups()["ae-stacked"]
    mesh = distributed.make_mesh("all")
    state = _fit(make(), step, x, mesh)
    leaves = [
        np.asarray(v).ravel()[:50].tolist()
        for v in jax.tree.leaves(distributed.to_host(state.params))
    ]
    out = {"processes": jax.process_count(), "devices": jax.device_count(), "params": leaves}
    if n > 1:
        jax.distributed.shutdown()
    return out


def check_kmeans() -> dict:
    """Sharded k-means against one device: N not divisible by the devices, weights, an
    emptied cluster; the sweep's collectives; k-means|| against k-means++ on blobs."""
    from sklearn.datasets import make_blobs

    from jaxunsup import kmeans, kmeans_sharded

    mesh = distributed.make_mesh("all")
    x, _ = make_blobs(1001, n_features=3, centers=5, random_state=0)
    x = x.astype(np.float32)
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(x)).astype(np.float32)
    init = x[[0, 1, 2, 3, 4]].copy()
    init[4] = 1e3  # far from every row: emptied in the first sweep, relocated
    out = {}
    for name, weight in (("unit", None), ("weighted", w)):
        one = kmeans.kmeans(0, x, 5, init=init, sample_weight=weight)
        many = kmeans_sharded.fit(0, x, 5, mesh=mesh, init=init, sample_weight=weight)
        out[name] = {
            "labels_equal": bool(np.array_equal(np.asarray(one.labels), np.asarray(many.labels))),
            "inertia": [float(one.inertia), float(many.inertia)],
            "centers_diff": float(np.abs(np.asarray(one.centers) - np.asarray(many.centers)).max()),
            "n_iter": [int(one.n_iter), int(many.n_iter)],
        }
    one = kmeans.kmeans(0, x[:1000], 5, init=init)
    sharded_x = jax.device_put(jnp.asarray(x[:1000]), distributed.rows(mesh))  # brings its mesh
    through_api = kmeans.kmeans(0, sharded_x, 5, init=init)
    facade = kmeans.KMeans(5, init=init, mesh=mesh).fit(x[:1000])
    out["api"] = {
        "labels_equal": bool(
            np.array_equal(np.asarray(one.labels), np.asarray(through_api.labels))
        ),
        "facade_equal": bool(np.array_equal(np.asarray(one.labels), facade.labels_)),
        "inertia": [float(one.inertia), float(through_api.inertia), float(facade.inertia_)],
    }
    xs, ws, valid = kmeans_sharded.place(x, np.ones(len(x), np.float32), mesh)
    c0 = jax.device_put(jnp.asarray(init), distributed.replicated(mesh))
    text = (
        kmeans_sharded.lloyd.lower(xs, ws, valid, c0, 1e-4, mesh=mesh, max_iter=10)
        .compile().as_text()
    )  # fmt: skip
    out["all-reduce"], out["all-gather"] = text.count("all-reduce("), text.count("all-gather(")
    xb, _ = make_blobs(20_000, n_features=8, centers=20, random_state=1)
    xb = xb.astype(np.float32)
    pp = kmeans.kmeans(1, xb, 20, n_init=1)
    par = kmeans_sharded.fit(1, xb, 20, mesh=mesh, init="k-means||")
    spp = kmeans_sharded.fit(1, xb, 20, mesh=mesh, init="k-means++")
    out["blobs"] = {"k-means++": float(pp.inertia), "k-means||": float(par.inertia),
                    "sharded k-means++": float(spp.inertia)}  # fmt: skip
    return out


if __name__ == "__main__":
    from jaxunsup import cache

    cache.enable_compilation_cache()  # the test session's ($JAXUNSUP_CACHE_DIR; "off": none)
    check, args = sys.argv[1], sys.argv[2:]
    if check == "dp":
        result = check_dp()
    elif check == "kmeans":
        result = check_kmeans()
    elif check == "resume":
        result = check_resumes(*args)
    else:
        result = check_process(args[0], int(args[1]), int(args[2]))
    print("RESULT " + json.dumps(result))
