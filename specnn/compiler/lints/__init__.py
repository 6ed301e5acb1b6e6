"""Lints: the classic mistakes a spec can still make, found on the typed graph.

Each rule is one function ``(graph, spec) -> list[Problem]`` in its own module, listed in
:data:`RULES` (the sqlglot optimizer's layout). A rule returns problems instead of raising; codes
and severities come from the lint table, ``specnn/catalog/lints.py``. The compiler calls
:func:`run_lints` after shape inference; the trainer calls :func:`check_output_classes` once the
data is read, since only the data knows how many classes there are.
"""

from __future__ import annotations

from typing import Any, Callable

from specnn.compiler.ir import Graph
from specnn.compiler.lints.channels_last import channels_last_conv
from specnn.compiler.lints.final_activation import final_activation
from specnn.compiler.lints.output_classes import check_output_classes, count_classes
from specnn.compiler.lints.stacked_linear import stacked_linear
from specnn.compiler.lints.trailing_dropout import trailing_dropout
from specnn.spec.errors import Problem

Rule = Callable[[Graph, Any], list[Problem]]

RULES: tuple[Rule, ...] = (
    final_activation,  # S101, S102, S103, S104
    stacked_linear,  # S105
    trailing_dropout,  # S106
    channels_last_conv,  # S107
)

__all__ = ["RULES", "check_output_classes", "count_classes", "run_lints"]


def run_lints(graph: Graph, spec: Any) -> list[Problem]:
    """Every rule's problems (unlocated), less those the spec's ``lint: {ignore: [...]}`` silences.

    Rules tolerate nodes whose shape could not be inferred, so lints are reported together with
    shape problems.
    """
    found = [problem for rule in RULES for problem in rule(graph, spec)]
    return not_ignored(found, spec)


def not_ignored(problems: list[Problem], spec: Any) -> list[Problem]:
    ignored = set(spec.lint.ignore)
    return [p for p in problems if p.code not in ignored]
