"""The exporter table: formats a trained model can be written in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


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
        ExporterDef("safetensors", "model.safetensors", "specnn.runtime.runs.export:write_safetensors"),
        ExporterDef("onnx", "model.onnx", "specnn.runtime.runs.export:write_onnx", ONNX_KNOWN_FAILURES),
    )
}
