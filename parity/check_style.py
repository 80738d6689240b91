"""Parity of post 000 §6's style transfer: jaxunsup against the post's PyTorch code.

`check_style_transfer()` (random VGG19 weights, so it runs anywhere): L0 the 16 convolutions'
activations and L1 style/content losses and the gradient with respect to the image, for each
conv impl (rows `style-transfer [impl]`); L3 the whole L-BFGS loop (the post's
`run_style_transfer` against `stylize(optimizer="torch-lbfgs")`) on `style_transfer.Config`'s
default impl (rows `style-transfer [xla]`): the float64 and float32 loops on the other impl
would double the check's time for the convolutions L0/L1 already compare.

With the real weights, `python -m parity.check_style --vgg-weights PATH` runs the post's
setting (256×256, 300 evaluations) with both codes and prints their logs next to the post's.
"""

from __future__ import annotations

import argparse
import copy
import sys

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxunsup import data, vgg
from jaxunsup import style_transfer as st
from parity import torch_style
from parity.convert import params_to_torch
from parity.device import full_float32, module, numpy, tensor
from parity.helpers import IMPLS, one_torch_thread, row, worst

NAME = "style-transfer"


def _nchw(image: np.ndarray) -> torch.Tensor:
    return tensor(image.transpose(2, 0, 1)[None])  # [1, 3, H, W] on the torch device


def _torch_conv_outputs(cnn: torch.nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    outs = []
    with torch.no_grad():
        for layer in cnn:
            x = layer(x)
            if isinstance(layer, torch.nn.Conv2d):
                outs.append(numpy(x).transpose(0, 2, 3, 1))  # a copy, before the in-place ReLU
    return outs


_conv_features = jax.jit(vgg.features, static_argnames=("layers", "conv_impl"))


def check_style_transfer(size=64, evals=40, float32_evals=8, impls=IMPLS) -> list[dict]:
    """L0/L1 for each conv impl in `impls`, L3 on the default impl, on `size`×`size` sample
    photos with random (torchvision-init) VGG19 weights.

    The VGG weights are frozen on the torch side (the post leaves `requires_grad` on, which
    only adds unused weight gradients)."""
    cnn = torch_style.vgg19_features(seed=0, bias_std=0.05).eval().requires_grad_(False)
    cnn = module(cnn)
    params = vgg.params_from_state_dict({f"features.{k}": v for k, v in cnn.state_dict().items()})
    content, style = data.load_image("china", size), data.load_image("flower", size)
    mean, std = (tensor(v, torch.float32) for v in (st.IMAGENET_MEAN, st.IMAGENET_STD))
    normalized = torch_style.Normalization(mean, std)
    theirs = _torch_conv_outputs(cnn, normalized(_nchw(content)))
    convs = tuple(f"conv_{i}" for i in range(1, 17))
    rows = []
    with jax.default_matmul_precision("highest"):
        for impl in impls:
            # L0: every convolution, on the normalised content image
            name = f"{NAME} [{impl}]"
            image = st.normalize(jnp.asarray(content[None]))
            ours = _conv_features(params, image, convs, conv_impl=impl)
            per_layer = [row(name, "L0", n, ours[n], t, atol=1e-4, rtol=1e-5)
                         for n, t in zip(convs, theirs, strict=True)]  # fmt: skip
            rows.append(worst(per_layer, "VGG19 activations, all 16 conv layers"))
            rows += _check_losses(name, cnn, params, content, style, impl)
        rows += _check_loop(cnn, params, content, style, evals, float32_evals)
    return rows


def _check_losses(name, cnn, params, content, style, impl) -> list[dict]:
    """L1: style and content losses and d loss / d image at a perturbed content image."""
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, content.shape).astype(np.float32)
    image = np.clip(content + noise, 0, 1)
    cfg = st.Config(conv_impl=impl)
    c, s = jnp.asarray(content[None]), jnp.asarray(style[None])
    targets = st.compute_targets(params, c, s, cfg)
    grad_fn = jax.value_and_grad(st.loss_fn, has_aux=True)
    (loss, parts), grad = jax.jit(grad_fn, static_argnums=3)(
        jnp.asarray(image[None]), params, targets, cfg
    )
    model, style_losses, content_losses = torch_style.get_style_model_and_losses(
        cnn, _nchw(style), _nchw(content)
    )
    img = _nchw(image).requires_grad_(True)
    model(img)
    t_style = sum(sl.loss for sl in style_losses)
    t_content = sum(cl.loss for cl in content_losses)
    t_loss = cfg.style_weight * t_style + cfg.content_weight * t_content
    t_loss.backward()
    t_grad = numpy(img.grad).transpose(0, 2, 3, 1)
    scale = float(np.abs(t_grad).max())
    return [
        row(name, "L1", "style loss (5 layers)", parts["style"], t_style.item(), 0, rtol=1e-4),
        row(name, "L1", "content loss (conv_4)", parts["content"], t_content.item(), 0,
            rtol=1e-4),
        row(name, "L1", "weighted loss", loss, t_loss.item(), 0, rtol=1e-4),
        row(name, "L1", "d loss / d image", grad, t_grad, atol=1e-4 * scale),
    ]  # fmt: skip


def _loop_histories(cnn, params, content, style, evals, dtype):
    """The post's loop and ours from the same start, in `dtype` on both sides."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # the post's Normalization builds float tensors
    try:
        cnn = copy.deepcopy(cnn).to(dtype)
        _, records = torch_style.run_style_transfer(
            cnn, _nchw(content).to(dtype), _nchw(style).to(dtype), num_steps=evals
        )
    finally:
        torch.set_default_dtype(old)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    with jax.enable_x64(dtype == torch.float64):
        result = st.stylize(content.astype(np_dtype), style.astype(np_dtype), params,
                            st.Config(steps=evals), verbose=False)  # fmt: skip
    return result.history, np.asarray(records)  # records: [n, 3] style, content, loss


@one_torch_thread  # several threads crawl on a busy 2-core machine
def _check_loop(cnn, params, content, style, evals, float32_evals) -> list[dict]:
    """L3: the post's L-BFGS loop against ours (`style_transfer.Config`'s default impl),
    evaluation by evaluation. Fixed-step L-BFGS on this problem amplifies rounding about 1.5×
    per evaluation, so float32 runs part after a handful of evaluations; in float64 the two
    stay together for the whole run."""
    rows, name = [], f"{NAME} [{st.Config().conv_impl}]"
    for dtype, n, rtol in ((torch.float64, evals, 5e-3), (torch.float32, float32_evals, 5e-3)):
        ours, theirs = _loop_histories(cnn, params, content, style, evals, dtype)
        kind = "float64" if dtype == torch.float64 else "float32"
        for i, part in enumerate(("style", "content")):
            rows.append(row(name, "L3", f"{part} loss, first {n} evaluations ({kind})",
                            ours[part][:n], theirs[:n, i], 0, rtol=rtol))  # fmt: skip
        if dtype == torch.float64:
            rows.append(row(name, "L3", "evaluations made by the post's loop",
                            len(ours["style"]), len(theirs), 0))  # fmt: skip
    return rows


def compare_pretrained(weights: str, content="china", style="flower", size=256, steps=300):
    """The post's setting with real weights: our log, the post's code's log, the post's print."""
    params = vgg.load_vgg19(weights)
    c, s = data.load_image(content, size), data.load_image(style, size)
    print(f"ours (jaxunsup, torch-lbfgs), {content} / {style} {size}px:")
    st.stylize(c, s, params, st.Config(steps=steps))
    print("the post's PyTorch code, same weights and images:")
    cnn = module(torch_style.vgg19_features())
    names = [f"features.{k}" for k in cnn.state_dict()]
    sd = params_to_torch(params, names)
    cnn.load_state_dict({k.removeprefix("features."): tensor(v) for k, v in sd.items()})
    torch_style.run_style_transfer(cnn.eval(), _nchw(c), _nchw(s), num_steps=steps, verbose=True)
    print("the post's printed log (its own photos):")
    for k, (sv, cv) in st.SEED_LOG.items():
        print(f"Iteration {k}: Style Loss : {sv:4f} Content Loss: {cv:4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vgg-weights", help=f"torchvision {vgg.TORCHVISION_FILE}")
    parser.add_argument("--content", default="china")
    parser.add_argument("--style", default="flower")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    full_float32()  # the parity precision policy (parity.device), as `python -m parity` sets it
    if args.vgg_weights:
        compare_pretrained(args.vgg_weights, args.content, args.style, args.size, args.steps)
        return 0
    failed = 0
    for r in check_style_transfer():
        failed += not r["ok"]
        verdict = "ok" if r["ok"] else "FAILED"
        print(f"{r['model']} {r['level']} {r['what']}: max abs {r['max_abs']:.2e}, "
              f"max rel {r['max_rel']:.2e} ({r['tol']}) {verdict}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
