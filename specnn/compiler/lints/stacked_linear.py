"""S105: two Linear layers with no nonlinearity between them collapse into one linear map.

``W2 (W1 x + b1) + b2`` is ``W x + b``: the second layer adds parameters but no capacity.
Identity, Dropout and reshaping layers between them change nothing about that; a norm layer,
an activation or a join does.
"""

from __future__ import annotations

from typing import Any

from specnn.compiler.ir import Graph
from specnn.compiler.lints.common import describe, lint_problem, producer, single_predecessor
from specnn.errors import Problem

PASS_THROUGH_ROLES = ("identity", "dropout", "reshape")


def stacked_linear(graph: Graph, spec: Any) -> list[Problem]:
    """S105 at each Linear whose input comes from another Linear through pass-through layers only."""
    problems = []
    for node in graph.nodes:
        if node.kind != "Linear":
            continue
        before = single_predecessor(graph, node)
        if before is None:
            continue
        earlier = producer(graph, before, through=PASS_THROUGH_ROLES)
        if earlier.kind == "Linear":
            problems.append(lint_problem(
                "S105", f"{describe(node)} follows {describe(earlier)} with no nonlinearity between them: "
                "together they are one linear map", node.path,
                "add an activation such as '- ReLU:' between them, or remove one",
            ))
    return problems
