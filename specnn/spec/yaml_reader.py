"""YAML text -> :class:`Document`, with YAML 1.2 core scalars and every position kept.

PyYAML implements YAML 1.1: ``lr: 1e-3`` is read as a string (1.1 floats need a dot), ``yes``,
``no``, ``on`` and ``off`` become booleans, and a repeated key silently replaces the first. A spec
author means none of that, so values are built here from PyYAML's composed node tree (positions
included) with the YAML 1.2 core schema: numbers as people write them, only ``true``/``false`` are
booleans, and a duplicate key is a problem located at the second one.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from specnn.spec.document import Document
from specnn.errors import Path, Problem, SpecError

STANDARD = "tag:yaml.org,2002:"
# Tag given by our resolver to plain (unquoted, untagged) scalars: resolved below, YAML 1.2 core.
PLAIN = "tag:specnn,2024:plain"
# Explicit tags a spec may use; anything else (`!!python/object`, `!custom`) is refused.
SCALAR_TAGS = {STANDARD + kind for kind in ("str", "int", "float", "bool", "null")}

NULL = re.compile(r"^(~|null|Null|NULL|)$")
BOOL = re.compile(r"^(true|false)$", re.IGNORECASE)
INT = re.compile(r"^[-+]?[0-9]+$")
OCT = re.compile(r"^0o[0-7]+$")
HEX = re.compile(r"^0x[0-9a-fA-F]+$")
FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
INF = re.compile(r"^[-+]?\.(inf|Inf|INF)$")
NAN = re.compile(r"^\.(nan|NaN|NAN)$")


class _Loader(yaml.SafeLoader):
    """Composes nodes only; plain scalars keep their text for :func:`core_scalar`."""

    def resolve(self, kind, value, implicit):  # noqa: D102 - PyYAML hook
        if kind is ScalarNode and implicit[0]:
            return PLAIN
        return super().resolve(kind, value, implicit)


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:set`` as written in a file: ``!!set``."""
    return "!!" + tag[len(STANDARD):] if tag.startswith(STANDARD) else tag


def core_scalar(text: str) -> Any:
    """Resolve a plain scalar by the YAML 1.2 core schema.

    >>> [core_scalar(t) for t in ["1e-3", "1E5", ".5", "-2e-4", "3", "0x1f", "True", "yes", "~", ""]]
    [0.001, 100000.0, 0.5, -0.0002, 3, 31, True, 'yes', None, None]
    """
    if NULL.match(text):
        return None
    if BOOL.match(text):
        return text.lower() == "true"
    if INT.match(text):
        return int(text)
    if OCT.match(text):
        return int(text[2:], 8)
    if HEX.match(text):
        return int(text[2:], 16)
    if FLOAT.match(text):
        return float(text)
    if INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if NAN.match(text):
        return math.nan
    return text


def tagged_scalar(tag: str, text: str) -> Any:
    """A scalar with an explicit standard tag (``!!str 3``, ``!!float 1``); ValueError if it does not fit."""
    kind = tag[len(STANDARD):]
    if kind == "str":
        return text
    value = core_scalar(text)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = {"int": int, "float": float, "bool": bool, "null": type(None)}.get(kind)
    if expected is None or type(value) is not expected:
        raise ValueError(f"'{text}' is not a valid !!{kind}")
    return value


class _Builder:
    """Builds plain values from a node tree, recording positions and duplicate keys."""

    def __init__(self, document: Document):
        self.document = document
        self.active: set[int] = set()  # nodes being built: an alias back into one is a cycle

    def build(self, node: Node, path: Path) -> Any:
        self.document.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in self.active:
            raise self.error(node, "an alias refers to a node that contains it (recursive anchor)")
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            if isinstance(node, SequenceNode):
                self.check_tag(node, "seq")
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self.scalar(node)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag == PLAIN:
            return core_scalar(node.value)
        if node.tag not in SCALAR_TAGS:
            raise self.error(node, f"unsupported tag '{short_tag(node.tag)}'")
        try:
            return tagged_scalar(node.tag, node.value)
        except ValueError as error:
            raise self.error(node, str(error)) from None

    def mapping(self, node: MappingNode, path: Path) -> dict:
        self.check_tag(node, "map")
        out: dict = {}
        for key_node, value_node in self.entries(node):
            key = self.key(key_node)
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out:
                first = self.document.keys[(*path, key)]
                self.document.problems.append(Problem(
                    "duplicate-key", f"duplicate key '{key}'", (*path, key), file=self.document.file,
                    line=where[0], col=where[1], hint=f"first given at line {first[0]}"))
                continue  # keep the first value, where the document's positions point
            self.document.keys[(*path, key)] = where
            out[key] = self.build(value_node, (*path, key))
        return out

    def key(self, node: Node) -> str:
        """A mapping key as text: JSON paths and the schema know only string keys (`1: x` is "1")."""
        if not isinstance(node, ScalarNode):
            raise self.error(node, "a mapping key must be a plain value, not a list or mapping")
        if node.tag == PLAIN:
            return node.value
        return str(self.scalar(node))

    def entries(self, node: MappingNode) -> list[tuple[Node, Node]]:
        """The mapping's pairs with YAML merge keys (``<<: *defaults``) expanded; explicit keys win."""
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == "<<" and key_node.tag in (PLAIN, STANDARD + "merge"):
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise self.error(source, "a merge key (<<) needs a mapping or a list of mappings")
                    merged.extend(self.entries(source))
            else:
                own.append((key_node, value_node))
        own_keys = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        return own + [(k, v) for k, v in merged if not (isinstance(k, ScalarNode) and k.value in own_keys)]

    def check_tag(self, node: Node, kind: str) -> None:
        if node.tag != STANDARD + kind:
            raise self.error(node, f"unsupported tag '{short_tag(node.tag)}'")

    def error(self, node: Node, message: str) -> SpecError:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        return SpecError([Problem("syntax", message, file=self.document.file, line=line, col=col)])


def read_yaml(text: str, file: str | None = None) -> Document:
    """Parse YAML text into a :class:`Document`.

    Raises:
        SpecError: on a syntax error, an unsupported tag or a recursive alias (one problem).

    >>> doc = read_yaml("optimizer:\\n  Adam: {lr: 1e-3}\\n")
    >>> doc.data, doc.values[("optimizer", "Adam", "lr")], doc.keys[("optimizer", "Adam")]
    ({'optimizer': {'Adam': {'lr': 0.001}}}, (2, 14), (2, 3))
    """
    document = Document(None, file=file)
    try:
        root = yaml.compose(text, Loader=_Loader)
        if root is not None:
            document.data = _Builder(document).build(root, ())
    except yaml.MarkedYAMLError as error:
        raise SpecError([syntax_problem(error, file)]) from None
    except yaml.YAMLError as error:  # e.g. a control character: no mark
        raise SpecError([Problem("syntax", f"invalid YAML: {error}", file=file)]) from None
    except RecursionError:  # composing and building both recurse
        raise SpecError([Problem("syntax", "invalid YAML: nested too deeply", file=file)]) from None
    return document


def syntax_problem(error: yaml.MarkedYAMLError, file: str | None) -> Problem:
    mark = error.problem_mark or error.context_mark
    if error.context_mark and "simple key" in (error.context or ""):
        mark = error.context_mark  # the key missing its ':' is where the author must look
    what = error.problem or error.context or "syntax error"
    message = f"invalid YAML: {what}"
    if error.context and error.problem:
        message += f" ({error.context}"
        if error.context_mark and mark and error.context_mark.line != mark.line:
            message += f" at line {error.context_mark.line + 1}"
        message += ")"
    line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
    return Problem("syntax", message, file=file, line=line, col=col)
