"""S108: the model's output width differs from the number of classes the data has.

Only known once the data is read, so the trainer calls :func:`check_output_classes` after
loading it. Too few outputs fails later with an out-of-range label; too many trains without
complaint, with outputs no label ever reaches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from specnn.catalog.losses import LOSSES
from specnn.compiler.lints.common import describe, lint_problem, output_nodes
from specnn.errors import locate

if TYPE_CHECKING:
    import numpy as np


def check_output_classes(compiled: Any, num_classes: Optional[int], output: Optional[str] = None) -> list:
    """S108 when a classifier's output width is not the data's number of classes.

    Args:
        compiled: a :class:`specnn.compiler.CompiledModel` (its spec names the loss and the ignores).
        num_classes: how many classes the data has (see :func:`count_classes`); None when unknown.
        output: with a loss per output, the output whose targets ``num_classes`` counts.

    Returns:
        Located problems (empty when the widths agree, the loss does not take class indices, or
        ``S108`` is ignored), located at the layer producing the model output.
    """
    spec = compiled.spec
    loss = next(head.kind for head in spec.losses if head.output == output)
    if num_classes is None or LOSSES[loss].target != "index" or "S108" in spec.lint.ignore:
        return []
    problems = []
    for last in output_nodes(compiled.graph):
        if output is not None and last.name != output:
            continue
        # CrossEntropyLoss / NLLLoss read classes along the first per-sample dimension.
        width = last.shape[0] if last.shape else None
        if width is None or width == num_classes:
            continue
        hint = (f"set out_features: {num_classes}" if last.kind == "Linear"
                else f"make the last layer produce {num_classes} values per sample")
        problem = lint_problem(
            "S108", f"{describe(last)} gives {width} output{'s' if width != 1 else ''} per sample, "
            f"but the data has {num_classes} classes", last.path, hint,
        )
        problems.append(problem)
    return locate(spec, problems)


def count_classes(targets: "np.ndarray", classes: Optional[Sequence[str]]) -> Optional[int]:
    """The data's number of classes: named labels, else the largest integer label + 1.

    None when the targets are not one integer label per sample (then they are not classes).

    >>> import numpy as np
    >>> count_classes(np.array([0, 2, 1, 2]), None), count_classes(np.array([0, 1]), ["a", "b", "c"])
    (3, 3)
    >>> count_classes(np.array([0.5, 1.0]), None) is None
    True
    """
    # numpy only here: validate never reads data, and never pays for importing numpy.
    import numpy as np

    if classes:
        return len(classes)
    if targets.ndim != 1 or targets.size == 0 or not np.issubdtype(targets.dtype, np.number):
        return None
    if not np.all(np.isfinite(targets)) or not np.all(targets == np.round(targets)) or targets.min() < 0:
        return None
    return int(targets.max()) + 1
