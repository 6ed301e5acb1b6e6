"""specnn: declarative model specs, checked, compiled to readable PyTorch, trained and exported.

The public API::

    spec = specnn.load_spec("examples/iris.yaml")   # SpecError listing every problem
    compiled = specnn.compile_spec(spec)            # shapes, lints, generated source
    model = specnn.build_model(compiled)            # the generated nn.Module, instantiated
    run = specnn.train("examples/iris.yaml", out="runs/iris")  # a spec or its file; a run folder
    run = specnn.load_run("runs/iris")              # reload it: spec, model (in eval mode), classes
    specnn.evaluate(run)                            # loss and metrics on the validation split
    specnn.export(run, "onnx")                      # checked against onnxruntime
    specnn.predict(run, "new.csv").to_csv()         # the run's preprocessing, then the model
    result = specnn.sweep("examples/digits_sweep.yaml")  # an Optuna study; result.best_spec trains alone
    specnn.eject(run.path, "iris-project")          # plain PyTorch: model.py, data.py, train.py, predict.py

Every name is imported on first use, so ``import specnn`` and checking a spec stay free of torch;
type checkers and editors read the real definitions from the ``TYPE_CHECKING`` block below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from specnn.compiler import CompiledModel, build_model, compile_spec
    from specnn.errors import DataError, Problem, RunError, SpecError, ToolError
    from specnn.runtime.runs.eject.project import EjectedProject, eject
    from specnn.runtime.runs.evaluate import Evaluation, evaluate
    from specnn.runtime.runs.export import ExportReport, export
    from specnn.runtime.runs.plot import plot_run
    from specnn.runtime.runs.predict import Predictions, predict
    from specnn.runtime.runs.run import Run, load_run
    from specnn.runtime.sweep import SweepResult, sweep
    from specnn.launch import train
    from specnn.spec.loader import check_file, load_spec, load_spec_text
    from specnn.spec.models import Spec
    from specnn.spec.schema import json_schema

# Each public name -> the module defining it (a test checks it against __all__ and the block above).
_API = {
    "load_spec": "specnn.spec.loader",
    "load_spec_text": "specnn.spec.loader",
    "check_file": "specnn.spec.loader",
    "json_schema": "specnn.spec.schema",
    "Spec": "specnn.spec.models",
    "Problem": "specnn.errors",
    "SpecError": "specnn.errors",
    "DataError": "specnn.errors",
    "RunError": "specnn.errors",
    "ToolError": "specnn.errors",
    "compile_spec": "specnn.compiler",
    "build_model": "specnn.compiler",
    "CompiledModel": "specnn.compiler",
    "train": "specnn.launch",
    "load_run": "specnn.runtime.runs.run",
    "Run": "specnn.runtime.runs.run",
    "evaluate": "specnn.runtime.runs.evaluate",
    "Evaluation": "specnn.runtime.runs.evaluate",
    "predict": "specnn.runtime.runs.predict",
    "Predictions": "specnn.runtime.runs.predict",
    "export": "specnn.runtime.runs.export",
    "ExportReport": "specnn.runtime.runs.export",
    "plot_run": "specnn.runtime.runs.plot",
    "sweep": "specnn.runtime.sweep",
    "SweepResult": "specnn.runtime.sweep",
    "eject": "specnn.runtime.runs.eject.project",
    "EjectedProject": "specnn.runtime.runs.eject.project",
}

__all__ = [
    "CompiledModel",
    "DataError",
    "EjectedProject",
    "Evaluation",
    "ExportReport",
    "Predictions",
    "Problem",
    "Run",
    "RunError",
    "Spec",
    "SpecError",
    "SweepResult",
    "ToolError",
    "build_model",
    "check_file",
    "compile_spec",
    "eject",
    "evaluate",
    "export",
    "json_schema",
    "load_run",
    "load_spec",
    "load_spec_text",
    "plot_run",
    "predict",
    "sweep",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip __getattr__
        return value
    raise AttributeError(f"module 'specnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
