"""`python benchmarks/profile_step.py MODEL [--top N]`: where a conv model's training step spends
its time on this machine, op by op and layer by layer.

Runs one scanned epoch of `training.fit` (after a warm-up epoch) under `jax.profiler` with
XLA:CPU's per-op trace events, and joins each compiled op (fusion, product, concatenate) with
the source it came from (the `op_name` of the optimised HLO, dumped for the purpose). Times are
per training step and include the tracer's own overhead (~30%): compare ops with each other,
and measure a change with an A/B of whole epochs, not with this. MODEL: ae-conv, ae-keras-cnn,
vae.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
from pathlib import Path

MODELS = {  # name → (module, config class)
    "ae-conv": ("jaxunsup.ae_conv", "ConvConfig"),
    "ae-keras-cnn": ("jaxunsup.ae_keras", "KerasCNNConfig"),
    "vae": ("jaxunsup.vae", "Config"),
}
LAYER = re.compile(
    r"(seq_\w+|enc_out|dec_in|e_conv|e_latent|d_conv_t|x_output|encoder_\d|decoder_\d|relu)"
)


def _layer(op_name: str) -> str:
    """The layer an op came from, else the model method and primitive ("encode: add", the
    pooling's ops), else the step's own ("gradient_step: add", the optimiser)."""
    layer = LAYER.search(op_name)
    if layer:
        return layer.group(1)
    method = re.search(r"\.(encode|decode\w*)/(?:jit\()?(\w+)", op_name)
    if method:
        return f"{method.group(1)}: {method.group(2)}"
    step = re.search(r"jit\((\w+)\)/(?:jit\()?(\w+)\)?$", op_name)
    return f"{step.group(1)}: {step.group(2)}" if step else "other"


def _trace_times(trace_dir: str) -> collections.Counter:
    """Microseconds per compiled op name, from the perfetto trace."""
    path = glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)[0]
    with gzip.open(path) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    skip = ("$", "Thunk", "np.", "Slinky", "PjitF", "Common")
    times = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and "dur" in e and not e["name"].startswith(skip):
            times[e["name"]] += e["dur"]
    return times


def _op_sources(dump_dir: str, names: list[str]) -> dict[str, tuple[str, str]]:
    """op name → (shape, op_name metadata) from the dumped module that holds most `names`."""

    def hits(path):
        text = Path(path).read_text()
        return sum(f"%{n} " in text for n in names), len(text)

    best = max(glob.glob(f"{dump_dir}/*after_optimizations.txt"), key=hits)
    info = {}
    for line in Path(best).read_text().splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
        if m:
            op = re.search(r'op_name="([^"]+)"', line)
            info.setdefault(m.group(1), (m.group(2)[:36], op.group(1) if op else ""))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", choices=list(MODELS))
    parser.add_argument("--top", type=int, default=25, help="ops to list")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="profile_step_")
    dump, trace = f"{work}/dump", f"{work}/trace"
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
        f" --xla_dump_to={dump} --xla_dump_hlo_as_text --xla_dump_hlo_pass_re=^$"
    )
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import importlib

    import jax
    import jax.numpy as jnp

    from jaxunsup import data, training

    module_name, config_name = MODELS[args.model]
    module = importlib.import_module(module_name)
    cfg = getattr(module, config_name)()
    images = data.load_mnist("train", source="embedded").images
    key = jax.random.key(0)
    state = module.create_state(key, cfg, jnp.asarray(images[:1]))
    fit = dict(key=key, batch_size=cfg.batch_size, verbose=False, progress=False)
    state, _ = training.fit(state, module.train_step, images, epochs=1, **fit)  # compile
    jax.block_until_ready(state.params)
    with jax.profiler.trace(trace, create_perfetto_trace=True):
        state, _ = training.fit(state, module.train_step, images, epochs=1, **fit)
        jax.block_until_ready(state.params)
    steps = len(images) // cfg.batch_size
    times = _trace_times(trace)
    info = _op_sources(dump, [n for n, _ in times.most_common(10)])
    ms = {n: t / steps / 1e3 for n, t in times.items()}
    print(f"{args.model}: {sum(ms.values()):.2f} ms of ops a step (traced), {steps} steps")
    for name, t in sorted(ms.items(), key=lambda kv: -kv[1])[: args.top]:
        shape, op = info.get(name, ("?", "?"))
        print(f"{t:7.3f} ms  {name[:28]:28s} {shape:36s} {op[-80:]}")
    layers = collections.Counter()
    for name, t in ms.items():
        op = info.get(name, ("", ""))[1]
        layers[(_layer(op), "bwd" if "transpose(" in op else "fwd")] += t
    print("by layer (bwd: the gradient's ops):")
    for (layer, kind), t in layers.most_common():
        print(f"{t:7.3f} ms  {layer} {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
