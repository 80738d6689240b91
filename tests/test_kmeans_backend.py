"""k-means on an accelerator takes the plain path: with the backend reported as a GPU, no
CPU-only path runs (threaded host loop, 2-stream tiling, the CPU chunk budget), and the
answer is the CPU path's."""

import jax
import numpy as np
from sklearn.datasets import make_blobs

from jaxunsup import backend
from jaxunsup import kmeans as km

# N·K·D = 2**25 multiply-adds a sweep: above the threaded loop's threshold on a CPU
N, D, K = 2**16, 32, 16


def test_gpu_backend_takes_the_plain_path_with_the_same_labels(monkeypatch):
    assert N * K * D >= km._THREAD_MIN_WORK
    x, y = make_blobs(N, D, centers=K, cluster_std=4.0, random_state=0)
    x = x.astype(np.float32)
    init = x[[np.flatnonzero(y == j)[0] for j in range(K)]]  # a row of each blob: no split blob
    calls = []
    real = km._lloyd_threads

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(km, "_lloyd_threads", spy)
    cpu = km.kmeans(0, x, K, init=init, max_iter=30)
    assert calls == [1] and int(cpu.n_iter) >= 2  # the CPU path: two threads, several sweeps
    cpu_plan = km._plan(K, "array", 1, "relocate", False, N, D, None, None)
    assert cpu_plan.streams == 2 and cpu_plan.chunk == 2**14 // K

    monkeypatch.setattr(backend, "platform", lambda: "gpu")
    plan = km._plan(K, "array", 1, "relocate", False, N, D, None, None)
    assert plan.streams == 1 and plan.chunk == N  # one stream, the accelerator's chunk
    assert not km._threaded(plan, N * K * D, x)
    gpu = km.kmeans(0, x, K, init=init, max_iter=30)
    assert calls == [1]  # no thread this time
    np.testing.assert_array_equal(np.asarray(gpu.labels), np.asarray(cpu.labels))
    assert int(gpu.n_iter) == int(cpu.n_iter)
    np.testing.assert_allclose(gpu.centers, cpu.centers, rtol=1e-5, atol=1e-4)
    assert jax.default_backend() == "cpu"  # the patch changed only jaxunsup's view
