"""S101-S104: the last layer's activation does not match what the loss expects.

CrossEntropyLoss and BCEWithLogitsLoss take raw scores and apply (Log)Softmax or a sigmoid
themselves; BCELoss and NLLLoss take probabilities / log-probabilities, so the model must end in
Sigmoid / LogSoftmax. A mismatch trains badly without any error from torch.
"""

from __future__ import annotations

from typing import Any

from specnn.compiler.ir import Graph, Node
from specnn.compiler.lints.common import describe, lint_problem, output_nodes, producer
from specnn.errors import Problem


def final_activation(graph: Graph, spec: Any) -> list[Problem]:
    """S101-S104 for each node producing a model output, by that output's loss."""
    losses = {head.output: head.kind for head in spec.losses}  # {None: kind} for the one-loss form
    problems = []
    for output in output_nodes(graph):
        check = CHECKS.get(losses.get(output.name if spec.several_losses else None, ""))
        problem = check(producer(graph, output)) if check is not None else None
        if problem is not None:
            problems.append(problem)
    return problems


def _cross_entropy(last: Node) -> Problem | None:
    if last.kind not in ("Softmax", "LogSoftmax"):
        return None
    other = "remove it" if last.kind == "Softmax" else "remove it, or use NLLLoss, which expects log-probabilities"
    return lint_problem(
        "S101", f"{describe(last)} produces the model output, but CrossEntropyLoss applies LogSoftmax itself",
        last.path, f"{other}: CrossEntropyLoss takes raw scores (logits)",
    )


def _bce_with_logits(last: Node) -> Problem | None:
    if last.kind != "Sigmoid":
        return None
    return lint_problem(
        "S102", f"{describe(last)} produces the model output, but BCEWithLogitsLoss applies a sigmoid itself",
        last.path, "remove it: BCEWithLogitsLoss takes raw scores (logits), or use BCELoss",
    )


def _bce(last: Node) -> Problem | None:
    if last.kind == "Sigmoid":
        return None
    return lint_problem(
        "S103", f"BCELoss needs probabilities in [0, 1], but the model output comes from {describe(last)}, "
        "not a Sigmoid", last.path,
        "add '- Sigmoid:' as the last layer, or use BCEWithLogitsLoss without one (numerically safer)",
    )


def _nll(last: Node) -> Problem | None:
    if last.kind == "LogSoftmax":
        return None
    return lint_problem(
        "S104", f"NLLLoss needs log-probabilities, but the model output comes from {describe(last)}, "
        "not a LogSoftmax", last.path,
        "add '- LogSoftmax: {dim: -1}' as the last layer, or use CrossEntropyLoss without one",
    )


CHECKS = {
    "CrossEntropyLoss": _cross_entropy,
    "BCEWithLogitsLoss": _bce_with_logits,
    "BCELoss": _bce,
    "NLLLoss": _nll,
}
