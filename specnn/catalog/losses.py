"""The loss table: ``torch.nn`` loss classes by name, with torch's arguments.

``target`` says what the data's targets must be: class indices (``index``), floats shaped like
the output (``float``). ``task`` is what the loss implies about the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import Field, PositiveFloat

from specnn.catalog.base import Args

Reduction = Literal["mean", "sum", "none"]


class ReductionArgs(Args):
    reduction: Reduction = "mean"


class CrossEntropyLossArgs(Args):
    weight: Optional[list[float]] = None
    ignore_index: int = -100
    reduction: Reduction = "mean"
    label_smoothing: float = Field(0.0, ge=0, le=1)


class NLLLossArgs(Args):
    weight: Optional[list[float]] = None
    ignore_index: int = -100
    reduction: Reduction = "mean"


class BCEWithLogitsLossArgs(Args):
    weight: Optional[list[float]] = None
    reduction: Reduction = "mean"
    pos_weight: Optional[list[float]] = None


class BCELossArgs(Args):
    weight: Optional[list[float]] = None
    reduction: Reduction = "mean"


class HuberLossArgs(Args):
    reduction: Reduction = "mean"
    delta: PositiveFloat = 1.0


class SmoothL1LossArgs(Args):
    reduction: Reduction = "mean"
    beta: float = Field(1.0, ge=0)


Task = Literal["classification", "binary", "regression"]


@dataclass(frozen=True)
class LossDef:
    name: str
    args: type[Args]
    task: Task
    target: Literal["index", "float"]


LOSSES: dict[str, LossDef] = {
    d.name: d
    for d in (
        LossDef("CrossEntropyLoss", CrossEntropyLossArgs, "classification", "index"),
        LossDef("NLLLoss", NLLLossArgs, "classification", "index"),
        LossDef("BCEWithLogitsLoss", BCEWithLogitsLossArgs, "binary", "float"),
        LossDef("BCELoss", BCELossArgs, "binary", "float"),
        LossDef("MSELoss", ReductionArgs, "regression", "float"),
        LossDef("L1Loss", ReductionArgs, "regression", "float"),
        LossDef("HuberLoss", HuberLossArgs, "regression", "float"),
        LossDef("SmoothL1Loss", SmoothL1LossArgs, "regression", "float"),
    )
}
