"""The exporter table: formats a trained model can be written in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExporterDef:
    name: str
    filename: str  # default file name inside the run directory
    writer: str  # "module:function" taking (run, path) and returning a runtime.export.ExportReport


EXPORTERS: dict[str, ExporterDef] = {
    d.name: d
    for d in (
        ExporterDef("state_dict", "model.pt", "specnn.runtime.runs.export:write_state_dict"),
        ExporterDef("safetensors", "model.safetensors", "specnn.runtime.runs.export:write_safetensors"),
        ExporterDef("onnx", "model.onnx", "specnn.runtime.runs.export:write_onnx"),
    )
}
