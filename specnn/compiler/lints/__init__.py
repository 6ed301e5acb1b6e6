"""Lints: the classic mistakes a spec can still make, found on the typed graph.

Each rule is one function ``(graph, spec) -> list[Problem]`` in its own module, listed in
:data:`RULES` (the sqlglot optimizer's layout). A rule returns problems instead of raising; codes
and severities come from the lint table, ``specnn/catalog/lints.py``. The compiler calls
:func:`run_lints` after shape inference; the trainer calls :func:`check_output_classes` once the
data is read, since only the data knows how many classes there are.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from specnn.compiler.ir import Graph, Node
from specnn.compiler.lints.channels_last import channels_last_conv, model_input_read
from specnn.compiler.lints.final_activation import final_activation
from specnn.compiler.lints.output_classes import check_output_classes, count_classes
from specnn.compiler.lints.stacked_linear import stacked_linear
from specnn.compiler.lints.trailing_dropout import trailing_dropout
from specnn.errors import Problem, format_path

Rule = Callable[[Graph, Any], list[Problem]]

RULES: tuple[Rule, ...] = (
    final_activation,  # S101, S102, S103, S104
    stacked_linear,  # S105
    trailing_dropout,  # S106
    channels_last_conv,  # S107
)
# The rules that also run over each block instance's body. The final-activation and trailing-
# dropout rules are about the model's output, which a block's last node is not.
BLOCK_BODY_RULES: tuple[Rule, ...] = (
    stacked_linear,  # S105
    channels_last_conv,  # S107
)
# Rules that judge a model input: in a block body they run only where the use reads a model input
# (a block's input is a model input there, and elsewhere a feature map: [32, 4, 4] is not an image).
MODEL_INPUT_RULES: tuple[Rule, ...] = (channels_last_conv,)

__all__ = ["BLOCK_BODY_RULES", "RULES", "check_output_classes", "count_classes", "run_lints"]


def run_lints(graph: Graph, spec: Any) -> list[Problem]:
    """Every rule's problems (unlocated), less those the spec's ``lint: {ignore: [...]}`` silences.

    Rules tolerate nodes whose shape could not be inferred, so lints are reported together with
    shape problems.
    """
    found = [problem for rule in RULES for problem in rule(graph, spec)] + block_problems(graph, spec)
    return not_ignored(found, spec)


def block_problems(graph: Graph, spec: Any, model_inputs: frozenset[str] | None = None) -> list[Problem]:
    """:data:`BLOCK_BODY_RULES` over every block instance in ``graph`` (nested blocks too).

    A problem stays at the block definition's node (that is where the fix goes) and its message
    names the use; instances that give the same problem (``repeat``) report it once.
    ``model_inputs``: which of ``graph``'s inputs are the model's (default: all of them).
    """
    model_inputs = frozenset(graph.inputs) if model_inputs is None else model_inputs
    found: list[Problem] = []
    for node in graph.nodes:
        if node.block is None:
            continue
        fed = model_input_read(graph, node) in model_inputs
        rules = [r for r in BLOCK_BODY_RULES if fed or r not in MODEL_INPUT_RULES]
        for instance in node.block.instances:
            inner = [p for rule in rules for p in rule(instance.body, spec)]
            inner += block_problems(instance.body, spec, frozenset(instance.body.inputs) if fed else frozenset())
            found += [in_block_use(problem, node) for problem in inner]
    return list(dict.fromkeys(found))


def in_block_use(problem: Problem, use: Node) -> Problem:
    """``problem`` from a block body, its message saying which use of the block it is about."""
    where = format_path(use.block.use_path)
    return replace(problem, message=f"in block {use.kind} used as {use.name!r} ({where}): {problem.message}")


def not_ignored(problems: list[Problem], spec: Any) -> list[Problem]:
    ignored = set(spec.lint.ignore)
    return [p for p in problems if p.code not in ignored]
