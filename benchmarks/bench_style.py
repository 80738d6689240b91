"""Style transfer (post 000 §6): jaxunsup against the post's PyTorch code, one process.

1. Seconds per loss + gradient evaluation (the post's closure) at 256×256 (and 512×512 on a
   GPU): our jitted `value_and_grad`, the same inside the compiled L-BFGS run, the post's torch
   closure (its VGG weights keep `requires_grad`, so backward also computes their unused
   gradients) and torch with the weights frozen.
2. Whole runs of 300 evaluations: the post's loop and our three optimisers; seconds (compile
   excluded, reported apart), evaluations made, the lowest loss within the 300 evaluations, and
   how many evaluations each mode needs to get as low as the post's loop does in 300
   (fixed-step L-BFGS does not decrease monotonically, so the best loss so far is compared).

torch runs with 1 and with 2 threads and the faster is kept: on a busy 2-core machine its
OpenMP threads can be several times slower than one thread. JAX uses XLA's default threads.

Random VGG19 weights (torchvision's init) when no pretrained ones are found: speed does not
depend on the values; the losses then describe a texture-only problem.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from common import torch_device, torch_sync

from jaxunsup import data, vgg
from jaxunsup import style_transfer as st
from parity import torch_style
from parity.convert import params_to_torch


def _nchw(image: np.ndarray) -> torch.Tensor:  # on the device the post would use
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])).to(torch_device())


def _setup(size: int):  # images, VGG19 (pretrained if found), the same weights in torch
    content, style = data.load_image("china", size), data.load_image("flower", size)
    path = vgg.find_weights()
    full = vgg.load_vgg19(path) if path else vgg.init_vgg19(0)
    cnn = torch_style.vgg19_features()
    sd = params_to_torch(full, [f"features.{k}" for k in cnn.state_dict()])
    cnn.load_state_dict({k.removeprefix("features."): torch.from_numpy(v) for k, v in sd.items()})
    params = vgg.truncate(full, st.Config().style_layers)
    label = "torchvision weights" if path else "random VGG19 weights"
    return content, style, params, cnn.eval().to(torch_device()), label


def _best_of(fn, reps: int, trials: int = 3) -> float:
    """Best mean over `trials` timings of `reps` calls (the machine may be shared)."""
    fn()
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(reps):
            out = fn()
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def _torch_closure(cnn, content, style, frozen: bool):
    model, style_losses, content_losses = torch_style.get_style_model_and_losses(
        cnn, _nchw(style), _nchw(content)
    )
    model.requires_grad_(not frozen)
    img = _nchw(content).clone().requires_grad_(True)

    def closure():  # the post's closure, without the counter and print
        img.data.clamp_(0, 1)
        img.grad = None
        model(img)
        style_score = sum(sl.loss for sl in style_losses)
        content_score = sum(cl.loss for cl in content_losses)
        (1e5 * style_score + content_score).backward()
        torch_sync(img.device)  # timed: the kernels must have finished
        return style_score + content_score

    return closure


def _torch_best(fn, reps: int) -> float:
    """The faster of 1 and 2 torch threads; leaves torch on the faster setting."""
    times = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        times[threads] = _best_of(fn, reps)
    torch.set_num_threads(min(times, key=times.get))
    return min(times.values())


def _per_evaluation(size: int, reps: int) -> list[dict]:
    content, style, params, cnn, label = _setup(size)
    cfg = st.Config()
    c, s = jnp.asarray(content[None]), jnp.asarray(style[None])
    params = jax.tree.map(jnp.asarray, params)
    targets = st.compute_targets(params, c, s, cfg)
    grad = jax.jit(jax.value_and_grad(st.loss_fn, has_aux=True), static_argnums=3)
    steps = max(reps, 20)
    run = st.RUNNERS["torch-lbfgs"]
    n_evals = int(run(c, params, targets, False, st.Config(steps=steps))[1])  # compile
    times = {
        "jaxunsup value_and_grad (jit)": _best_of(lambda: grad(c, params, targets, cfg), reps),
        "jaxunsup inside the L-BFGS run": _best_of(
            lambda: run(c, params, targets, False, st.Config(steps=steps)), 1, 2
        ) / n_evals,
        "torch, the post's closure": _torch_best(_torch_closure(cnn, content, style, False), reps),
        "torch, VGG weights frozen": _torch_best(_torch_closure(cnn, content, style, True), reps),
    }  # fmt: skip
    ours = times["jaxunsup value_and_grad (jit)"]
    return [
        {"bench": "style-transfer", "what": "seconds per evaluation", "size": size,
         "weights": label, "impl": impl, "seconds": round(t, 4),
         "speedup_of_jaxunsup": round(t / ours, 2)}
        for impl, t in times.items()
    ]  # fmt: skip


def _evals_to_reach(loss: np.ndarray, evals: np.ndarray, target: float) -> int | None:
    hit = np.nonzero(np.minimum.accumulate(loss) <= target)[0]
    return int(evals[hit[0]]) if hit.size else None


def _whole_runs(size: int, steps: int) -> list[dict]:
    content, style, params, cnn, label = _setup(size)
    start = time.perf_counter()
    _, records = torch_style.run_style_transfer(cnn, _nchw(content), _nchw(style), steps)
    runs = {"torch, the post's loop": (time.perf_counter() - start, None, np.asarray(records))}
    for optimizer in st.OPTIMIZERS:
        cfg = st.Config(steps=steps, optimizer=optimizer)
        start = time.perf_counter()
        st.stylize(content, style, params, cfg, verbose=False)  # compiles
        first = time.perf_counter() - start
        start = time.perf_counter()
        h = st.stylize(content, style, params, cfg, verbose=False).history
        seconds = time.perf_counter() - start
        runs[f"jaxunsup {optimizer}"] = (seconds, first - seconds, h)
    target = float(runs["torch, the post's loop"][2][:steps, 2].min())  # its best in `steps`
    rows = []
    for impl, (seconds, compile_s, h) in runs.items():
        if isinstance(h, np.ndarray):  # torch records: style, content, loss
            evals, loss = np.arange(1, len(h) + 1), h[:, 2]
        else:
            evals, loss = h["evals"], h["loss"]
        at = evals <= steps
        rows.append({
            "bench": "style-transfer", "what": f"whole run, {steps} evaluations", "size": size,
            "weights": label, "impl": impl, "seconds": round(seconds, 2),
            "compile_seconds": None if compile_s is None else round(compile_s, 2),
            "evaluations": int(evals[-1]), "min_loss_in_budget": float(loss[at].min()),
            "evals_to_reach_post_min_loss": _evals_to_reach(loss, evals, target),
        })  # fmt: skip
    return rows


def bench_style(quick: bool = False) -> list[dict]:
    on_gpu = jax.devices()[0].platform == "gpu"
    sizes = [64] if quick else ([256, 512] if on_gpu else [256])
    rows = []
    for size in sizes:
        rows += _per_evaluation(size, reps=3 if quick else 5)
    rows += _whole_runs(64 if quick else 256, steps=300)  # torch keeps its faster threads
    return rows
