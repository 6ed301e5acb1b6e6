"""The loss table: ``torch.nn`` loss classes by name, with torch's arguments.

``target`` says what the data's targets must be: class indices (``index``), floats shaped like
the output (``float``). ``task`` is what the loss implies about the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional, Union

from pydantic import Field, PositiveFloat, model_validator
from pydantic_core import PydanticCustomError

from specnn.catalog.base import Args

Reduction = Literal["mean", "sum", "none"]
# torch reads ignore_index as a C long (`ignore_index: 1e30` overflowed inside the loss).
IgnoreIndex = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class ReductionArgs(Args):
    reduction: Reduction = "mean"


ClassWeight = Optional[Union[Literal["balanced"], list[PositiveFloat]]]
CLASS_WEIGHT_DESCRIPTION = (
    "not a torch argument: 'balanced' weighs each class by n_samples / (n_classes * its count) in the "
    "training split (scikit-learn's rule), or a list of one weight per class; it becomes torch's weight"
)


class ClassWeighted(Args):
    """Classification losses: ``class_weight`` computes torch's ``weight`` from the training split."""

    @model_validator(mode="after")
    def _one_kind_of_weight(self) -> "ClassWeighted":
        if self.weight is not None and self.class_weight is not None:
            raise PydanticCustomError("weights", "give weight or class_weight, not both", {})
        return self


class NLLLossArgs(ClassWeighted):
    weight: Optional[list[float]] = None
    ignore_index: IgnoreIndex = -100
    reduction: Reduction = "mean"
    class_weight: ClassWeight = Field(None, description=CLASS_WEIGHT_DESCRIPTION)


class CrossEntropyLossArgs(ClassWeighted):
    weight: Optional[list[float]] = None
    ignore_index: IgnoreIndex = -100
    reduction: Reduction = "mean"
    label_smoothing: float = Field(0.0, ge=0, le=1)
    class_weight: ClassWeight = Field(None, description=CLASS_WEIGHT_DESCRIPTION)


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
    spec_only: tuple[str, ...] = ()  # arguments that are not torch's (computed into torch's before building)


LOSSES: dict[str, LossDef] = {
    d.name: d
    for d in (
        LossDef("CrossEntropyLoss", CrossEntropyLossArgs, "classification", "index", ("class_weight",)),
        LossDef("NLLLoss", NLLLossArgs, "classification", "index", ("class_weight",)),
        LossDef("BCEWithLogitsLoss", BCEWithLogitsLossArgs, "binary", "float"),
        LossDef("BCELoss", BCELossArgs, "binary", "float"),
        LossDef("MSELoss", ReductionArgs, "regression", "float"),
        LossDef("L1Loss", ReductionArgs, "regression", "float"),
        LossDef("HuberLoss", HuberLossArgs, "regression", "float"),
        LossDef("SmoothL1Loss", SmoothL1LossArgs, "regression", "float"),
    )
}
