"""The exporter table: formats a trained model can be written in, and the extra each needs."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Optional

from specnn.errors import Problem, spec_problem
from specnn.errors.texts import needs_extra


@dataclass(frozen=True)
class KnownFailure:
    """A layer configuration an exporter (or its runtime) is known to get wrong.

    Checked before exporting, so the user hears which layer and what to do instead of an
    exporter traceback after seconds of work.
    """

    layer: str  # the catalogue key
    applies: Callable[[Any], bool]  # resolved layer args -> True when this failure applies
    reason: str
    instead: str


@dataclass(frozen=True)
class ExporterDef:
    name: str
    filename: str  # default file name inside the run directory
    writer: str  # "module:function" taking (run, path) and returning a runtime.export.ExportReport
    known_failures: tuple[KnownFailure, ...] = ()
    extra: Optional[str] = None  # the specnn extra that installs what it needs (errors.texts.EXTRAS)
    requires: tuple[str, ...] = ()  # modules it cannot work without (pip names equal module names)
    label: Optional[str] = None  # how a message names the format, when not its key

    def missing(self) -> list[str]:
        """The required modules that are not installed (found without importing them)."""
        return [module for module in self.requires if importlib.util.find_spec(module) is None]

    def missing_problem(self, where: Any = None, path: tuple = (), key: bool = True) -> Optional[Problem]:
        """A ``missing-extra`` problem when a required module is not installed, else None."""
        missing = self.missing()
        if not missing or self.extra is None:
            return None
        message, hint = needs_extra(f"the {self.label or self.name} export", self.extra, missing)
        return spec_problem(where, path, message, code="missing-extra", hint=hint, key=key)


ONNX_KNOWN_FAILURES = (
    KnownFailure(
        "LSTM", lambda args: args.proj_size > 0,
        "torch's ONNX exporter writes an LSTM with proj_size whose initial cell state has the projected size, "
        "and onnx/onnxruntime reject the file (plain torch.onnx.export fails the same way)",
        "use an LSTM without proj_size (a Linear after it projects the same way), or leave onnx out of "
        "export and ship state_dict or safetensors",
    ),
)


EXPORTERS: dict[str, ExporterDef] = {
    d.name: d
    for d in (
        ExporterDef("state_dict", "model.pt", "specnn.runtime.runs.export:write_state_dict"),
        ExporterDef("safetensors", "model.safetensors", "specnn.runtime.runs.export:write_safetensors",
                    extra="safetensors", requires=("safetensors",)),
        # onnxruntime is in the extra too, but optional here: without it the file is not compared with torch.
        ExporterDef("onnx", "model.onnx", "specnn.runtime.runs.export:write_onnx", ONNX_KNOWN_FAILURES,
                    extra="onnx", requires=("onnx", "onnxscript"), label="ONNX"),
    )
}
