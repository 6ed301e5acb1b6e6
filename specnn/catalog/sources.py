"""The data-source table: where a spec's samples come from.

Each entry names its argument model and, by dotted reference, the runtime function that
loads it (imported on use, so checking a spec never imports torch or numpy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from pydantic import Field, NonNegativeFloat, PositiveInt

from specnn.catalog.base import Args


class CsvArgs(Args):
    path: str = Field(description="CSV file, relative to the spec file's folder")
    target: str = Field(description="name of the target column")
    features: Optional[list[str]] = Field(None, description="feature columns; default: every column but the target")
    delimiter: str = Field(",", min_length=1, max_length=1)


class NpzArgs(Args):
    path: str = Field(description=".npz file, relative to the spec file's folder")
    x: str = Field("x", description="name of the features array")
    y: str = Field("y", description="name of the targets array")


class SyntheticArgs(Args):
    task: Literal["classification", "regression"] = "classification"
    samples: PositiveInt = 1000
    shape: list[PositiveInt] = Field([20], min_length=1, description="per-sample feature shape")
    classes: PositiveInt = Field(2, ge=2, description="classification only")
    outputs: PositiveInt = Field(1, description="regression only: targets per sample")
    noise: NonNegativeFloat = 0.1
    seed: Optional[int] = Field(None, description="default: the spec's seed")


@dataclass(frozen=True)
class SourceDef:
    name: str
    args: type[Args]
    loader: str  # "module:function" taking (args, base_dir, seed) and returning runtime.data.Arrays


SOURCES: dict[str, SourceDef] = {
    d.name: d
    for d in (
        SourceDef("csv", CsvArgs, "specnn.runtime.sources:load_csv"),
        SourceDef("npz", NpzArgs, "specnn.runtime.sources:load_npz"),
        SourceDef("synthetic", SyntheticArgs, "specnn.runtime.sources:make_synthetic"),
    )
}
