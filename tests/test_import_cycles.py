"""No import cycles among specnn's modules: each file can be read knowing only what it imports.

The graph is read from the source with :mod:`ast`, not by importing anything. An edge A -> B
means module A imports module B: ``import specnn.x.b``, ``from specnn.x import b`` (b a module)
or ``from specnn.x.b import name``. A package's ``__init__`` counts as the package's module.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "specnn"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def statements(tree: ast.Module, nested: bool) -> Iterator[ast.stmt]:
    """Module-level statements, including those under a module-level ``if`` or ``try``
    (``if TYPE_CHECKING:`` imports are still a dependency of the file); with ``nested``, also
    those inside functions and classes (imports deferred to call time)."""
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not nested:
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            for child in getattr(node, field, []) or []:
                if isinstance(child, ast.ExceptHandler):
                    stack.extend(child.body)
                elif isinstance(child, ast.stmt):
                    stack.append(child)


def imported(module: str, node: ast.stmt) -> Iterator[str]:
    """The specnn modules an import statement in ``module`` reads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        # `from specnn.compiler import codegen` reads the module codegen, not only the package.
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    else:
        return
    for name in names:
        while name and name not in MODULES:  # `import specnn.x.y` for a name inside y
            name = name.rpartition(".")[0]
        if name and name != module:
            yield name


def import_graph(nested: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = {target for node in statements(tree, nested) for target in imported(module, node)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, colouring nodes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read_correctly():
    graph = import_graph(nested=False)
    assert "specnn.errors" in graph["specnn.compiler.shapes"]  # from specnn.errors import Problem
    assert "specnn.catalog.layer_args" in graph["specnn.catalog.layers"]  # from specnn.catalog import layer_args
    assert all(target.startswith("specnn.errors.") for target in graph["specnn.errors"])  # the leaf
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_level_import_cycles():
    assert find_cycle(import_graph(nested=False)) is None


@pytest.mark.parametrize("package", ["specnn.spec", "specnn.catalog", "specnn.compiler"])
def test_no_cycles_even_through_deferred_imports(package: str):
    """In the layers below the runtime, not even an import inside a function closes a cycle."""
    graph = import_graph(nested=True)
    inside = {m: {t for t in targets if t.startswith(package + ".") or t == package}
              for m, targets in graph.items() if m.startswith(package + ".") or m == package}
    assert find_cycle(inside) is None
