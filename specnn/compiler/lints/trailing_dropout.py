"""S106: Dropout as the last layer zeroes (and rescales) the model's outputs while training."""

from __future__ import annotations

from typing import Any

from specnn.compiler.ir import Graph
from specnn.compiler.lints.common import describe, lint_problem, output_nodes, producer
from specnn.errors import Problem


def trailing_dropout(graph: Graph, spec: Any) -> list[Problem]:
    """S106 at each dropout layer that produces a model output."""
    problems = []
    for output in output_nodes(graph):
        last = producer(graph, output)
        if last.layer.role == "dropout":
            problems.append(lint_problem(
                "S106", f"{describe(last)} is the last layer: it drops model outputs during training", last.path,
                "move it before the last Linear layer, or remove it",
            ))
    return problems
