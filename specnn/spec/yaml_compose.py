"""YAML events -> a node tree, iteratively, with nesting bounded and aliases kept visible.

PyYAML's own composer recurses once per nesting level (libyaml's in C, without Python's recursion
guard) and replaces an alias by the node it names, so a reader cannot tell where an alias was
written. This composer reads the parser's events with an explicit stack, refuses nesting deeper
than :data:`~specnn.spec.limits.MAX_DEPTH` where it starts, and leaves each alias as an
:class:`AliasNode` so the builder can count what it expands and point at the alias that explodes.
"""

from __future__ import annotations

from typing import Optional, Union

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingStartEvent,
    ScalarEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from specnn.spec.limits import MAX_DEPTH, NESTED_TOO_DEEPLY

STANDARD = "tag:yaml.org,2002:"
# Tag given to plain (unquoted, untagged) scalars: the builder resolves them by YAML 1.2 core.
PLAIN = "tag:specnn,2024:plain"

# libyaml's parser (C) when PyYAML has it: ~50x faster than the pure-Python one, so a 10 MB spec
# parses in about a second. Only its events are used.
Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class AliasNode(Node):
    """``*name``: where the alias was written, and the node it names."""

    id = "alias"

    def __init__(self, target: Node, anchor: str, start_mark, end_mark):
        super().__init__(target.tag, target.value, start_mark, end_mark)
        self.target, self.anchor = target, anchor


class ComposeError(Exception):
    """A structural problem found while composing: message and the mark it is at."""

    def __init__(self, message: str, mark):
        super().__init__(message)
        self.message, self.mark = message, mark


def compose(text: str) -> Optional[Node]:
    """The single document in ``text`` as nodes, or None for an empty stream.

    Raises:
        yaml.YAMLError: a syntax error from the parser.
        ComposeError: an undefined or duplicate anchor, nesting too deep, several documents.
    """
    parser = Parser(text)
    try:
        parser.get_event()  # stream start
        if parser.check_event(StreamEndEvent):
            return None
        parser.get_event()  # document start
        root = _Composer(parser).document()
        parser.get_event()  # document end
        if parser.check_event(DocumentStartEvent):
            raise ComposeError("expected a single document in the file, found a second one", parser.peek_event().start_mark)
        return root
    finally:
        parser.dispose()


class _Composer:
    def __init__(self, parser):
        self.parser = parser
        self.anchors: dict[str, Node] = {}

    def document(self) -> Node:
        # Each frame: [collection node, key waiting for its value (mappings)].
        stack: list[list] = []
        while True:
            event = self.parser.get_event()
            if isinstance(event, CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise ComposeError(NESTED_TOO_DEEPLY, event.start_mark)
                stack.append([self.collection(event), None])
                continue
            if isinstance(event, (ScalarEvent, AliasEvent)):
                node = self.scalar(event) if isinstance(event, ScalarEvent) else self.alias(event)
            else:  # the end of the innermost collection
                node = stack.pop()[0]
                node.end_mark = event.end_mark
            if not stack:
                return node
            _attach(stack[-1], node)

    def collection(self, event: Union[MappingStartEvent, yaml.SequenceStartEvent]) -> Node:
        mapping = isinstance(event, MappingStartEvent)
        tag = event.tag if event.tag not in (None, "!") else STANDARD + ("map" if mapping else "seq")
        kind = MappingNode if mapping else SequenceNode
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        self.anchor(event, node)
        return node

    def scalar(self, event: ScalarEvent) -> ScalarNode:
        tag = event.tag
        if tag is None or tag == "!":
            tag = PLAIN if event.implicit[0] and tag is None else STANDARD + "str"
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        self.anchor(event, node)
        return node

    def alias(self, event: AliasEvent) -> AliasNode:
        target = self.anchors.get(event.anchor)
        if target is None:
            raise ComposeError(f"found undefined alias '*{event.anchor}'", event.start_mark)
        return AliasNode(target, event.anchor, event.start_mark, event.end_mark)

    def anchor(self, event, node: Node) -> None:
        # Registered at the start, as PyYAML does: an alias inside its own anchor is a cycle the
        # builder reports.
        if event.anchor is not None:
            if event.anchor in self.anchors:
                first = self.anchors[event.anchor].start_mark.line + 1
                raise ComposeError(f"found duplicate anchor '&{event.anchor}' (first at line {first})",
                                   event.start_mark)
            self.anchors[event.anchor] = node


def _attach(frame: list, node: Node) -> None:
    parent = frame[0]
    if isinstance(parent, SequenceNode):
        parent.value.append(node)
    elif frame[1] is None:
        frame[1] = node
    else:
        parent.value.append((frame[1], node))
        frame[1] = None
