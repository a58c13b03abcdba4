"""Module docstrings say what a module is and why in about eight lines; the long
explanations live in docs/. This holds the budget (examples included, loosely)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CHALICELIB = Path(__file__).resolve().parents[2] / "chalicelib"
MAX_LINES = 12
MODULES = sorted(CHALICELIB.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CHALICELIB)))
def test_module_docstring_is_short(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    lines = len(docstring.splitlines())
    assert lines <= MAX_LINES, f"{path.name}: docstring of {lines} lines; move the rest to docs/"


def test_the_walk_finds_the_package() -> None:
    assert len(MODULES) > 20
