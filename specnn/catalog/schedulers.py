"""The learning-rate scheduler table: ``torch.optim.lr_scheduler`` classes by name.

Arguments keep torch's names and defaults, with two differences the runtime owns:

- ``OneCycleLR``: ``total_steps``, ``epochs`` and ``steps_per_epoch`` are filled in from the
  run (``train.epochs`` and the number of batches), so a spec gives only ``max_lr`` and shape.
- ``CosineAnnealingLR``: ``T_max`` may be left out; it then covers the whole run after warmup.
- ``ReduceLROnPlateau``: ``monitor`` (specnn's own key, not passed to torch) names the epoch
  metric it watches, ``val_loss`` by default.

``interval`` says when the runtime steps an entry: after every ``epoch``, after every
``batch``, or after every epoch with the monitored ``metric`` value.

A spec may put a linear warmup in front of any of them::

    train:
      scheduler:
        CosineAnnealingLR: {eta_min: 1.0e-5}
        warmup: {epochs: 2, start_factor: 0.1}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from pydantic_core import PydanticCustomError

from specnn.catalog.base import Args

Interval = Literal["epoch", "batch", "metric"]


class StepLRArgs(Args):
    step_size: PositiveInt
    gamma: PositiveFloat = 0.1


class MultiStepLRArgs(Args):
    milestones: list[PositiveInt] = Field(min_length=1)
    gamma: PositiveFloat = 0.1


class ExponentialLRArgs(Args):
    gamma: PositiveFloat


class CosineAnnealingLRArgs(Args):
    T_max: Optional[PositiveInt] = Field(None, description="epochs per half cycle; default: the run after warmup")
    eta_min: NonNegativeFloat = 0.0


class OneCycleLRArgs(Args):
    max_lr: Union[PositiveFloat, list[PositiveFloat]]
    pct_start: float = Field(0.3, gt=0, lt=1)
    anneal_strategy: Literal["cos", "linear"] = "cos"
    cycle_momentum: bool = True
    base_momentum: Union[NonNegativeFloat, list[NonNegativeFloat]] = 0.85
    max_momentum: Union[NonNegativeFloat, list[NonNegativeFloat]] = 0.95
    div_factor: PositiveFloat = 25.0
    final_div_factor: PositiveFloat = 1e4
    three_phase: bool = False


class ReduceLROnPlateauArgs(Args):
    monitor: str = Field("val_loss", description="the epoch metric to watch (specnn's key, not torch's)")
    mode: Literal["min", "max"] = "min"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: NonNegativeInt = 10
    threshold: NonNegativeFloat = 1e-4
    threshold_mode: Literal["rel", "abs"] = "rel"
    cooldown: NonNegativeInt = 0
    min_lr: Union[NonNegativeFloat, list[NonNegativeFloat]] = 0.0
    eps: NonNegativeFloat = 1e-8


class Warmup(Args):
    """A linear ramp from ``start_factor`` × lr to lr over the first ``steps`` batches or ``epochs``.

    The ramp moves after every batch in both cases; the scheduler it precedes starts from the
    optimizer's lr once the ramp is over (as ``torch.optim.lr_scheduler.SequentialLR`` would).
    ``start_factor`` defaults to ``torch.optim.lr_scheduler.LinearLR``'s.
    """

    steps: Optional[PositiveInt] = None
    epochs: Optional[PositiveInt] = None
    start_factor: float = Field(1.0 / 3.0, gt=0, le=1)

    @model_validator(mode="after")
    def _one_length(self) -> "Warmup":
        if (self.steps is None) == (self.epochs is None):
            raise PydanticCustomError("warmup", "give exactly one of 'steps' (batches) or 'epochs'")
        return self

    def batches(self, steps_per_epoch: int) -> int:
        """The warmup's length in batches."""
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch  # type: ignore[operator]


@dataclass(frozen=True)
class SchedulerDef:
    """One scheduler: its torch class name, argument model, and when the runtime steps it.

    ``needs_validation``: the entry's default watches a validation metric, so the run needs
    ``data.validation_split > 0`` (unless ``monitor`` names a training metric).
    """

    name: str
    args: type[Args]
    interval: Interval
    needs_validation: bool = False


SCHEDULERS: dict[str, SchedulerDef] = {
    d.name: d
    for d in (
        SchedulerDef("StepLR", StepLRArgs, "epoch"),
        SchedulerDef("MultiStepLR", MultiStepLRArgs, "epoch"),
        SchedulerDef("ExponentialLR", ExponentialLRArgs, "epoch"),
        SchedulerDef("CosineAnnealingLR", CosineAnnealingLRArgs, "epoch"),
        SchedulerDef("OneCycleLR", OneCycleLRArgs, "batch"),
        SchedulerDef("ReduceLROnPlateau", ReduceLROnPlateauArgs, "metric", needs_validation=True),
    )
}
