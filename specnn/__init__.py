"""specnn: declarative model specs, checked, compiled to readable PyTorch, trained and exported.

The public API (imported lazily, so ``import specnn`` and spec checking stay free of torch)::

    spec = specnn.load_spec("examples/iris.yaml")   # SpecError listing every problem
    compiled = specnn.compile_spec(spec)            # shapes, lints, generated source
    model = specnn.build_model(compiled)            # the generated nn.Module, instantiated
    run = specnn.train(spec, out="runs/iris")       # a run directory
    run = specnn.load_run("runs/iris")              # reload it: spec, model (in eval mode), classes
    specnn.export(run, "onnx")                      # checked against onnxruntime when installed
    specnn.predict(run, "new.csv").to_csv()         # the run's preprocessing, then the model
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_spec": "specnn.spec.loader",
    "check_file": "specnn.spec.loader",
    "json_schema": "specnn.spec.schema",
    "Spec": "specnn.spec.models",
    "SpecError": "specnn.errors",
    "Problem": "specnn.errors",
    "compile_spec": "specnn.compiler",
    "build_model": "specnn.compiler",
    "train": "specnn.launch",
    "load_run": "specnn.runtime.runs.run",
    "export": "specnn.runtime.runs.export",
    "predict": "specnn.runtime.runs.predict",
    "evaluate": "specnn.runtime.runs.evaluate",
    "plot_run": "specnn.runtime.runs.plot",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'specnn' has no attribute {name!r}")
