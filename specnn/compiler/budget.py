"""The parameter budget: a model too large to allocate is refused before torch is asked to build it.

Parameters come from the catalogue's formulas and the inferred shapes (the same counts ``specnn
inspect`` shows), so a spec of 100 layers of a billion parameters each is a located problem in
milliseconds instead of memory growing to the machine's limit. The limit is ``train.max_parameters``
(raise it in the spec, or with ``--max-parameters`` on the command line, for a model that is meant
to be that large).
"""

from __future__ import annotations

from specnn.compiler.ir import Graph
from specnn.errors import Problem

# Training holds each parameter as float32 weights, gradients and two Adam moments.
TRAINING_BYTES_PER_PARAMETER = 16


def training_bytes(parameters: int) -> int:
    """A floor on the memory training needs: weights, gradients and optimizer state (no activations).

    >>> training_bytes(1_000_000)
    16000000
    """
    return parameters * TRAINING_BYTES_PER_PARAMETER


def _size(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def budget_problems(graph: Graph, limit: int) -> list[Problem]:
    """A problem at the largest layer when the model has more than ``limit`` parameters."""
    counts = [(node.parameter_count(), node) for node in graph.nodes]
    total = sum(count for count, _ in counts)
    if total <= limit:
        return []
    largest = sorted(counts, key=lambda pair: -pair[0])[:3]
    named = ", ".join(f"{node.name} ({node.kind}) {count:,}" for count, node in largest if count)
    return [Problem(
        "budget", f"the model has {total:,} parameters, more than train.max_parameters = {limit:,} "
        f"(training needs at least {_size(training_bytes(total))}); largest: {named}", largest[0][1].path,
        hint="make the largest layers smaller, or raise train.max_parameters (or --max-parameters)",
    )]


def budget_line(total: int, limit: int) -> str:
    """What ``specnn inspect`` prints under its table.

    >>> budget_line(1_000_000, 1_000_000_000)
    'training memory: at least 16 MB (weights, gradients, Adam state); budget: 1,000,000,000 parameters (0.10% used)'
    """
    return (f"training memory: at least {_size(training_bytes(total))} (weights, gradients, Adam state); "
            f"budget: {limit:,} parameters ({100 * total / limit:.2f}% used)")
