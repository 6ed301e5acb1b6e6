"""Blocks: parameterized groups of layers, defined once in ``model.blocks`` and used by name.

A definition is checked once (:func:`check_definitions`: parameter names, ``$param`` references,
recursion, unknown blocks). Each use resolves its parameter values (:func:`resolve_params`);
the graph builder then builds the block's body once per use with the values substituted
(:func:`substitute_args`), and the strict argument model checks them. A body's problems are
located at the block definition and name the use site (:func:`at_use_site`).

A use with ``repeat: N`` holds N instances of the body; shape inference types each instance on
its own input, so one block may be used on inputs of different shapes.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Iterator, Optional

import pydantic

from specnn.catalog.base import Args
from specnn.catalog.layers import LAYERS
from specnn.compiler.names import is_class_name, is_parameter_name
from specnn.errors import Path, Problem, format_path
from specnn.errors.texts import suggest

REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")

# The name a block body uses for the block's input in `from` (its forward() parameter is `x`).
BLOCK_INPUT = "input"

def reference(value: Any) -> Optional[str]:
    """The parameter name of a ``$param`` reference, else None.

    >>> reference("$channels"), reference("same"), reference(3)
    ('channels', None, None)
    """
    if isinstance(value, str):
        match = REFERENCE.match(value)
        return match.group(1) if match else None
    return None


def at_use_site(problem: Problem, definition: str, use_path: Path, copy: int = 0, copies: int = 1) -> Problem:
    """A problem found inside a block's body, its message naming where the block is used."""
    where = format_path(use_path) + (f", copy {copy + 1} of {copies}" if copies > 1 else "")
    return replace(problem, message=f"in block {definition} (used at {where}): {problem.message}")


# ---------------------------------------------------------------------------------------------
# Definitions, checked once


def check_definitions(blocks: dict[str, Any]) -> list[Problem]:
    """Problems of the definitions themselves, whatever their uses.

    Bad class or parameter names, ``$references`` to undefined parameters, parameters never
    referenced, uses of unknown blocks, and recursion (a block that uses itself, directly or not).
    """
    problems: list[Problem] = []
    for name, definition in blocks.items():
        path = ("model", "blocks", name)
        if not is_class_name(name):
            problems.append(Problem("name", f"block name {name!r} cannot be a Python class name", path,
                                    hint="use letters, digits and _, e.g. 'ResidualBlock'"))
        problems += _check_params(name, definition, path)
        problems += _check_uses(name, definition, blocks)
    problems += _check_recursion(blocks)
    return problems


def _check_params(name: str, definition: Any, path: Path) -> Iterator[Problem]:
    for param in definition.params:
        if not is_parameter_name(param):
            yield Problem("name", f"parameter name {param!r} cannot be a Python parameter name",
                          (*path, "params", param), hint="use letters, digits and _")
    used = set()
    for ref, ref_path in _references(name, definition):
        used.add(ref)
        if ref not in definition.params:
            hint = suggest(ref, definition.params, listing="its parameters", empty="declare it under 'params'",
                           prefix="$")
            yield Problem("unknown-name", f"'${ref}' is not a parameter of block {name}", ref_path, hint=hint)
    for param in definition.params:
        if param not in used:
            yield Problem("unused", f"parameter {param!r} of block {name} is never used", (*path, "params", param),
                          hint=f"refer to it as '${param}' in a layer's arguments, or remove it")


def _references(name: str, definition: Any) -> Iterator[tuple[str, Path]]:
    """Every ``$param`` in a definition's layer arguments and nested blocks' ``params``, with its path."""
    for index, node in enumerate(definition.layers):
        node_path = ("model", "blocks", name, "layers", index)
        if node.block is not None:
            values = (node.params or {}).items()
            prefix: Path = (*node_path, "params")
        else:
            values = node.args.model_dump(exclude_unset=True).items()
            prefix = (*node_path, node.kind)
        for key, value in values:
            ref = reference(value)
            if ref is not None:
                yield ref, (*prefix, key)


def _check_uses(name: str, definition: Any, blocks: dict[str, Any]) -> Iterator[Problem]:
    for index, node in enumerate(definition.layers):
        if node.block is not None and node.block not in blocks:
            yield unknown_block(node.block, blocks, ("model", "blocks", name, "layers", index, "block"))


def unknown_block(name: str, blocks: dict[str, Any], path: Path) -> Problem:
    """The problem of a use naming no defined block."""
    hint = suggest(name, blocks, listing="defined blocks", empty="define it under model.blocks")
    return Problem("unknown-name", f"no block named {name!r}", path, hint=hint)


def _check_recursion(blocks: dict[str, Any]) -> Iterator[Problem]:
    """One problem per use that closes a cycle (A uses B, B uses A), at that use."""
    for name, definition in blocks.items():
        for index, node in enumerate(definition.layers):
            cycle = _path_back(node.block, name, blocks, ()) if node.block in blocks else None
            if cycle is not None:
                chain = " -> ".join((name, *cycle))
                yield Problem("recursion", f"block {name} uses itself ({chain}): blocks cannot be recursive",
                              ("model", "blocks", name, "layers", index, "block"))


def _path_back(start: str, target: str, blocks: dict[str, Any], seen: tuple[str, ...]) -> Optional[tuple[str, ...]]:
    """Block names from ``start`` to ``target`` following uses, or None when ``target`` is unreachable."""
    if start == target:
        return (start,)
    if start in seen:
        return None
    for node in blocks[start].layers:
        if node.block in blocks:
            rest = _path_back(node.block, target, blocks, (*seen, start))
            if rest is not None:
                return (start, *rest)
    return None


def recursive_blocks(blocks: dict[str, Any]) -> set[str]:
    """Blocks that use themselves, directly or through others: they are never expanded."""
    return {name for name in blocks for node in blocks[name].layers
            if node.block in blocks and _path_back(node.block, name, blocks, ()) is not None}


# ---------------------------------------------------------------------------------------------
# Uses


def resolve_params(
    definition: Any, use: Any, use_path: Path, outer: Optional[dict[str, Any]]
) -> tuple[Optional[dict[str, Any]], list[Problem]]:
    """Every parameter's value for one use: the use's ``params`` over the definition's defaults.

    Args:
        definition: the :class:`specnn.spec.models.BlockDef`.
        use: the node using it.
        use_path: the node's path, e.g. ``("model", "layers", 1)``.
        outer: parameter values of the block this use sits in (its ``$references`` read them);
            None for a use in ``model.layers``.

    Returns:
        The values (None when a problem makes them unknown) and the problems.
    """
    problems = []
    given = dict(use.params or {})
    for key in given:
        if key not in definition.params:
            hint = suggest(key, definition.params, listing="its parameters", empty="it takes no parameters")
            problems.append(Problem("unknown-key", f"block {use.block} has no parameter {key!r}",
                                    (*use_path, "params", key), hint=hint))
    for key, default in definition.params.items():
        if key not in given and default is None:
            problems.append(Problem("missing-key", f"block {use.block} needs a value for parameter {key!r}",
                                    (*use_path, "block"), hint=f"add 'params: {{{key}: ...}}'"))
    values = {}
    for key, default in definition.params.items():
        value = given.get(key, default)
        ref = reference(value)
        if ref is not None and outer is None:
            problems.append(Problem("unknown-name", f"'{value}' refers to a block parameter outside any block",
                                    (*use_path, "params", key), hint="give the value itself"))
        values[key] = outer[ref] if ref is not None and outer is not None and ref in outer else value
    return (None if problems else values), problems


def substitute_args(kind: str, template: Args, params: dict[str, Any]) -> tuple[Optional[Args], Optional[str]]:
    """A block layer's template arguments with ``$references`` replaced, checked by the strict model.

    Returns:
        The arguments, or None and what the strict model said about the substituted values.
    """
    values = {}
    for key, value in template.model_dump(exclude_unset=True).items():
        ref = reference(value)
        values[key] = params.get(ref) if ref is not None else value
    try:
        return LAYERS[kind].args.model_validate(values), None
    except pydantic.ValidationError as error:
        # A union field reports once per member: the first says it.
        first: dict[Any, dict] = {}
        for detail in error.errors(include_url=False):
            first.setdefault(detail["loc"][:1], detail)
        parts = [f"{loc[0]}={d['input']!r}: {d['msg']}" if loc else d["msg"] for loc, d in first.items()]
        return None, f"{kind}: " + "; ".join(parts)
