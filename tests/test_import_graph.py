"""The import graph of index/: no circles, and the pure layers import no web framework.

Read from the modules' source with ``ast`` (nothing is imported). Only imports that run when a
module is loaded count: those at module level, outside ``if TYPE_CHECKING:``. An import inside a
function is a deliberate late binding (``ops.serving`` builds the app only when asked to).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "index"
# Modules that must not depend on Flask or Werkzeug, directly or through other index modules.
PURE = ["index.names", "index.tokens", "index.passwords", "index.config",
        "index.store", "index.store.errors", "index.store.files", "index.store.tables",
        "index.store.changes", "index.store.records", "index.store.images", "index.search_index",
        "index.registry.tarsum"]  # registry.blobs sends layers as Flask responses
WEB = ("flask", "werkzeug")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _load_time_statements(tree: ast.Module) -> list[ast.stmt]:
    """Module-level statements, looking into if/try blocks but not into TYPE_CHECKING ones."""
    found: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" in ast.unparse(node.test):
                pending.extend(node.orelse)
                continue
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
        else:
            found.append(node)
    return found


def imports_of(name: str) -> set[str]:
    """Every module (index ones by their dotted name, others by their top package) that ``name``
    imports when it is loaded."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _load_time_statements(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin == "__future__":
                continue
            for alias in node.names:
                # "from . import names" imports the module index.names, not only the package.
                submodule = f"{origin}.{alias.name}"
                found.add(submodule if submodule in MODULES else origin)
    return {module if module.split(".")[0] == "index" else module.split(".")[0] for module in found}


GRAPH = {name: {target for target in imports_of(name) if target in MODULES and target != name}
         for name in MODULES}


def _find_circle() -> list[str] | None:
    """One circle of the graph as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                circle = visit(target)
                if circle:
                    return circle
        stack.pop()
        state[node] = "done"
        return None

    for start in sorted(GRAPH):
        if start not in state:
            circle = visit(start)
            if circle:
                return circle
    return None


def test_the_graph_is_read_from_the_sources():
    assert "index.store" in GRAPH["index.store.images"]
    assert "index.names" in GRAPH["index.ops.cli"]  # "from .. import names"
    assert "index.ops.commands" in GRAPH["index"]


def test_no_module_of_index_imports_itself_back():
    circle = _find_circle()
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_circle_finder_finds_one(monkeypatch):
    monkeypatch.setitem(GRAPH, "index.names", GRAPH["index.names"] | {"index.tokens"})
    monkeypatch.setitem(GRAPH, "index.tokens", GRAPH["index.tokens"] | {"index.names"})
    assert _find_circle() is not None


def _reachable(start: str) -> set[str]:
    seen, pending = set(), [start]
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(GRAPH[module])
    return seen


@pytest.mark.parametrize("name", PURE)
def test_pure_layers_import_no_web_framework(name):
    assert name in MODULES, f"{name} is gone: update PURE"
    web = {module: sorted(imports_of(module) & set(WEB)) for module in _reachable(name)}
    assert not {module: found for module, found in web.items() if found}
