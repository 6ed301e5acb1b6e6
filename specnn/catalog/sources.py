"""The data-source table: where a spec's samples come from.

Each entry names its argument model and, by dotted reference, the runtime function that
loads it (imported on use, so checking a spec never imports torch or numpy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional, Union

from pydantic import ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator
from pydantic_core import PydanticCustomError

from specnn.catalog.base import Args
from specnn.catalog.limits import MAX_DIMS, MAX_IMAGE_SIDE
from specnn.catalog.transforms import Transform


TARGETS_DESCRIPTION = ("a model with several outputs (a loss per output): the target column of each output, "
                       "{output: column}; instead of target")


class TableArgs(Args):
    """A table's target: one column, or one per model output (``targets``)."""

    # The schema says one of them is required (so a spec without either reads "missing required key
    # 'target'"); that not both are given is the validator's.
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["target"]}, {"required": ["targets"]}]})

    @model_validator(mode="after")
    def _target_or_targets(self) -> "TableArgs":
        if (self.target is None) == (self.targets is None):
            raise PydanticCustomError("choice", "give exactly one of 'target' (one column) or 'targets' (a column "
                                      "per model output)", {})
        return self

    @property
    def target_columns(self) -> list[str]:
        """Every target column, in the order written."""
        return list(self.targets.values()) if self.targets is not None else [self.target]


class CsvArgs(TableArgs):
    path: str = Field(description="CSV file, relative to the spec file's folder")
    target: Optional[str] = Field(None, description="name of the target column")
    targets: Optional[dict[str, str]] = Field(None, min_length=1, description=TARGETS_DESCRIPTION)
    features: Optional[list[str]] = Field(None, description="feature columns; default: every column but the target")
    delimiter: str = Field(",", min_length=1, max_length=1)


class ParquetArgs(TableArgs):
    path: str = Field(description="Parquet file, relative to the spec file's folder (needs specnn[parquet])")
    target: Optional[str] = Field(None, description="name of the target column")
    targets: Optional[dict[str, str]] = Field(None, min_length=1, description=TARGETS_DESCRIPTION)
    features: Optional[list[str]] = Field(None, description="feature columns; default: every column but the target")


class NpzArgs(Args):
    path: str = Field(description=".npz file, relative to the spec file's folder")
    x: Union[str, dict[str, str]] = Field(
        "x", description="name of the features array, or a mapping from model input name to array name"
    )
    y: Union[str, dict[str, str]] = Field(
        "y", description="name of the targets array, or a mapping from model output name to array name (a loss per "
        "output)")


class SyntheticInput(Args):
    """One model input of a synthetic data set."""

    shape: list[PositiveInt] = Field(min_length=1, max_length=MAX_DIMS, description="per-sample shape")
    vocab: Optional[PositiveInt] = Field(
        None, ge=2, description="token ids in [0, vocab) (int64, for Embedding) instead of real values"
    )


class SyntheticTarget(Args):
    """One model output's targets in a synthetic data set: classes, or regression values."""

    task: Literal["classification", "regression"] = "classification"
    classes: PositiveInt = Field(2, ge=2, description="classification only")
    outputs: PositiveInt = Field(1, description="regression only: targets per sample")


class SyntheticArgs(Args):
    task: Literal["classification", "regression"] = "classification"
    samples: PositiveInt = 1000
    shape: list[PositiveInt] = Field([20], min_length=1, max_length=MAX_DIMS, description="per-sample feature shape")
    classes: PositiveInt = Field(2, ge=2, description="classification only")
    outputs: PositiveInt = Field(1, description="regression only: targets per sample")
    noise: NonNegativeFloat = 0.1
    seed: Optional[int] = Field(None, ge=0, le=2**32 - 1, description="default: the spec's seed")
    vocab: Optional[PositiveInt] = Field(
        None, ge=2, description="token ids in [0, vocab) (int64, for Embedding) instead of real values"
    )
    inputs: Optional[dict[str, SyntheticInput]] = Field(
        None, description="several model inputs by name, each with its shape (and vocab); instead of shape"
    )
    targets: Optional[dict[str, SyntheticTarget]] = Field(
        None, min_length=1, description="a model with several outputs (a loss per output): each output's targets, "
        "a linear function of the inputs; instead of task, classes and outputs"
    )

    @model_validator(mode="after")
    def _shape_or_inputs(self) -> "SyntheticArgs":
        both = [k for k in ("shape", "vocab") if k in self.model_fields_set]
        if self.inputs is not None and both:
            raise PydanticCustomError(
                "choice", "give {keys} for one input or 'inputs' for several, not both",
                {"keys": " and ".join(f"'{k}'" for k in both)},
            )
        single = [k for k in ("task", "classes", "outputs") if k in self.model_fields_set]
        if self.targets is not None and single:
            raise PydanticCustomError(
                "choice", "give {keys} for one output or 'targets' for several, not both",
                {"keys": " and ".join(f"'{k}'" for k in single)},
            )
        return self


class ImageNormalize(Args):
    """Per-channel mean and standard deviation of pixels scaled to [0, 1]."""

    mean: list[float] = Field(min_length=1, max_length=4)
    std: list[PositiveFloat] = Field(min_length=1, max_length=4)


ImageSide = Annotated[PositiveInt, Field(le=MAX_IMAGE_SIDE)]


class ImagesArgs(Args):
    path: str = Field(description="folder with one subfolder per class (root/<class>/*.png|jpg), relative to the "
                                  "spec file's folder; needs specnn[images]")
    size: Optional[list[ImageSide]] = Field(None, min_length=2, max_length=2, description="[height, width] every "
                                              "image is resized to; default: the images' own size (all alike)")
    channels: Literal[1, 3] = Field(3, description="1: grayscale, 3: RGB")
    normalize: Union[Literal["auto", "none"], ImageNormalize] = Field(
        "auto", description="auto: per-channel mean/std of the training split; none: pixels in [0, 1]; "
        "or {mean: [...], std: [...]}")
    augment: list[Transform] = Field(  # type: ignore[valid-type]
        default_factory=list, description="training-only transforms, applied in order, e.g. "
        "[{RandomCrop: {padding: 4}}, RandomHorizontalFlip]")

    @model_validator(mode="after")
    def _channels_match(self) -> "ImagesArgs":
        if isinstance(self.normalize, ImageNormalize):
            for key in ("mean", "std"):
                if len(getattr(self.normalize, key)) != self.channels:
                    raise PydanticCustomError("value", "normalize.{key} has {got} values for {channels} channel(s)",
                                              {"key": key, "got": len(getattr(self.normalize, key)),
                                               "channels": self.channels})
        return self


SKLEARN_SETS = ("iris", "digits", "wine", "breast_cancer")


class SklearnArgs(Args):
    name: Literal[SKLEARN_SETS] = Field(  # type: ignore[valid-type]
        description="a data set bundled with scikit-learn, read offline: " + ", ".join(SKLEARN_SETS)
    )
    as_images: bool = Field(False, description="digits only: each sample as a [1, 8, 8] image, not 64 features")

    @model_validator(mode="after")
    def _images_are_digits(self) -> "SklearnArgs":
        if self.as_images and self.name != "digits":
            raise PydanticCustomError("value", "as_images is for 'digits' only, not '{name}'", {"name": self.name})
        return self


@dataclass(frozen=True)
class SourceDef:
    name: str
    args: type[Args]
    loader: str  # "module:function" taking (args, base_dir, seed) and returning runtime.data.Arrays
    table: bool = False  # rows of named columns: categorical encoding and missing values apply
    images: bool = False  # files decoded per sample: normalization, augmentation, streaming apply


SOURCES: dict[str, SourceDef] = {
    d.name: d
    for d in (
        SourceDef("csv", CsvArgs, "specnn.runtime.data.sources:load_csv", table=True),
        SourceDef("parquet", ParquetArgs, "specnn.runtime.data.sources:load_parquet", table=True),
        SourceDef("npz", NpzArgs, "specnn.runtime.data.sources:load_npz"),
        SourceDef("images", ImagesArgs, "specnn.runtime.data.images:load_images", images=True),
        SourceDef("synthetic", SyntheticArgs, "specnn.runtime.data.sources:make_synthetic"),
        SourceDef("sklearn", SklearnArgs, "specnn.runtime.data.sources:load_sklearn"),
    )
}
