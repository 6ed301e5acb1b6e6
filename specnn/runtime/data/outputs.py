"""Targets for a model with several outputs, each with its own loss (``loss: {species: ..., width: ...}``).

Every output's targets travel as one float32 matrix, one block of columns per output in ``loss:``
order: a class index in one column, a regression or binary output's values in as many columns as
the output has per sample. Splitting, shuffling, batching and sharding then treat the targets as
one tensor, exactly as one output's; ``runtime/train/outputs.py`` cuts the blocks apart per batch
for each output's loss and metrics. Class indices are exact in float32 (up to 2**24 classes).

Each output's targets are encoded as one target is today: text labels become class indices in
sorted order (the names kept), regression targets are scaled with ``data.preprocess.scale_target``
fitted on the training split. ``preprocess.OutputTarget`` records both in ``preprocess.json`` (its
``outputs`` list), so ``evaluate`` and ``predict`` apply them again.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from specnn.catalog.losses import LOSSES
from specnn.errors import DataError, SpecError, locate
from specnn.runtime.data import tensors
from specnn.runtime.data.preprocess import OutputTarget, TargetScale

if TYPE_CHECKING:
    from specnn.runtime.data.sources import Arrays
    from specnn.spec.models import Spec


def target_layout(spec: "Spec", output_shapes: Mapping[str, Sequence[int]]) -> list[OutputTarget]:
    """Each output's block of the target matrix, in ``loss:`` order."""
    layout, start = [], 0
    for head in spec.losses:
        shape = tuple(output_shapes[head.output])
        width = 1 if LOSSES[head.kind].target == "index" else math.prod(shape)
        layout.append(OutputTarget(head.output, head.kind, shape, start, start + width, _source(spec, head.output)))
        start += width
    return layout


def _source(spec: "Spec", output: str) -> Optional[str]:
    args = spec.data.args
    for field in ("targets", "y"):
        given = getattr(args, field, None)
        if isinstance(given, dict) and isinstance(given.get(output), str):
            where = f"{args.path}, " if getattr(args, "path", None) else ""
            return f"{where}{'column' if field == 'targets' else 'array'} '{given[output]}'"
    return None


def pack(spec: "Spec", layout: list[OutputTarget], arrays: "Arrays") -> np.ndarray:
    """Every output's targets, in its loss's form, as one float32 matrix (N, columns); classes recorded.

    Raises:
        DataError: an output's targets do not fit its loss or its shape, located at that output's loss.
    """
    blocks = []
    for target in layout:
        values, classes = arrays.by_output[target.output]
        target.classes = classes
        blocks.append(_for_loss(spec, target, values).reshape(len(values), -1).astype(np.float32))
    return np.concatenate(blocks, axis=1)


def _for_loss(spec: "Spec", target: OutputTarget, values: np.ndarray) -> np.ndarray:
    try:
        return tensors.prepare_targets(values, target.loss, target.shape)
    except DataError as error:
        origin = f" (output '{target.output}', from {target.source})" if target.source else \
            f" (output '{target.output}')"
        path = ("loss", target.output)
        raise DataError(locate(spec, [replace(p, message=p.message + origin, path=path) if p.file is None else p
                                      for p in error.problems])) from None


def stratify_labels(layout: list[OutputTarget], targets: np.ndarray) -> Optional[np.ndarray]:
    """``data.stratify`` with several outputs: the first classifier's classes (None: no classifier)."""
    first = next((t for t in layout if t.indices), None)
    return None if first is None else first.block(targets)


def scale_targets(spec: "Spec", layout: list[OutputTarget], train: "Arrays", *others: Optional["Arrays"]) -> None:
    """``scale_target``: each regression output's targets scaled, fitted on the training split."""
    method = spec.data.preprocess.scale_target
    if method == "none":
        return
    scaled = [t for t in layout if t.task == "regression"]
    if not scaled:
        from specnn.errors import spec_problem

        raise SpecError([spec_problem(spec, ("data", "preprocess", "scale_target"), "scale_target is for regression "
                                      "targets; no output has a regression loss", code="preprocess",
                                      hint="remove scale_target")])
    for target in scaled:
        target.scale = TargetScale.fit(method, train.targets[:, target.start:target.stop])
    apply_scales(layout, train, *others)


def apply_scales(layout: list[OutputTarget], *parts: Optional["Arrays"]) -> None:
    """Scale each regression output's columns of each part's targets, in place (a run's fitted scaling)."""
    for part in parts:
        if part is None:
            continue
        for target in layout:
            if target.scale is not None:
                columns = slice(target.start, target.stop)
                part.targets[:, columns] = target.scale.apply(np.ascontiguousarray(part.targets[:, columns]))


def class_count_problems(compiled: Any, layout: list[OutputTarget], arrays: "Arrays") -> list:
    """Lint S108 per classifier output: its width must equal the number of classes in its targets."""
    from specnn.compiler.lints import check_output_classes, count_classes

    problems = []
    for target in layout:
        if target.indices:
            values, classes = arrays.by_output[target.output]
            problems += check_output_classes(compiled, count_classes(values, classes), target.output)
    return problems
