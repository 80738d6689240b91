"""The guide `docs/tensors-and-autograd.md` runs (every python block, in order, in one
namespace), and so does the README's library-use block."""

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "tensors-and-autograd.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of each ```python block."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


def test_python_blocks_are_found():
    text = "intro\n```python\na = 1\n```\n\n```bash\nls\n```\n```python\nb = 2\nc = 3\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n"), (10, "b = 2\nc = 3\n")]


def test_guide_covers_the_posts_tensor_operations():
    text = GUIDE.read_text()
    for op in ("unsqueeze", "squeeze", "view", "torch.mm", "backward", "requires_grad", "18"):
        assert op in text, op
    assert len(python_blocks(text)) >= 8


def run_block(path: Path, line: int, code: str, namespace: dict) -> None:
    """Runs a block found at `line` of `path` in `namespace`; padding keeps the file's line
    numbers in tracebacks."""
    exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)


def test_guide_code_runs(capsys):
    namespace: dict = {"__name__": "guide"}
    for line, code in python_blocks(GUIDE.read_text()):
        try:
            run_block(GUIDE, line, code, namespace)
        except Exception as err:
            pytest.fail(f"the block at {GUIDE.name}:{line} failed: {type(err).__name__}: {err}")
    out = capsys.readouterr().out
    assert "dl/dw at w = 1: 18.0" in out
    assert "cannot reshape array of shape (9,)" in out


README = GUIDE.parents[1] / "README.md"


def test_readme_library_example_runs():
    """The README's "Library use" block runs as written and gives what its comments say."""
    blocks = python_blocks(README.read_text())
    assert len(blocks) == 1, "the README has one python block; test each one added"
    line, code = blocks[0]
    namespace: dict = {"__name__": "readme"}
    run_block(README, line, code, namespace)
    train, history, codes = namespace["train"], namespace["history"], namespace["codes"]
    assert train.images.shape[1:] == (28, 28, 1)
    assert [row["epoch"] for row in history] == list(range(1, namespace["cfg"].epochs + 1))
    assert history[-1]["loss"] < history[0]["loss"]  # it trains
    assert codes.shape == (len(train.images), 10)
