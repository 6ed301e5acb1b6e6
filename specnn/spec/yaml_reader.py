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

from specnn.errors import Path, Problem, SpecError
from specnn.spec.document import Document
from specnn.spec.limits import MAX_DEPTH, MAX_INT_DIGITS, MAX_VALUES, NESTED_TOO_DEEPLY
from specnn.spec.yaml_compose import PLAIN, STANDARD, AliasNode, ComposeError, Parser, compose

_LIBYAML = Parser is not yaml.SafeLoader

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


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:set`` as written in a file: ``!!set``."""
    return "!!" + tag[len(STANDARD):] if tag.startswith(STANDARD) else tag


def core_scalar(text: str) -> Any:
    """Resolve a plain scalar by the YAML 1.2 core schema.

    >>> [core_scalar(t) for t in ["1e-3", "1E5", ".5", "-2e-4", "3", "0x1f", "True", "yes", "~", ""]]
    [0.001, 100000.0, 0.5, -0.0002, 3, 31, True, 'yes', None, None]

    An integer of more than :data:`MAX_INT_DIGITS` digits stays text (:func:`too_long_integer`
    says so), as Python itself refuses to read one of more than 4300.
    """
    if NULL.match(text):
        return None
    if BOOL.match(text):
        return text.lower() == "true"
    if len(text) > MAX_INT_DIGITS and too_long_integer(text):
        return text
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


def too_long_integer(text: str) -> bool:
    """An integer literal with more digits than specnn reads.

    >>> too_long_integer("1" * 101), too_long_integer("-0x" + "f" * 100), too_long_integer("1" * 100 + ".0")
    (True, False, False)
    """
    digits = len(text.lstrip("+-").removeprefix("0x").removeprefix("0o"))
    return digits > MAX_INT_DIGITS and bool(INT.match(text) or OCT.match(text) or HEX.match(text))


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
    """Builds plain values from a node tree, recording positions and duplicate keys.

    Aliases are expanded here, so this is where a few lines can become billions of values: every
    value built and every merged entry counts against :data:`MAX_VALUES`, and lists and mappings
    inside one another against :data:`MAX_DEPTH`, both refused at the outermost alias being
    expanded (the one the author wrote in the document's own structure).
    """

    def __init__(self, document: Document):
        self.document = document
        self.active: set[int] = set()  # nodes being built: an alias back into one is a cycle
        self.aliases: list[AliasNode] = []  # aliases being expanded, outermost first
        self.count = 0
        self.depth = 0

    def build(self, node: Node, path: Path) -> Any:
        if isinstance(node, AliasNode):
            self.aliases.append(node)
            try:
                return self.build(node.target, path)
            finally:
                self.aliases.pop()
        self.document.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in self.active:
            raise self.error(node, "an alias refers to a node that contains it (recursive anchor)")
        self.spend(node)
        self.active.add(id(node))
        self.depth += 1
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            if isinstance(node, SequenceNode):
                self.check_tag(node, "seq")
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self.scalar(node)
        finally:
            self.active.discard(id(node))
            self.depth -= 1

    def spend(self, node: Node, values: int = 1) -> None:
        """Count ``values`` more built values; SpecError past the limits."""
        self.count += values
        if self.count > MAX_VALUES:
            raise self.limit(node, f"the spec holds more than {MAX_VALUES:,} values",
                             f"expands to more than {MAX_VALUES:,} values")
        if self.depth >= MAX_DEPTH:
            raise self.limit(node, NESTED_TOO_DEEPLY, f"nests lists and mappings more than {MAX_DEPTH} levels deep")

    def limit(self, node: Node, message: str, alias_message: str) -> SpecError:
        if self.aliases:  # aliases did it: point at the one written in the document's own structure
            alias = self.aliases[0]
            return self.error(alias, f"the alias *{alias.anchor} {alias_message}",
                              hint="write the values out, or use fewer aliases of aliases")
        return self.error(node, message)

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag == PLAIN:
            if len(node.value) > MAX_INT_DIGITS and too_long_integer(node.value):
                raise self.error(node, f"an integer of {len(node.value):,} digits is too long to be a value "
                                 f"(at most {MAX_INT_DIGITS})")
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
        for key_node, value_node in self.entries(node, 0):
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
        node = _target(node)
        if not isinstance(node, ScalarNode):
            raise self.error(node, "a mapping key must be a plain value, not a list or mapping")
        if node.tag == PLAIN:
            return node.value
        return str(self.scalar(node))

    def entries(self, node: MappingNode, depth: int) -> list[tuple[Node, Node]]:
        """The mapping's pairs with YAML merge keys (``<<: *defaults``) expanded; explicit keys win."""
        if depth >= MAX_DEPTH:
            raise self.limit(node, f"merge keys nest more than {MAX_DEPTH} levels deep",
                             f"nests merge keys more than {MAX_DEPTH} levels deep")
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == "<<" and key_node.tag in (PLAIN, STANDARD + "merge"):
                value = _target(value_node)
                sources = value.value if isinstance(value, SequenceNode) else [value_node]
                for source in sources:
                    merged.extend(self.merge_source(source, depth))
            else:
                own.append((key_node, value_node))
        own_keys = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        return own + [(k, v) for k, v in merged if not (isinstance(k, ScalarNode) and k.value in own_keys)]

    def merge_source(self, source: Node, depth: int) -> list[tuple[Node, Node]]:
        alias = isinstance(source, AliasNode)
        if alias:
            self.aliases.append(source)
        try:
            target = _target(source)
            if not isinstance(target, MappingNode):
                raise self.error(source, "a merge key (<<) needs a mapping or a list of mappings")
            pairs = self.entries(target, depth + 1)
            self.spend(source, len(pairs))  # while the alias is known: a merge-key bomb points at it
            return pairs
        finally:
            if alias:
                self.aliases.pop()

    def check_tag(self, node: Node, kind: str) -> None:
        if node.tag != STANDARD + kind:
            raise self.error(node, f"unsupported tag '{short_tag(node.tag)}'")

    def error(self, node: Node, message: str, hint: str | None = None) -> SpecError:
        return SpecError([_problem(message, self.document.file, node.start_mark, hint)])


def _target(node: Node) -> Node:
    return node.target if isinstance(node, AliasNode) else node


def _problem(message: str, file: str | None, mark, hint: str | None = None) -> Problem:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    return Problem("syntax", message, file=file, line=line, col=col, hint=hint)


def read_yaml(text: str, file: str | None = None) -> Document:
    """Parse YAML text into a :class:`Document`.

    Raises:
        SpecError: on a syntax error, an unsupported tag, a recursive alias, or past a reading
            limit (:mod:`specnn.spec.limits`): one located problem.

    >>> doc = read_yaml("optimizer:\\n  Adam: {lr: 1e-3}\\n")
    >>> doc.data, doc.values[("optimizer", "Adam", "lr")], doc.keys[("optimizer", "Adam")]
    ({'optimizer': {'Adam': {'lr': 0.001}}}, (2, 14), (2, 3))
    """
    document = Document(None, file=file)
    try:
        root = compose(text)
        if root is not None:
            document.data = _Builder(document).build(root, ())
    except ComposeError as error:
        raise SpecError([_problem(error.message, file, error.mark)]) from None
    except yaml.MarkedYAMLError as error:
        raise SpecError([syntax_problem(error, file)]) from None
    except yaml.reader.ReaderError as error:  # a control character or bad byte: no mark, a position
        raise SpecError([reader_problem(error, text, file)]) from None
    except yaml.YAMLError as error:
        raise SpecError([Problem("syntax", f"invalid YAML: {error}", file=file)]) from None
    return document


def reader_problem(error: yaml.reader.ReaderError, text: str, file: str | None) -> Problem:
    """A character YAML does not allow, located (libyaml counts UTF-8 bytes, PyYAML characters)."""
    before = text.encode("utf-8")[:error.position].decode("utf-8", "replace") if _LIBYAML else text[:error.position]
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    char = error.character
    what = f"character {char!r}" if isinstance(char, str) else f"byte 0x{char:02x}" if isinstance(char, int) else "a character"
    return Problem("syntax", f"invalid YAML: {what} is not allowed in YAML text", file=file, line=line, col=col,
                   hint="remove it, or write it as an escape inside double quotes")


def syntax_problem(error: yaml.MarkedYAMLError, file: str | None) -> Problem:
    mark = error.problem_mark or error.context_mark
    if error.context_mark and "simple key" in (error.context or ""):
        mark = error.context_mark  # the key missing its ':' is where the author must look
    what = error.problem or error.context or "syntax error"
    if "nesting depth" in what:  # libyaml's own limit, met while it scans ahead of the composer
        return _problem(NESTED_TOO_DEEPLY, file, mark)
    message = f"invalid YAML: {what}"
    if error.context and error.problem:
        message += f" ({error.context}"
        if error.context_mark and mark and error.context_mark.line != mark.line:
            message += f" at line {error.context_mark.line + 1}"
        message += ")"
    line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
    return Problem("syntax", message, file=file, line=line, col=col)
