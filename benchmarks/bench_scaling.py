"""Scale-out: one training step on 1, 2, 4, 8 devices; S vmapped seeds against S runs.

(a) Devices. The same epoch through `training.fit` (ae-stacked and vae-z2 at their default
Configs, one global batch for every device count, so the ideal step time on N devices is the
1-device time / N) on N = 1, 2, 4, 8 devices, each count in a process of its own: on a CPU
the devices are host devices (`--xla_force_host_platform_device_count=N`), threads of one
CPU, so this is an overhead and correctness check only; on a machine with accelerators, the
counts up to the devices it has. Each row: the best of 3 one-epoch fits after a warm-up fit,
ms per step, images/s, speed-up over 1 device and efficiency (speed-up / N).

(b) Seeds. S = 8 stacked AEs (ae-stacked, its default Config, batch 50) trained one epoch of
the embedded 4,000 digits as one vmapped program (`seeds.vmapped`), against the 8 single-seed
runs one after another; the same process, alternated, best of 3 each; the ratio is their
throughput ratio (the issue's goal: ≥ 1.5× on a CPU). Twice: with both programs compiled
(the steady state of a long run), and with each run creating its state(s) and compiling its
epoch (S separate runs compile S times, the stacked run once; best of 2).

`python benchmarks/bench.py scaling` (`--quick`: (a) on 1 and 2 devices, S = 4).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVICE_COUNTS = (1, 2, 4, 8)
GLOBAL_BATCH = {"ae-stacked": 400, "vae-z2": 128}  # divisible by 8
N_IMAGES = {"ae-stacked": 4000, "vae-z2": 1024}
REPEAT = 3


def _setup(name: str):
    """(state factory, step, images) of `name` at its default Config."""
    import jax
    import jax.numpy as jnp

    from jaxunsup import autoencoder, data, vae

    x = data.load_mnist("train", source="embedded").images[: N_IMAGES[name]]
    key = jax.random.key(0)
    if name == "ae-stacked":
        cfg = autoencoder.StackedConfig()
        return (
            lambda: autoencoder.create_state(key, cfg, jnp.asarray(x[:1])),
            autoencoder.train_step,
            x,
        )
    return lambda: vae.create_state(key, vae.Config(), jnp.asarray(x[:1])), vae.train_step, x


def _copy(tree):
    """A copy of a state for `fit`, which donates its state."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(jnp.copy, tree)


def _fit_seconds(state, step, x, batch_size: int, mesh, key=None) -> float:
    import jax

    from jaxunsup import training

    start = time.perf_counter()
    out = training.fit(
        state, step, x, key=jax.random.key(1) if key is None else key, epochs=1,
        batch_size=batch_size, mesh=mesh, verbose=False, progress=False,
    )  # fmt: skip
    jax.block_until_ready(out.state)
    return time.perf_counter() - start


def worker(devices: int) -> dict:
    """Seconds per step of each model on a mesh of `devices` (1: no mesh), best of REPEAT."""
    import jax

    from jaxunsup import distributed

    mesh = distributed.make_mesh(devices) if devices > 1 else None
    out = {"devices": devices, "platform": jax.devices()[0].platform}
    for name, batch in GLOBAL_BATCH.items():
        create, step, x = _setup(name)
        state = create()  # copies of one state: a new optimiser object would compile again
        _fit_seconds(_copy(state), step, x, batch, mesh)  # compile
        best = min(_fit_seconds(_copy(state), step, x, batch, mesh) for _ in range(REPEAT))
        out[name] = best / (len(x) // batch)
    return out


def _device_rows(counts) -> list[dict]:
    import jax

    on_cpu = jax.devices()[0].platform == "cpu"
    results = []
    for n in counts:
        env = dict(os.environ)
        env.pop("JAX_NUM_CPU_DEVICES", None)
        if on_cpu:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
        done = subprocess.run(
            [sys.executable, __file__, "worker", str(n)], env=env, cwd=ROOT, text=True,
            capture_output=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"bench_scaling worker on {n} devices failed:\n{done.stderr[-2000:]}"
            )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    rows = []
    for name, batch in GLOBAL_BATCH.items():
        one = results[0][name]
        for r in results:
            n = r["devices"]
            rows.append({
                "bench": "scaling", "impl": "jaxunsup", "part": "devices", "experiment": name,
                "devices": n, "device_kind": "host devices" if on_cpu else r["platform"],
                "batch_size": batch, "step_ms": round(1e3 * r[name], 3),
                "images_per_s": round(batch / r[name], 1), "speedup": round(one / r[name], 2),
                "efficiency": round(one / r[name] / n, 2),
            })  # fmt: skip
    return rows


def _seed_times(n_seeds: int, fresh: bool) -> dict[str, list[float]]:
    """Seconds of one epoch of S stacked seeds and of S single-seed runs, alternated, REPEAT
    times. `fresh`: each run also creates its state(s), whose new optimiser compiles its
    epoch again (as S separate runs do, without a persistent cache); else copies of states
    whose programs are compiled (the steady state)."""
    import jax.numpy as jnp

    from jaxunsup import autoencoder, data, seeds

    x = data.load_mnist("train", source="embedded").images
    cfg = autoencoder.StackedConfig()
    example = jnp.asarray(x[:1])

    def states(seed, n):
        key_init, key_fit = seeds.split(seeds.keys(seed, n))
        return autoencoder.create_states(autoencoder.create_state, key_init, cfg, example), key_fit

    made = {n: [states(s, n) for s in range(0, n_seeds, n)] for n in (1, n_seeds)}

    def run(n):  # n_seeds // n fits of n stacked seeds (n = 1: single-seed runs)
        start = time.perf_counter()
        for s, (state, key) in enumerate(made[n]):
            state, key = states(s * n, n) if fresh else (_copy(state), key)
            step = seeds.step_for(autoencoder.train_step, state)
            _fit_seconds(state, step, x, cfg.batch_size, None, key)
        return time.perf_counter() - start

    if not fresh:
        run(n_seeds), run(1)  # compile both
    times = {"vmapped": [], "sequential": []}
    for _ in range(2 if fresh else REPEAT):  # fresh runs: minutes of compiling, 2 suffice
        times["vmapped"].append(run(n_seeds))
        times["sequential"].append(run(1))
    return times


def _seed_rows(n_seeds: int) -> list[dict]:
    """S vmapped seeds of the stacked AE vs S sequential single-seed runs, one epoch each of
    the embedded 4,000 digits: compiled programs, and runs that create and compile."""
    rows = []
    images = n_seeds * (4000 // 50) * 50
    for fresh in (False, True):
        times = _seed_times(n_seeds, fresh)
        best = {k: min(v) for k, v in times.items()}
        rows += [
            {"bench": "scaling", "impl": f"jaxunsup {impl}", "part": "seeds",
             "experiment": "ae-stacked", "n_seeds": n_seeds, "epochs": 1,
             "timed": "create + compile + epoch" if fresh else "epoch (compiled)",
             "images": images, "batch_size": 50, "seconds": round(t, 3),
             "images_per_s": round(images / t, 1),
             "throughput_ratio_vmapped_over_sequential": round(
                 best["sequential"] / best["vmapped"], 2),
             "all_seconds": [round(s, 3) for s in times[impl]]}
            for impl, t in best.items()
        ]  # fmt: skip
    return rows


def bench_scaling(quick: bool = False) -> list[dict]:
    import jax

    counts = (1, 2) if quick else DEVICE_COUNTS
    if jax.devices()[0].platform != "cpu":
        counts = tuple(n for n in counts if n <= jax.device_count())
    rows = _device_rows(counts)
    return rows + _seed_rows(4 if quick else 8)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    sys.path.insert(0, str(ROOT))
    print(json.dumps(worker(int(sys.argv[2]))))
