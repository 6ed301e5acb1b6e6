"""What the lint rules share: the problem record and how to find "the last layer"."""

from __future__ import annotations

from typing import Iterator, Optional

from specnn.catalog.lints import LINTS
from specnn.compiler.ir import Graph, Node
from specnn.errors import Path, Problem

# Layers that pass values through unchanged (Identity) or only rearrange them (Flatten,
# Reshape, Permute): a Softmax followed by a Flatten still produces the model output.
TRANSPARENT_ROLES = ("identity", "reshape")


def lint_problem(code: str, message: str, path: Path, hint: str) -> Problem:
    """A problem with the code's severity from the lint table."""
    return Problem(code, message, path, hint=hint, severity=LINTS[code].severity)


def describe(node: Node) -> str:
    """How a message names a node: ``Linear 'fc2'``."""
    return f"{node.kind} {node.name!r}"


def output_nodes(graph: Graph) -> Iterator[Node]:
    """The nodes whose values the model returns (model inputs returned as-is are skipped)."""
    for name in dict.fromkeys(graph.outputs):
        if name in graph.by_name:
            yield graph.node(name)


def producer(graph: Graph, node: Node, through: tuple[str, ...] = TRANSPARENT_ROLES) -> Node:
    """The node that really computes ``node``'s values, looking back through ``through`` roles.

    The walk stops at a node of another role, at a join, or at a model input.
    """
    while node.layer.role in through and len(node.inputs) == 1:
        before = single_predecessor(graph, node)
        if before is None:
            return node
        node = before
    return node


def single_predecessor(graph: Graph, node: Node) -> Optional[Node]:
    """The one node ``node`` reads, or None when it reads a model input or several values."""
    if len(node.inputs) != 1 or node.inputs[0] not in graph.by_name:
        return None
    return graph.node(node.inputs[0])
