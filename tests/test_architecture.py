"""The import direction: every module imports only from its own layer or the layers below it.

    cli (and the package's facade) > launch > runtime/sweep > runtime/runs > runtime/train > runtime/data
    > runtime/files > compiler > spec > catalog > errors

Read from the source with ``ast``: module-level imports and the imports inside functions alike
(a lazy import is still a dependency), so the tree shows the pipeline and no stage reaches back
into a later one. spec/, catalog/, compiler/ and errors.py also never import torch when they are
imported (``specnn validate`` stays free of it); inside a function that builds a model, they may.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "specnn"

# Highest first; a module's layer is the longest prefix of its dotted name listed here.
LAYERS = (
    ("specnn", "specnn.__main__", "specnn.cli"),
    ("specnn.launch",),
    ("specnn.runtime.sweep",),
    ("specnn.runtime.runs",),
    ("specnn.runtime.train",),
    ("specnn.runtime.data",),
    ("specnn.runtime", "specnn.runtime.files"),
    ("specnn.compiler",),
    ("specnn.spec",),
    ("specnn.catalog",),
    ("specnn.errors",),
)
RANK = {prefix: len(LAYERS) - index for index, prefixes in enumerate(LAYERS) for prefix in prefixes}
TORCH_FREE = ("specnn.spec", "specnn.catalog", "specnn.compiler", "specnn.errors")
# Names the package root holds as plain data, not code: anyone may read them.
ROOT_CONSTANTS = {"__version__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> tuple[str, int]:
    """The layer prefix of a dotted ``specnn...`` name, and its rank (higher imports lower)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in RANK:
            return prefix, RANK[prefix]
    raise AssertionError(f"{name} is in no layer: add it to LAYERS in tests/test_architecture.py")


def imports(name: str, tree: ast.Module) -> list[tuple[int, str, bool]]:
    """``(line, imported specnn module, at module level)`` for every import in ``tree``."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
                continue
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # annotations only: never executed
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, package)
                if base == "specnn":  # `from specnn import x`: the module specnn.x, or a name of the root
                    for alias in child.names:
                        target = f"specnn.{alias.name}"
                        if alias.name not in ROOT_CONSTANTS:
                            found.append((child.lineno, target if target in MODULES else "specnn", top))
                else:
                    found.append((child.lineno, base, top))
            visit(child, top)

    visit(tree, True)
    return found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def parsed(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), str(MODULES[name]))


def test_every_module_is_in_a_layer():
    assert {name: layer(name)[0] for name in MODULES}  # layer() names any module left out


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_only_to_the_same_layer_or_below(name):
    own, rank = layer(name)
    upward = [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: {own} imports {target} ({layer(target)[0]})"
              for line, target, _ in imports(name, parsed(name))
              if target.split(".")[0] == "specnn" and layer(target)[1] > rank]
    assert upward == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(TORCH_FREE)))
def test_spec_catalog_compiler_and_errors_do_not_import_torch_when_imported(name):
    at_import = [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: imports {target}"
                 for line, target, top in imports(name, parsed(name)) if top and target.split(".")[0] == "torch"]
    assert at_import == []


def test_the_rules_catch_an_upward_and_a_lazy_import():
    # the checks themselves, on source that breaks them
    MODULES["specnn.runtime.data.probe"] = MODULES["specnn.runtime.data.tensors"]  # any plain module
    try:
        tree = ast.parse("import torch\nfrom specnn.runtime.files import write_json\n"
                         "def f():\n    from ..train.loop import interrupted\n    import torch.nn\n"
                         "if TYPE_CHECKING:\n    from specnn.launch import train\n")
        found = imports("specnn.runtime.data.probe", tree)
    finally:
        del MODULES["specnn.runtime.data.probe"]
    assert found == [(1, "torch", True), (2, "specnn.runtime.files", True), (4, "specnn.runtime.train.loop", False),
                     (5, "torch.nn", False)]
    assert [layer(target)[1] > layer("specnn.runtime.data")[1] for _, target, _ in found[1:3]] == [False, True]


@pytest.mark.parametrize("package", sorted(p for p in PACKAGE.rglob("__init__.py") if "__pycache__" not in p.parts))
def test_every_package_says_what_it_owns(package):
    # README's "How the code is laid out" sends contributors to these paragraphs
    docstring = ast.get_docstring(ast.parse(package.read_text(encoding="utf-8")))
    assert docstring and len(docstring.split()) >= 8, f"{package.relative_to(PACKAGE.parent)} has no docstring"
