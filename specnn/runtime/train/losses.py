"""The loss a spec names, built with its arguments; ``class_weight`` computed on the training split.

``class_weight: balanced`` gives each class ``n_samples / (n_classes * count)`` (scikit-learn's
``compute_class_weight('balanced')``), counted on the training split only, so the validation rows
never shape the loss. The weights a run trained with go into ``meta.json`` (``class_weight``), so
``evaluate`` scores held-out data with the same loss.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from specnn.catalog.losses import LOSSES
from specnn.errors import SpecError, spec_problem


def class_weights(spec: Any, targets: torch.Tensor, n_classes: int,
                  classes: Optional[Sequence[str]] = None, head: Any = None) -> Optional[list[float]]:
    """The per-class weights ``loss.<Loss>.class_weight`` asks for; None when it asks for none.

    Args:
        spec: the spec (its loss).
        targets: the training split's class indices.
        n_classes: the model's output width (one logit per class).
        classes: class names, for messages.
        head: with a loss per output, that output's loss (``spec.losses``); default the one loss.

    Raises:
        SpecError: a list of the wrong length, or ``balanced`` with a class that has no training
            sample (its weight would be infinite), located at ``class_weight``.
    """
    head = head if head is not None else spec.losses[0]
    given = getattr(head.args, "weight", None)
    if given is not None and LOSSES[head.kind].task == "classification" and len(given) != n_classes:
        # torch would only fail at the first batch, after the run folder is written.
        raise SpecError([spec_problem(spec, (*head.path, "weight"),
                                      f"gives {len(given)} weights for {n_classes} classes",
                                      code="class-weight", hint="one weight per class, in class order")])
    wanted = getattr(head.args, "class_weight", None)
    if wanted is None:
        return None
    path = (*head.path, "class_weight")
    if wanted != "balanced":
        if len(wanted) != n_classes:
            raise SpecError([spec_problem(spec, path, f"gives {len(wanted)} weights for {n_classes} classes",
                                          code="class-weight", hint="one weight per class, in class order")])
        return [float(w) for w in wanted]
    counts = torch.bincount(targets.reshape(-1).long().cpu(), minlength=n_classes)[:n_classes]
    empty = [i for i, c in enumerate(counts.tolist()) if c == 0]
    if empty:
        names = ", ".join(repr(classes[i]) if classes and i < len(classes) else str(i) for i in empty)
        raise SpecError([spec_problem(
            spec, path, f"balanced weights need every class in the training split; no sample of class {names}",
            code="class-weight", hint="give a list of weights instead, or use more data")])
    return (counts.sum() / (n_classes * counts.double())).tolist()


def make_loss(spec: Any, device: torch.device, class_weight: Optional[Sequence[float]] = None) -> torch.nn.Module:
    """The torch.nn loss the spec names, with its arguments (weight lists become tensors).

    ``class_weight``: the weights :func:`class_weights` computed (or a run recorded), as torch's ``weight``.
    """
    return build_loss(spec.loss.kind, spec.loss.args, device, class_weight)


def build_loss(kind: str, arguments: Any, device: torch.device,
               class_weight: Optional[Sequence[float]] = None) -> torch.nn.Module:
    """The torch.nn loss ``kind`` with its spec ``arguments`` (one output's, with a loss per output)."""
    entry = LOSSES[kind]
    args = {k: v for k, v in arguments.changed().items() if k not in entry.spec_only}
    if class_weight is not None:
        args["weight"] = list(class_weight)
    for key in ("weight", "pos_weight"):
        if args.get(key) is not None:
            args[key] = torch.tensor(args[key], dtype=torch.float32, device=device)
    return (DivergedBCELoss if kind == "BCELoss" else getattr(torch.nn, kind))(**args)


class DivergedBCELoss(torch.nn.BCELoss):
    """BCELoss whose NaN inputs (a diverged model's Sigmoid) give a NaN loss instead of torch's error.

    torch refuses a probability outside [0, 1], NaN included, with "all elements of input should be
    between 0 and 1"; the loop reports a NaN loss as such, saying which batch and what to change.
    The same parameters and state as torch's BCELoss: checkpoints do not tell them apart.
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        try:
            return super().forward(input, target)
        except RuntimeError:
            if bool(torch.isfinite(input).all()):
                raise
            nan = input * float("nan")  # keeps the graph: backward gives NaN gradients, not an error
            return nan if self.reduction == "none" else nan.sum()
