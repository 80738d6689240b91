"""VGG19's trunk (to conv_5) inside a compiled gradient loop, by how its convolutions compute.

Run: `python benchmarks/vgg_conv_impls.py [SIZE ...]` (default 64 128). 30 gradient steps on
one SIZE² image inside `lax.fori_loop` (as style transfer's L-BFGS loop runs them), best of
3, alternated: `layers.conv2d` with impl "xla" on CPU (XLA's convolution, the stride-1
hand-written VJP), XLA's convolution under plain autodiff (what an accelerator runs), and
impl "matmul" (`patch_conv`'s im2col). Why style transfer's Config defaults to "xla".
"""

from __future__ import annotations

import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxunsup import layers, vgg

PADS = ((1, 1), (1, 1))


def _plain(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), PADS, dimension_numbers=layers._DIMS)


CONVS = {
    "xla, CPU hand-written VJP": functools.partial(layers.conv2d, padding=PADS, impl="xla"),
    "xla, plain autodiff": _plain,
    "matmul (im2col)": functools.partial(layers.conv2d, padding=PADS, impl="matmul"),
}


def _loop(conv, params, depth):
    def loss(img):
        x, total = img, 0.0
        for i, (kind, _) in enumerate(vgg.LAYERS[:depth]):
            if kind == "conv":
                p = params["params"][f"features_{i}"]
                x = conv(x, p["kernel"]) + p["bias"].reshape(1, 1, 1, -1)
                total = total + jnp.sum(x * x)
            elif kind == "relu":
                x = jax.nn.relu(x)
            else:
                x = layers.max_pool(x, (2, 2), impl="xla")
        return total

    return jax.jit(
        lambda img: jax.lax.fori_loop(0, 30, lambda _, x: x - 1e-9 * jax.grad(loss)(x), img)
    )


def main(sizes=(64, 128)) -> None:
    depth = vgg.depth_for(["conv_5"])
    params = jax.tree.map(jnp.asarray, vgg.init_vgg19(0, ["conv_5"]))
    for size in sizes:
        img = jnp.asarray(np.random.default_rng(0).random((1, size, size, 3), np.float32))
        loops = {name: _loop(conv, params, depth) for name, conv in CONVS.items()}
        for f in loops.values():
            f(img).block_until_ready()
        best = dict.fromkeys(loops, float("inf"))
        for _ in range(3):
            for name, f in loops.items():
                t = time.perf_counter()
                f(img).block_until_ready()
                best[name] = min(best[name], (time.perf_counter() - t) / 30)
        for name, t in best.items():
            print(f"{size}x{size}  {name:28s} {t * 1e3:8.1f} ms a gradient step")


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or (64, 128))
