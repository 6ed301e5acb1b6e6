"""The augmentation table: training-only image transforms a spec lists under ``images.augment``.

Each entry names its argument model and, by dotted reference, the runtime function that applies
it to a batch of images (``runtime/data/augment.py``), so checking a spec never imports torch.
Every random choice a transform makes is a function of the spec's seed, the epoch and the
sample's index, so a run repeats bit for bit whether its images are held in memory or streamed
by DataLoader workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from pydantic import Field, NonNegativeInt, confloat, create_model, model_validator
from pydantic_core import PydanticCustomError

from specnn.catalog.base import Args


class RandomCropArgs(Args):
    padding: NonNegativeInt = Field(4, description="pixels of padding (the normalized black) on every side before "
                                                   "cropping back to the image size at a random offset")


class FlipArgs(Args):
    p: confloat(ge=0, le=1) = Field(0.5, description="probability of flipping each image")  # type: ignore[valid-type]


@dataclass(frozen=True)
class TransformDef:
    name: str
    args: type[Args]
    apply: str  # "module:function" taking (images (B, C, H, W), uniforms (B, draws), args) -> images
    draws: int  # uniform numbers per image the transform consumes


TRANSFORMS: dict[str, TransformDef] = {
    d.name: d
    for d in (
        TransformDef("RandomCrop", RandomCropArgs, "specnn.runtime.data.augment:random_crop", 2),
        TransformDef("RandomHorizontalFlip", FlipArgs, "specnn.runtime.data.augment:horizontal_flip", 1),
        TransformDef("RandomVerticalFlip", FlipArgs, "specnn.runtime.data.augment:vertical_flip", 1),
    )
}


def _choice_model() -> type[Args]:
    """``{RandomCrop: {padding: 4}}``: one transform per list entry, arguments checked by its model."""

    def empty_args(cls, data: Any) -> Any:
        # `- RandomHorizontalFlip:` in YAML is {"RandomHorizontalFlip": None}: the defaults.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in TRANSFORMS else v) for k, v in data.items()}
        return data

    def exactly_one(self: Any) -> Any:
        chosen = [k for k in TRANSFORMS if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise PydanticCustomError("choice", "needs exactly one transform key ({known}), got {got}",
                                      {"known": ", ".join(TRANSFORMS), "got": ", ".join(chosen) or "none"})
        return self

    return create_model(
        "Transform",
        __base__=Args,
        __doc__="One training-only image transform and its arguments.",
        __validators__={"_empty": model_validator(mode="before")(classmethod(empty_args)),
                        "_one": model_validator(mode="after")(exactly_one)},
        **{name: (Optional[d.args], Field(None)) for name, d in TRANSFORMS.items()},
    )


Transform = _choice_model()


def chosen_transform(entry: Any) -> tuple[TransformDef, Args]:
    """The table entry and arguments of one ``augment`` list item."""
    name = next(k for k in TRANSFORMS if getattr(entry, k) is not None)
    return TRANSFORMS[name], getattr(entry, name)
