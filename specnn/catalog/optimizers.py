"""The optimizer table: ``torch.optim`` classes by name, with torch's arguments and defaults."""

from __future__ import annotations

from dataclasses import dataclass

from typing import Annotated

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator
from pydantic_core import PydanticCustomError

from specnn.catalog.base import Args

# torch.optim.Adam checks 0 <= beta < 1 for each at construction (a NaN fails every comparison).
Beta = Annotated[float, Field(ge=0, lt=1)]
Betas = tuple[Beta, Beta]


class SGDArgs(Args):
    lr: PositiveFloat = 1e-3
    momentum: NonNegativeFloat = 0.0
    dampening: float = 0.0
    weight_decay: NonNegativeFloat = 0.0
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "SGDArgs":
        # torch.optim.SGD raises this at construction, after the run folder is written.
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise PydanticCustomError(
                "value", "nesterov needs momentum > 0 and dampening 0, got momentum {momentum}, dampening {dampening}",
                {"momentum": self.momentum, "dampening": self.dampening})
        return self


class AdamArgs(Args):
    lr: PositiveFloat = 1e-3
    betas: Betas = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0
    amsgrad: bool = False


class AdamWArgs(AdamArgs):
    weight_decay: NonNegativeFloat = 1e-2


class RMSpropArgs(Args):
    lr: PositiveFloat = 1e-2
    alpha: float = Field(0.99, ge=0)
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0
    momentum: NonNegativeFloat = 0.0
    centered: bool = False


@dataclass(frozen=True)
class OptimizerDef:
    name: str
    args: type[Args]


OPTIMIZERS: dict[str, OptimizerDef] = {
    d.name: d
    for d in (
        OptimizerDef("SGD", SGDArgs),
        OptimizerDef("Adam", AdamArgs),
        OptimizerDef("AdamW", AdamWArgs),
        OptimizerDef("RMSprop", RMSpropArgs),
    )
}
