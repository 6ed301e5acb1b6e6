"""``specnn eject``: a spec or a run folder in, a standalone PyTorch project out."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from specnn.errors import Problem, RunError, SpecError, spec_problem
from specnn.runtime.runs.eject.sources import SOURCES
from specnn.runtime.runs.eject.data_py import data_py, plan
from specnn.runtime.runs.eject.predict_py import predict_py
from specnn.runtime.runs.eject.readme import readme
from specnn.runtime.runs.eject.train_py import train_py
from specnn.spec.models import Spec

FILES = ("model.py", "data.py", "train.py", "predict.py", "README.md")
RUN_FILES = ("weights.pt", "meta.json", "preprocess.json")  # copied from a run, for predict.py


@dataclass
class EjectedProject:
    """What :func:`eject` wrote.

    Attributes:
        path: the project folder.
        files: every file written, in the order written.
    """

    path: Path
    files: list[Path] = field(default_factory=list)


def eject(source: Union[str, Path, Spec], out: Union[str, Path], *, overwrite: bool = False) -> EjectedProject:
    """Write a standalone PyTorch project that trains what ``source`` trains, bit for bit on the CPU.

    Args:
        source: a spec file, a loaded :class:`~specnn.spec.models.Spec`, or a run folder (its
            resolved ``spec.yaml``; its weights, meta.json and preprocess.json are copied too).
        out: the project folder (created).
        overwrite: replace the project files already in ``out``.

    Returns:
        The :class:`EjectedProject`.

    Raises:
        SpecError: the spec does not load or compile.
        RunError: ``out`` already holds project files (without ``overwrite``).
    """
    from specnn import __version__
    from specnn.compiler import compile_spec, write_model_py
    from specnn.spec.loader import load_spec

    run = Path(source) if isinstance(source, (str, Path)) and Path(source).is_dir() else None
    if isinstance(source, Spec):
        spec, origin = source, source.file or f"{source.name}.yaml"
    else:
        spec_file = run / "spec.yaml" if run is not None else Path(source)
        spec, origin = load_spec(spec_file), str(run if run is not None else source)
    folder = Path(out)
    _check_free(folder, overwrite)
    _check_ejectable(spec)
    compiled = compile_spec(spec)
    data = plan(spec, compiled, folder)
    texts = {
        "data.py": data_py(spec, compiled, data),
        "train.py": train_py(spec, compiled, data, origin, __version__),
        "predict.py": predict_py(spec, compiled, data),
        "README.md": readme(spec, compiled, data, origin, __version__, run is not None),
    }
    project = EjectedProject(folder, [write_model_py(compiled, folder)])
    for name, text in texts.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        project.files.append(path)
    if run is not None:
        for name in RUN_FILES:
            if (run / name).is_file():
                project.files.append(Path(shutil.copy2(run / name, folder / name)))
    return project


def _check_ejectable(spec: Spec) -> None:
    """The features eject cannot write yet, each located where the spec asks for it.

    The training loop ejects whole; these are data-stage options added after eject was written.
    """
    data, settings = spec.data, spec.data.preprocess
    asked = [
        (data.kind not in SOURCES, ("data", data.kind), f"the {data.kind} source"),
        (bool(data.validation_path), ("data", "validation_path"), "a validation file"),
        (bool(data.test_path), ("data", "test_path"), "a test file"),
        (settings.missing != "error", ("data", "preprocess", "missing"), "missing-value handling"),
        (settings.scale_target != "none", ("data", "preprocess", "scale_target"), "target scaling"),
        (data.loader.in_memory is False, ("data", "loader", "in_memory"), "streamed data"),
        (spec.several_losses, ("loss",), "a loss per output (a model with several outputs)"),
    ]
    problems = [spec_problem(spec, path, f"specnn eject cannot write {what} yet", code="eject",
                             hint="eject supports csv, npz, synthetic and sklearn sources held in memory")
                for wanted, path, what in asked if wanted]
    if problems:
        raise SpecError(problems)


def _check_free(folder: Path, overwrite: bool) -> None:
    taken = [name for name in FILES if (folder / name).exists()]
    if taken and not overwrite:
        raise RunError([Problem("exists", f"the folder already holds an ejected project ({', '.join(taken)})",
                                file=str(folder), hint="choose another folder, or pass --overwrite")])
