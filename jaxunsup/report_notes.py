"""The report's notes: what a reader must know to read a result that looks like a failure.

`notes_for(name, entry)` gives (short, html) pairs for one experiment's entry of `reproduce`'s
results.json: the short form goes into the summary table's status cell, the paragraph into the
experiment's section. Each note is drawn from the run's own results (the seeds that stalled,
whether the VGG19 weights were random), so the page never explains what did not happen.
"""

from __future__ import annotations

import html

esc = html.escape

STALL_MSE = 0.1  # ae_conv.STALL_MSE: a black image scores 0.11 (kept here: no JAX import)
VGG_FILE = "vgg19-dcbb9e9d.pth"  # vgg.TORCHVISION_FILE (kept here: no JAX import)


def _ae_conv(results: dict) -> list[tuple[str, str]]:
    """Stalled seeds of the post's conv AE, with the per-seed evidence of this run."""
    cause = (
        f"test MSE above {STALL_MSE} (a black image scores 0.11): the ReLUs after the code "
        "layer die, so every input gets the same code and the same near-black output. This is "
        "the post's architecture (its torch model does the same), not a port error"
    )
    if "stalled_seeds" in results:
        stalled, per_seed = results["stalled_seeds"], results["test_mse_per_seed"]
        if not stalled:
            return []
        trained = [f"{s}: {v:.4f}" for s, v in zip(results["seeds"], per_seed, strict=True)
                   if v <= STALL_MSE]  # fmt: skip
        n = len(results["seeds"])
        short = f"{len(stalled)} of {n} seeds stalled"
        text = (
            f"{short} (seeds {', '.join(map(str, stalled))}): {cause}. The other seeds trained "
            f"(test MSE {'; '.join(trained) or 'none'}). The figures are those of the first "
            f"seed, {results['seeds'][0]}."
        )
        return [(short, esc(text))]
    if results.get("test_mse", 0.0) > STALL_MSE:
        text = (
            f"This seed stalled, {cause}. <code>jaxunsup run ae-conv --preset quick --n-seeds 8"
            "</code> trains seeds 0-7 as one program and names the ones that stall."
        )
        return [("stalled (this seed)", text)]
    return []


def _style_transfer(results: dict) -> list[tuple[str, str]]:
    """Random VGG19 weights: the picture is a texture, and the command with a real file."""
    if not results.get("random_vgg"):
        return []
    text = (
        "<b>This picture comes from random VGG19 weights</b>: no pretrained VGG19 file was "
        "found, so the losses are measured in random features and the result is a texture, not "
        "a stylised photograph. With torchvision's VGG19 file, one command stylises your own "
        f"images: <code>jaxunsup style-transfer --content photo.jpg --style painting.jpg "
        f"--vgg-weights {VGG_FILE} --out out.png</code> (or put {VGG_FILE} in "
        "~/.cache/torch/hub/checkpoints/ and this report uses it)."
    )
    return [("random VGG19 weights", text)]


NOTES = {"ae-conv": _ae_conv, "style-transfer": _style_transfer}


def notes_for(name: str, entry: dict) -> list[tuple[str, str]]:
    """(short text, HTML paragraph) pairs for experiment `name`'s `entry`."""
    if entry.get("status") != "ok":
        return [("see the error", f"Failed: <code>{esc(entry.get('error', '?'))}</code>")]
    note = NOTES.get(name)
    return note(entry.get("results", {})) if note else []
