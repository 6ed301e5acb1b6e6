"""Small helpers the ejected files are written with: one template block at a time.

A block is a dedented piece of Python with ``$name`` placeholders (``string.Template``, since
``{}`` is everywhere in Python code) filled with already-formatted text.
"""

from __future__ import annotations

import textwrap
from string import Template
from typing import Any, Iterable


def block(text: str, **values: Any) -> str:
    """``text`` dedented, stripped of its outer blank lines, with ``$name`` placeholders filled."""
    return Template(textwrap.dedent(text).strip("\n")).substitute({k: str(v) for k, v in values.items()})


def indent(text: str, levels: int = 1) -> str:
    """Every non-blank line of ``text`` indented by ``levels`` times four spaces."""
    return textwrap.indent(text, "    " * levels)


def module(docstring: str, imports: Iterable[str], *parts: str) -> str:
    """A whole module: docstring, grouped imports (stdlib, third party, local), then top-level parts.

    ``imports`` are full lines; their group is read from the module they import.
    """
    groups: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for line in dict.fromkeys(imports):
        groups[_import_group(line)].append(line)
    sections = ["\n".join(sorted(lines, key=_import_key)) for _, lines in sorted(groups.items()) if lines]
    head = f'"""{docstring}"""\n\n' + "\n\n".join(sections)
    body = "\n\n\n".join(part for part in parts if part)
    return head + "\n\n" + ("" if body.startswith("\n") else "\n") + body + "\n"


THIRD_PARTY = ("numpy", "torch", "sklearn", "pyarrow", "PIL")
LOCAL = ("data", "model")


def _import_group(line: str) -> int:
    name = line.split()[1].split(".")[0]
    if name in LOCAL:
        return 2
    return 1 if name in THIRD_PARTY else 0


def _import_key(line: str) -> tuple[int, str]:
    # `import x` before `from x import y`, as isort orders them
    return (line.startswith("from "), line.split()[1])


class Name(str):
    """Source text that stands for itself where a value is expected (a variable, an expression)."""


def literal(value: Any) -> str:
    """Python source for a plain value (numbers, strings, lists, dicts, None, tuples)."""
    if isinstance(value, Name):
        return str(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and '"' not in value:
        return '"' + repr(value)[1:-1].replace("\\'", "'") + '"'  # double quotes, as people write them
    return repr(value)


def call_arguments(args: dict[str, Any]) -> str:
    """``a=1, b='x'`` for keyword arguments."""
    return ", ".join(f"{name}={literal(value)}" for name, value in args.items())


def wrapped_call(target: str, callee: str, arguments: str, width: int = 92) -> str:
    """``target callee(arguments)``, the arguments on a continuation line when it would be long."""
    line = f"{target}{callee}({arguments})"
    if len(line) <= width:
        return line
    return f"{target}{callee}(\n    {arguments},\n)"
