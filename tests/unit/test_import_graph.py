"""No import circle in `chalicelib`: the capability folders import inward only.

Every `import` and `from ... import` in the package counts, wherever it is written (at
the top, inside a function, under `TYPE_CHECKING`), so a circle cannot hide behind a
late import. `app.py` is the one module above the package and is walked too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "chalicelib"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module → the `chalicelib` modules it imports (a package's submodule named in
    `from package import name` counts as that submodule)."""
    paths = [*sorted((root / PACKAGE).rglob("*.py")), root / "app.py"]
    modules = {module_name(p, root): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
                targets += [f"{node.module}.{alias.name}" for alias in node.names]
            elif _import_module_call(node):
                targets = [node.args[0].value]  # type: ignore[attr-defined]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def _import_module_call(node: ast.AST) -> bool:
    """`importlib.import_module("chalicelib.x")`: an import written as a call."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path that closes it (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_chalicelib_has_no_import_circle() -> None:
    graph = import_graph()
    assert len(graph) > 30  # the walk found the package
    assert cycles(graph) == [], "import circle(s): " + "; ".join(
        " -> ".join(c) for c in cycles(graph)
    )


def test_the_walk_sees_late_imports_and_reports_a_circle(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from chalicelib.b import thing\n")
    (package / "b.py").write_text("def f():\n    from chalicelib import a\n")
    (package / "c.py").write_text("import importlib\nimportlib.import_module('chalicelib.d')\n")
    (package / "d.py").write_text("import chalicelib.c\n")
    (tmp_path / "app.py").write_text("import chalicelib.a\n")
    graph = import_graph(tmp_path)
    assert graph["chalicelib.b"] == {"chalicelib", "chalicelib.a"}
    assert cycles(graph) == [
        ["chalicelib.a", "chalicelib.b", "chalicelib.a"],
        ["chalicelib.c", "chalicelib.d", "chalicelib.c"],
    ]


@pytest.mark.parametrize("inner", ["chalicelib.core.settings", "chalicelib.core.clients"])
def test_core_imports_no_capability(inner: str) -> None:
    """Core is the innermost ring: it imports only core and the contract."""
    allowed = ("chalicelib.core", "chalicelib.contract")
    outward = {m for m in import_graph()[inner] if not m.startswith(allowed)}
    assert outward == set()
