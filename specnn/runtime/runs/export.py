"""Exports: the writers named in ``catalog/exporters.py``, and :func:`export` to pick one.

Every writer takes ``(run, path)``, writes one file atomically and returns an
:class:`ExportReport`. The ONNX writer checks its file with ``onnx.checker`` and, when
onnxruntime is installed, compares onnxruntime's outputs with torch's at batch sizes other
than the example's, so a dynamic batch dimension that silently broke is caught here.
"""

from __future__ import annotations

import copy
import json
import os
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from specnn.catalog.base import resolve
from specnn.catalog.exporters import EXPORTERS
from specnn.runtime.files import save_state_dict, temporary_sibling, write_atomic, writing
from specnn.runtime.data.tensors import TORCH_DTYPES
from specnn.runtime.runs.run import Run, load_run
from specnn.spec.models import OnnxCheck, OnnxExport, Spec
from specnn.errors import Problem, SpecError, ToolError, spec_problem
from specnn.errors.texts import suggest

EXAMPLE_BATCH = 2
CHECK_BATCHES = (1, 7)  # differ from EXAMPLE_BATCH, so a batch size baked into the graph shows
# onnxruntime passes when |ort - torch| <= ATOL + RTOL * |torch| everywhere (numpy.allclose's rule):
# float32 kernels that differ in summation order drift by ~1e-7 relative per op, so an output
# around 100 may differ by 1e-5 absolute and still be right; RTOL scales with the output.
# The defaults are the spec's (export: [{onnx: {rtol, atol}}]), so there is one place to read them.
RTOL = OnnxCheck.model_fields["rtol"].default
ATOL = OnnxCheck.model_fields["atol"].default


@dataclass
class ExportReport:
    """What an export wrote.

    Attributes:
        format: the exporter's name (``onnx`` ...).
        path: the file written.
        max_abs_diff: ONNX only: the largest |onnxruntime - torch| over the checked batches;
            None when onnxruntime is not installed.
        batch_sizes: the batch sizes checked against onnxruntime.
    """

    format: str
    path: Path
    max_abs_diff: Optional[float] = None
    batch_sizes: tuple[int, ...] = ()
    rtol: float = RTOL
    atol: float = ATOL

    def __str__(self) -> str:
        text = f"exported {self.format} to {self.path}"
        if self.max_abs_diff is not None:
            sizes = ", ".join(str(b) for b in self.batch_sizes)
            text += (f" (onnxruntime matches torch at batch sizes {sizes}: max abs diff {self.max_abs_diff:.2e}, "
                     f"within rtol {self.rtol:.0e} + atol {self.atol:.0e})")
        elif self.format == "onnx":
            text += " (onnxruntime not installed: outputs not compared)"
        return text


def export(run: Union[Run, str, Path], format: Union[str, OnnxExport], path: Union[str, Path, None] = None, *,
           rtol: Optional[float] = None, atol: Optional[float] = None) -> ExportReport:
    """Write a run's model in ``format`` (a key of ``catalog/exporters.py``).

    Args:
        run: from :func:`specnn.train` or :func:`specnn.load_run`, or a run folder.
        format: ``state_dict``, ``safetensors`` or ``onnx``; or an entry of the spec's ``export``
            list (``{onnx: {rtol: ..., atol: ...}}``).
        path: the file to write; default: the format's file name inside the run folder.
        rtol, atol: ONNX only: how far onnxruntime may differ from torch, as in ``numpy.allclose``
            (default: the spec entry's, else :data:`RTOL` and :data:`ATOL`).

    Raises:
        SpecError: unknown format, or a package the format needs is not installed (before any work).
        RunError: the system refused the write (a full disk, a read-only folder); the file is named.
        ToolError: the exporter failed, or the ONNX file's outputs differ from torch's.
    """
    if not isinstance(format, str):  # a spec entry with options: {onnx: {rtol, atol}}
        rtol = format.onnx.rtol if rtol is None else rtol
        atol = format.onnx.atol if atol is None else atol
        format = "onnx"
    if format not in EXPORTERS:
        raise SpecError([Problem("export", f"unknown export format '{format}' (formats: {', '.join(EXPORTERS)})",
                                 hint=suggest(format, EXPORTERS))])
    exporter = EXPORTERS[format]
    missing = exporter.missing_problem()
    if missing is not None:
        raise SpecError([missing])
    run = run if isinstance(run, Run) else load_run(run)
    target = Path(path) if path is not None else Path(run.path) / export_filename(exporter, run.meta.get("checkpoint"))
    with writing(target):  # a full disk or a read-only folder: a RunError naming the file, not a traceback
        target.parent.mkdir(parents=True, exist_ok=True)
        if format != "onnx":
            return resolve(exporter.writer)(run, target)
        return resolve(exporter.writer)(run, target, RTOL if rtol is None else rtol, ATOL if atol is None else atol)


class ExportFailed(ToolError):
    """The training finished and is saved, and an export after it failed (exit 1).

    ``run`` is the saved run: nothing is lost; export it again (``specnn export``) once the cause
    is dealt with.
    """

    def __init__(self, problems: list[Problem], run: Run):
        super().__init__(problems)
        self.run = run


def export_all(run: Run, entries: Sequence[Any], say: Callable[[str], Any]) -> list[Problem]:
    """Every export the spec asks for, each reported as it is written; the problems of those that failed.

    One failing export does not stop the others: each is independent, and the run is already saved.
    """
    failed: list[Problem] = []
    for entry in entries:
        name = entry if isinstance(entry, str) else "onnx"
        if name == "onnx":  # seconds of silent work: say it started
            say("exporting onnx (torch.onnx.export, then checked against onnxruntime) ...")
        try:
            say(str(export(run, entry)))
        except SpecError as error:
            failed += error.problems
    return failed


def missing_extras(spec: Spec) -> list[Problem]:
    """The spec's exports whose optional packages are not installed, each at its ``export`` entry.

    Checked before training, so a missing package costs nothing but a message.
    """
    names = ((index, entry if isinstance(entry, str) else "onnx") for index, entry in enumerate(spec.export))
    found = (EXPORTERS[name].missing_problem(spec, ("export", index), key=False) for index, name in names)
    return [problem for problem in found if problem is not None]


def export_filename(exporter: Any, checkpoint: Optional[str] = None) -> str:
    """The file an export writes in the run folder: ``model.onnx``; ``model-best.onnx`` from a checkpoint.

    >>> export_filename(EXPORTERS["onnx"]), export_filename(EXPORTERS["onnx"], "last")
    ('model.onnx', 'model-last.onnx')
    """
    if checkpoint is None:
        return exporter.filename
    stem, dot, suffix = exporter.filename.partition(".")
    return f"{stem}-{checkpoint}{dot}{suffix}"


def write_state_dict(run: Run, path: Path) -> ExportReport:
    """The state_dict, saved with torch.save: loads with ``torch.load(path, weights_only=True)``."""
    save_state_dict(run.model, path)
    return ExportReport("state_dict", path)


def write_safetensors(run: Run, path: Path) -> ExportReport:
    """The weights as safetensors (no pickle at all); class names go into the file's metadata."""
    from safetensors.torch import save  # export() has checked it is installed
    tensors = {name: t.detach().cpu().contiguous() for name, t in run.model.state_dict().items()}
    metadata = {"format": "pt", "classes": json.dumps(run.classes)}
    write_atomic(path, save(tensors, metadata=metadata))
    return ExportReport("safetensors", path)


def write_onnx(run: Run, path: Path, rtol: float = RTOL, atol: float = ATOL) -> ExportReport:
    """One self-contained ``.onnx`` file with a dynamic batch dimension, checked.

    Exported with torch's dynamo exporter from a batch of ``EXAMPLE_BATCH``; the file must pass
    ``onnx.checker``, and onnxruntime (when installed) must match torch within ``rtol``/``atol``
    (``numpy.allclose``'s rule) at each of ``CHECK_BATCHES``. The file is only moved into place
    once all of that holds.

    Raises:
        ToolError: a layer the exporter is known to get wrong (located at the layer), or the
            exporter, the checker or onnxruntime failed, or the outputs differ.
    """
    refuse_known_failures(run, EXPORTERS["onnx"])
    model = _cpu_eval_copy(run.model)
    tmp = temporary_sibling(path, ".onnx")
    try:
        _export_onnx(model, run.compiled, tmp)
        _inline_external_data(tmp)
        _check_onnx(tmp, run.compiled)
        max_diff = compare_with_onnxruntime(model, run.compiled, tmp, rtol=rtol, atol=atol)
        os.replace(tmp, path)
    except SpecError as e:  # name the file the user asked for, not the temporary one
        problems = [replace(p, file=str(path)) if p.file == str(tmp) else p for p in e.problems]
        raise type(e)(problems) from None
    finally:
        tmp.unlink(missing_ok=True)
        _data_file(tmp).unlink(missing_ok=True)
    return ExportReport("onnx", path, max_diff, CHECK_BATCHES if max_diff is not None else (), rtol, atol)


def refuse_known_failures(run: Run, exporter: Any) -> None:
    """ToolError at each layer of the model that ``exporter`` is known to get wrong, before exporting."""
    problems = known_failures(run.spec, run.compiled.graph, exporter)
    if problems:
        raise ToolError(problems)


def known_failures(spec: Any, graph: Any, exporter: Any) -> list[Problem]:
    """A problem at each layer of ``graph`` that ``exporter`` is known to get wrong."""
    problems = [
        spec_problem(spec, node.path, f"{node.kind} '{node.name}' cannot be exported to {exporter.name}: "
                                      f"{known.reason}", code="export-unsupported", hint=known.instead)
        for node in all_nodes(graph)
        for known in exporter.known_failures
        if node.kind == known.layer and known.applies(node.args)
    ]
    return list(dict.fromkeys(problems))


def export_problems(spec: Any, graph: Any) -> list[Problem]:
    """Before training: the spec's exports that are known to fail on this model (a spec problem then,
    since the spec asks for both: the exit status is 2 and nothing is trained)."""
    names = {entry if isinstance(entry, str) else "onnx" for entry in spec.export}
    return [p for name in EXPORTERS if name in names for p in known_failures(spec, graph, EXPORTERS[name])]


def all_nodes(graph: Any) -> list[Any]:
    """Every layer node of a graph, those inside block bodies (every use) included."""
    found = []
    for node in graph.nodes:
        if node.block is None:
            found.append(node)
        else:
            for instance in node.block.instances:
                found += all_nodes(instance.body)
    return found


def _tool_failure(compiled: Any, path: Path, what: str, error: Exception) -> ToolError:
    """An exporter or runtime failure on a valid spec: what failed, and the layers it names."""
    text = _first_line(error)
    suspects = [n for n in all_nodes(compiled.graph) if len(n.kind) > 3 and n.kind.lower() in text.lower()]
    named = ", ".join(dict.fromkeys(f"{n.kind} '{n.name}'" for n in suspects))
    message = f"{what}: {text}" + (f" (the failing operator looks like {named})" if named else "")
    return ToolError.single(
        "export-failed", message, file=str(path),
        hint="this is a limitation of torch's ONNX exporter or onnxruntime, not a mistake in the spec: the run "
             "and weights.pt are kept; export state_dict or safetensors instead, or replace that layer",
    )


def example_inputs(compiled: Any, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Seeded inputs for each model input: (batch, *per-sample shape) in its dtype."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for tensor_type in compiled.inputs.values():
        shape = (batch, *tensor_type.shape)
        if tensor_type.dtype == "int64":  # indices (e.g. for Embedding): 0 is always valid
            tensors.append(torch.zeros(shape, dtype=torch.int64))
        else:
            tensors.append(torch.randn(shape, generator=generator).to(TORCH_DTYPES[tensor_type.dtype]))
    return tuple(tensors)


def _cpu_eval_copy(model: torch.nn.Module) -> torch.nn.Module:
    # Exporting runs on the CPU; copy rather than move, so the run's model stays where it is.
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    copied = model if on_cpu else copy.deepcopy(model).cpu()
    return copied.eval()


def _export_onnx(model: torch.nn.Module, compiled: Any, path: Path) -> None:
    batch = torch.export.Dim("batch")
    examples = example_inputs(compiled, EXAMPLE_BATCH)
    try:
        with quiet_exporter():
            torch.onnx.export(
                model,
                examples,
                str(path),
                dynamo=True,
                external_data=False,  # weights inside the .onnx: one file to ship
                input_names=list(compiled.inputs),
                output_names=list(compiled.outputs),
                dynamic_shapes=tuple({0: batch} for _ in examples),
                verbose=False,
            )
    except Exception as e:  # noqa: BLE001 -- the exporter raises many kinds; the user needs the reason
        raise _tool_failure(compiled, path, "torch.onnx.export failed", e) from None


@contextmanager
def quiet_exporter():
    """Silence the exporter's chatter (skipped torchvision ops, deprecations); errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _data_file(path: Path) -> Path:
    return path.with_name(path.name + ".data")


def _inline_external_data(path: Path) -> None:
    """Fold a stray ``.onnx.data`` file (large-model export) back into the model file."""
    import onnx

    data = _data_file(path)
    if data.exists():
        model = onnx.load(str(path), load_external_data=True)
        onnx.save_model(model, str(path), save_as_external_data=False)
        data.unlink()


def _check_onnx(path: Path, compiled: Any) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # noqa: BLE001 -- ValidationError, or shape inference's own errors
        raise _tool_failure(compiled, path, "the exported model fails onnx.checker", e) from None


def compare_with_onnxruntime(model: torch.nn.Module, compiled: Any, path: Path,
                             batch_sizes: tuple[int, ...] = CHECK_BATCHES, *,
                             rtol: float = RTOL, atol: float = ATOL) -> Optional[float]:
    """Max |onnxruntime - torch| over ``batch_sizes``; None when onnxruntime is not installed.

    Raises:
        ToolError: somewhere |onnxruntime - torch| > atol + rtol * |torch| (or a NaN), the
            outputs have another shape, or onnxruntime cannot load or run the file.
    """
    try:
        import onnxruntime
    except ImportError:
        return None
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # its failures come back as exceptions; its own log would repeat them
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 -- onnxruntime's own exception types
        raise _tool_failure(compiled, path, "onnxruntime cannot load the exported model", e) from None
    names = [i.name for i in session.get_inputs()]
    worst, within = 0.0, True
    for batch in batch_sizes:
        inputs = example_inputs(compiled, batch, seed=batch)
        with torch.inference_mode():
            expected = model(*inputs)
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        try:
            got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
        except Exception as e:  # noqa: BLE001 -- onnxruntime's own exception types
            raise _tool_failure(compiled, path, "onnxruntime cannot run the exported model", e) from None
        for want, have in zip(expected, got):
            if tuple(have.shape) != tuple(want.shape):
                raise _mismatch(path, f"onnxruntime gives shape {list(have.shape)} at batch size {batch}, "
                                      f"torch gives {list(want.shape)}")
            diff, allowed = np.abs(have - want.numpy()), atol + rtol * np.abs(want.numpy())
            worst = max(worst, float(np.max(diff, initial=0.0)))
            within = within and bool(np.all(diff <= allowed))  # a NaN compares False: it fails
    if not within:
        raise _mismatch(path, f"onnxruntime differs from torch by up to {worst:.2e}, more than rtol {rtol:.0e} "
                              f"+ atol {atol:.0e} allow",
                        hint="if that difference is acceptable, loosen the check: specnn export --rtol/--atol, "
                             "or in the spec export: [{onnx: {rtol: ..., atol: ...}}]")
    return worst


def _mismatch(path: Path, message: str, hint: Optional[str] = None) -> ToolError:
    return ToolError.single("onnx-mismatch", message, file=str(path), hint=hint)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
