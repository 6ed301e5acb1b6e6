"""Shared pieces for the catalogue tables."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

# The largest float32: torch applies a spec's numbers to float32 tensors (``param.add_(grad, alpha=-lr)``),
# and a larger one (``lr: 1e98``) overflows there, mid-run.
FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Unpack:
    """What a ``call`` hook returns for a module whose result is a tuple: how a person unpacks it.

    ``out, _ = self.lstm1(x)`` then ``out[:, -1]``, rather than ``self.lstm1(x)[0][:, -1]``.

    Attributes:
        call: the call expression, e.g. ``self.lstm1(x)``.
        target: the assignment target; ``{out}`` stands for the node's variable, ``{state}`` for
            a fresh name the code generator picks (``h_n``), ``_`` for what is thrown away.
        then: the expression giving the node's output from them, e.g. ``{out}[:, -1]``; None
            when the target's ``{out}`` already is the output.
    """

    call: str
    target: str
    then: Optional[str] = None


class Args(BaseModel):
    """Base of every argument model: unknown keys are errors, values are not coerced silently.

    Numbers are finite: ``lr: .inf`` or ``1e400`` (which YAML reads as infinity) pass a schema bound
    but make torch fail mid-run, so pydantic refuses them here, at the value's line; and a float is
    within float32's range, which torch computes in.
    """

    # defer_build: ~100 argument models are declared; each builds its validator when first used
    # (a spec checks a handful), not at import (see spec/models.py's Strict).
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True, allow_inf_nan=False, defer_build=True)

    @field_validator("*", mode="after")
    @classmethod
    def _within_float32(cls, value: Any) -> Any:
        for number in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(number, float) and abs(number) > FLOAT32_MAX:
                raise PydanticCustomError("value", "must be within float32's range (magnitude at most 3.4e38), "
                                          "got {value}", {"value": f"{number:g}"})
        return value

    def changed(self) -> dict[str, Any]:
        """Arguments whose value differs from the field's default, in declaration order."""
        out = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if info.is_required() or value != info.default:
                out[name] = value
        return out


def resolve(reference: str) -> Any:
    """Import ``"package.module:attribute"`` on first use (keeps torch out of spec checking)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
