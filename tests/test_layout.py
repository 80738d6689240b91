"""The layout rules of docs/DESIGN.md ("House style") hold for the library: no module over 400
lines and no function over 60 (a reader holds one file, and one function on one screen)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxunsup"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def long_functions(source: str, limit: int) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in `source` longer than `limit` lines."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_long_functions_are_found():
    body = "\n".join(f"        x{i} = {i}" for i in range(5))
    source = f"def short():\n    pass\n\n\nclass C:\n    def long(self):\n{body}\n"
    assert long_functions(source, 5) == [("long", 6)]
    assert long_functions(source, 6) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_every_module_stays_readable(path):
    source = path.read_text()
    assert source.count("\n") <= MAX_FILE_LINES, f"{path.name}: split it by concern"
    assert long_functions(source, MAX_FUNCTION_LINES) == [], f"{path.name}: split into helpers"
