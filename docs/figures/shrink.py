"""Copies a figure that an experiment wrote into docs/figures/ as a small PNG (the README's).

    python docs/figures/shrink.py runs/vae-z2/manifold.png docs/figures/vae-z2-manifold.png

Greyscale figures keep their size and drop to `--levels` grey levels (a 4-bit palette);
colour figures are quantised to `--levels` colours. `--scale` shrinks both sides first.
The result is refused (exit 2) if it is over `--max-kb`, so the README's figures stay small.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image


def shrink(src: Path, levels: int = 16, scale: float = 1.0) -> bytes:
    """`src` as PNG bytes: scaled by `scale`, then quantised to `levels` shades or colours."""
    image = Image.open(src)
    image = image.convert("RGB")
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    r, g, b = image.split()
    grey = r.tobytes() == g.tobytes() == b.tobytes()
    image = image.convert("L") if grey else image
    image = image.quantize(levels, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True, bits=max(1, (levels - 1).bit_length()))
    return out.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--levels", type=int, default=16, help="grey levels or colours")
    parser.add_argument("--scale", type=float, default=1.0, help="resize factor")
    parser.add_argument("--max-kb", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not args.src.is_file():
        print(
            f"shrink: no figure {args.src}; run the README's command that writes it",
            file=sys.stderr,
        )
        return 2
    data = shrink(args.src, args.levels, args.scale)
    if len(data) > args.max_kb * 1024:
        print(f"shrink: {args.dst} would be {len(data) / 1024:.0f} KB > {args.max_kb} KB; "
              "pass a smaller --scale or --levels", file=sys.stderr)  # fmt: skip
        return 2
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    args.dst.write_bytes(data)
    print(f"{args.dst}: {len(data) / 1024:.1f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
