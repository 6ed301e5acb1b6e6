"""The optimizer table: ``torch.optim`` classes by name, with torch's arguments and defaults."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, NonNegativeFloat, PositiveFloat

from specnn.catalog.base import Args

Betas = tuple[float, float]


class SGDArgs(Args):
    lr: PositiveFloat = 1e-3
    momentum: NonNegativeFloat = 0.0
    dampening: float = 0.0
    weight_decay: NonNegativeFloat = 0.0
    nesterov: bool = False


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
