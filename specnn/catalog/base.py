"""Shared pieces for the catalogue tables."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict


class Args(BaseModel):
    """Base of every argument model: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

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
