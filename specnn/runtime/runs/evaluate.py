"""Evaluating a trained run: ``specnn evaluate RUN [--data FILE]``.

Without a file, the run's validation split is rebuilt exactly as training made it (the spec's
data source, seed and ``validation_split``) and scaled with the statistics the run stored in
``preprocess.json`` -- never refitted -- so the numbers equal the last epoch's ``val_*`` values in
``metrics.jsonl``. With a file (CSV or NPZ holding the training's feature columns *and* the
target), the rows go through the same reader as ``specnn predict`` and the labels through the
run's class list. Either way the loss and the spec's metrics (``train.metrics``, or the task's
default) are computed by the trainer's own :func:`~specnn.runtime.train.trainer.evaluate`: the model
in eval mode under ``torch.inference_mode``, batch by batch.

Nothing is written into the run folder; :func:`write_evaluation` writes the result where asked.

>>> result = evaluate("runs/iris-mlp")                                   # doctest: +SKIP
>>> result["samples"], round(result["metrics"]["accuracy"], 3)           # doctest: +SKIP
(30, 0.967)
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TypedDict, Union

import numpy as np
import torch

from specnn.catalog.losses import LOSSES
from specnn.runtime.data import tensors as data_module
from specnn.runtime.data.streaming import place
from specnn.runtime.data.tensors import Tensors
from specnn.runtime.runs.predict import read_features
from specnn.runtime.data.preprocess import Preprocessor, load_preprocessor
from specnn.runtime.data.sources import Arrays
from specnn.runtime.data.table import read_table
from specnn.runtime.files import write_atomic
from specnn.runtime.runs.run import Run, load_run
from specnn.runtime.data.csv_table import data_error, number
from specnn.errors import DataError, Problem, RunError, SpecError, locate, spec_problem

__all__ = ["evaluate", "format_evaluation", "write_evaluation"]

VALIDATION = "validation split"
MetricValue = Union[float, list[list[int]]]  # a number, or a confusion matrix (row: target, column: predicted)


class Evaluation(TypedDict):
    """What :func:`evaluate` returns (and ``specnn evaluate --json`` prints)."""

    run: str  # the run folder
    data: str  # "validation split" ("test split"), or the file evaluated
    samples: int
    classes: Any  # class names; None for numeric labels or regression; several outputs: {output: names}
    metrics: dict[str, MetricValue]  # "loss" first, then the spec's metrics


def evaluate(run: Union[Run, str, Path], data: Union[str, Path, None] = None, *,
             batch_size: Optional[int] = None, device: Optional[str] = None, split: str = "validation",
             checkpoint: Optional[str] = None) -> Evaluation:
    """The loss and metrics of a trained run on its validation split or on a held-out file.

    Args:
        run: a :class:`~specnn.runtime.runs.run.Run` or a run folder.
        data: a ``.csv`` or ``.npz`` file with the training's feature columns (or arrays) and the
            target column (CSV: the training's target name; NPZ: the npz source's ``y``, default
            ``y``). Text labels are class names of the run; numeric NPZ labels are class indices.
            None: the run's validation split (or ``split``), rebuilt from the spec's data source.
        batch_size: samples per forward pass; default ``train.batch_size`` (as training did).
        device: where to evaluate; default the spec's ``train.device``.
        split: without ``data``: ``validation`` or ``test`` (``data.test_split``).
        checkpoint: for a run folder: ``best`` or ``last`` evaluates that checkpoint's weights
            instead of ``weights.pt`` (see :func:`~specnn.runtime.runs.run.load_run`).

    Returns:
        ``{"run": folder, "data": "validation split" or the file, "samples": N,
        "classes": class names or None, "metrics": {"loss": ..., "accuracy": ..., ...}}``;
        a confusion matrix is a nested list (row: target class, column: predicted class).

    Raises:
        RunError: the run folder is missing files or corrupt; it has no validation split and no
            file was given; or its data source no longer gives the split it was trained with.
        DataError: the file is missing, lacks a column, holds a bad value or an unknown label
            (file, row and column named).
        SpecError: the device asked for is not available.
    """
    from specnn.runtime.train.device import resolve_device

    run = run if isinstance(run, Run) else load_run(run, checkpoint)
    spec = run.spec
    # an unavailable train.device is located in the run's spec; a --device one is not in any file
    target = resolve_device(spec.train.device, spec) if device is None else _device(device)
    preprocessor = load_preprocessor(run.path, spec) or _preprocessor_from_spec(spec)
    if data is None:
        tensors = place(validation_split(run, preprocessor, split), target, spec=spec, settings=preprocessor.image)
    else:
        tensors = data_module.to_tensors(*held_out_rows(run, preprocessor, Path(data)), target)
    values = _measure(run, tensors, batch_size or spec.train.batch_size, target)
    return {
        "run": str(run.path),
        "data": (VALIDATION if split == "validation" else f"{split} split") if data is None else str(data),
        "samples": len(tensors),
        "classes": _classes(run),
        "metrics": values,
    }


def _classes(run: Run) -> Any:
    """The run's class names; with several outputs, each classifier output's, by name."""
    outputs = run.meta.get("outputs")
    if outputs is None:
        return run.classes
    return {o["name"]: o["classes"] for o in outputs if o["task"] != "regression"}


def _device(name: str) -> torch.device:
    from specnn.runtime.train.device import resolve_device

    try:
        return resolve_device(name)
    except SpecError as error:  # not the spec's train.device: the problem is the argument itself
        raise SpecError([replace(p, path=("device",)) for p in error.problems]) from None


def _measure(run: Run, tensors: Tensors, batch_size: int, device: torch.device) -> dict[str, MetricValue]:
    """The trainer's own evaluation pass: loss per sample and the spec's metrics."""
    from specnn.runtime.train.metrics import MetricSet
    from specnn.runtime.train.losses import make_loss
    from specnn.runtime.train.loop import autocast_for, evaluate as evaluate_pass
    from specnn.spec.train_rules import metric_choices

    spec = run.spec
    if spec.several_losses:
        return _measure_outputs(run, tensors, batch_size, device)
    task = LOSSES[spec.loss.kind].task
    output_shape = _output_shape(run)
    threshold = 0.5 if spec.loss.kind == "BCELoss" else 0.0
    try:
        metrics = MetricSet(metric_choices(spec.train, task), task, output_shape[0] if output_shape else None,
                            device, threshold)
    except SpecError as error:
        raise RunError(locate(spec, error.problems)) from None
    model = run.model.to(device)
    result = evaluate_pass(model, tensors, make_loss(spec, device, run.meta.get("class_weight")), batch_size, metrics,
                           autocast_for(spec.train.precision, device))
    return {key.removeprefix("val_"): value for key, value in result.items()}


def _measure_outputs(run: Run, tensors: Tensors, batch_size: int, device: torch.device) -> dict[str, MetricValue]:
    """With a loss per output: the weighted total loss, then each output's loss and metrics."""
    from specnn.runtime.train.loop import autocast_for, evaluate as evaluate_pass
    from specnn.runtime.train.outputs import OutputsMetrics, make_outputs_loss

    spec, layout = run.spec, load_preprocessor(run.path, run.spec).outputs
    loss_fn = make_outputs_loss(spec, layout, list(run.compiled.outputs), device, run.meta.get("class_weight"))
    try:
        metrics = OutputsMetrics(spec, loss_fn, device)
    except SpecError as error:
        raise RunError(error.problems) from None
    result = evaluate_pass(run.model.to(device), tensors, loss_fn, batch_size, metrics,
                           autocast_for(spec.train.precision, device))
    return {key.removeprefix("val_"): value for key, value in result.items()}


def _output_shape(run: Run) -> tuple[int, ...]:
    from specnn.runtime.data.check import single_output

    try:
        return single_output(run.spec, run.compiled)
    except SpecError as error:
        raise RunError(error.problems) from None


# ---------------------------------------------------------------------------------------------
# the validation split, as training made it


def validation_split(run: Run, preprocessor: Preprocessor, part: str = "validation") -> Any:
    """The run's validation (or test) samples: Arrays (features per model input, scaled, and targets),
    or the image files of a streamed image folder.

    The split is the trainer's (``data/prepare.load_splits`` with the spec's seed); the fills and
    scaling are the stored ones. The class list, category vocabularies and sample count are
    checked against the run's, so a data file changed since training is an error rather than a
    silently different split.

    Raises:
        RunError: ``validation_split`` (``test_split``) is 0, or the data source no longer matches the run.
        DataError: the data source cannot be read.
    """
    from specnn.compiler.token_ids import embedding_limits
    from specnn.runtime.data.prepare import load_splits

    spec = run.spec
    key = f"{part}_split"
    if getattr(spec.data, key) <= 0 and not getattr(spec.data, f"{part}_path"):
        raise RunError([spec_problem(
            spec, ("data", key), f"this run has no {part} split ({key} is 0): "
            "there is nothing to evaluate without a file", code=f"no-{part}",
            hint="pass --data FILE: a CSV or NPZ with the feature columns and the target")])
    splits = load_splits(spec, run.compiled.inputs, _output_shape(run), fitted=preprocessor,
                         token_limits=embedding_limits(run.compiled.graph))
    _check_same_source(run, splits.classes, splits.preprocessor, preprocessor)
    chosen = splits.validation if part == "validation" else splits.test
    expected = run.meta["samples"][part]  # training records the size of each split it made
    if len(chosen) != expected:
        raise _changed(spec, f"its {part} split has {len(chosen)} samples, the run's had {expected}")
    return chosen


def _check_same_source(run: Run, classes: Optional[list[str]], fresh: Preprocessor, stored: Preprocessor) -> None:
    if classes != run.classes:
        raise _changed(run.spec, f"it has classes {_names(classes)}, the run was trained on {_names(run.classes)}")
    for now, then in zip(fresh.outputs or (), stored.outputs or ()):
        if now.classes != then.classes:
            raise _changed(run.spec, f"output '{now.output}' has classes {_names(now.classes)}, the run was trained "
                                     f"on {_names(then.classes)}")
    for column, encoding in stored.categorical.items():
        now = fresh.categorical.get(column)
        if now is None or now.categories != encoding.categories:
            raise _changed(run.spec, f"column '{column}' has categories {_names(now and now.categories)}, "
                                     f"the run was trained on {_names(encoding.categories)}")


def _changed(spec: Any, what: str) -> RunError:
    return RunError([spec_problem(
        spec, ("data", spec.data.kind), f"the data source no longer gives the run's validation split: {what}",
        code="data-changed", hint="evaluate a held-out file with --data FILE")])


def _names(names: Optional[Sequence[str]]) -> str:
    return "[" + ", ".join(names) + "]" if names else "none (numeric labels)"


# ---------------------------------------------------------------------------------------------
# a held-out file


def held_out_rows(run: Run, preprocessor: Preprocessor, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A held-out file's model input (encoded and scaled as in training) and its targets.

    Raises:
        RunError: the model has several inputs (a file feeds one).
        DataError: see :func:`evaluate`.
    """
    spec = run.spec
    if preprocessor.outputs is not None:
        return _held_out_outputs(run, preprocessor, path)
    target = preprocessor.target or (spec.data.args.y if spec.data.kind == "npz" else "y")
    # The target column must not be read as a feature when the run's columns have no names.
    features = read_features(path, replace(preprocessor, target=target), spec)
    targets = _file_targets(run, path, target, len(features), spec.loss.kind, _output_shape(run), run.classes)
    if preprocessor.target_scale is not None:  # the units training measured its loss in
        targets = preprocessor.target_scale.apply(targets)
    return _model_input(run, preprocessor, features), targets


def _file_targets(run: Run, path: Path, column: str, rows: int, loss: str, output_shape: Sequence[int],
                  classes: Optional[list[str]]) -> np.ndarray:
    """One target column (or npz array) of a held-out file, in the loss's form."""
    labels = _read_npz_labels(path, column) if path.suffix.lower() == ".npz" else \
        _read_csv_labels(path, column, run.spec)
    if len(labels.values) != rows:
        raise data_error(path, f"'{column}' has {len(labels.values)} labels but there are {rows} rows")
    if not rows:
        raise data_error(path, "has no rows to evaluate", code="empty")
    try:
        return data_module.prepare_targets(_targets(labels, classes, loss, output_shape), loss, output_shape)
    except DataError as error:
        raise DataError([replace(p, file=str(path), path=()) for p in error.problems]) from None


def _held_out_outputs(run: Run, preprocessor: Preprocessor, path: Path) -> tuple[Any, np.ndarray]:
    """A held-out file for a model with several outputs: each output's target column, packed as training did."""
    from specnn.runtime.data.outputs import apply_scales

    args = run.spec.data.args
    columns = args.targets if run.spec.data.kind != "npz" else args.y
    features = read_features(path, preprocessor, run.spec)
    blocks = [_file_targets(run, path, columns[t.output], len(features), t.loss, t.shape, t.classes)
              for t in preprocessor.outputs]
    part = Arrays(None, np.concatenate([b.reshape(len(b), -1).astype(np.float32) for b in blocks], axis=1))
    apply_scales(preprocessor.outputs, part)  # the units training measured its losses in
    return _model_input(run, preprocessor, features), part.targets


@dataclass
class _Labels:
    """The target column of a file: its values and how to name each row in a message.

    Attributes:
        rows: spreadsheet row numbers (CSV); None for an NPZ, whose rows are numpy indices.
    """

    path: Path
    column: str
    values: Sequence[Any]
    row_of: Optional[Callable[[int], int]] = None

    @property
    def is_text(self) -> bool:
        return isinstance(self.values, list)

    def where(self, i: int) -> str:
        if self.row_of is None:
            return f"{self.column}[{i}]"
        return f"row {self.row_of(i)}, column '{self.column}'"


def _read_csv_labels(path: Path, target: str, spec: Any) -> _Labels:
    delimiter = getattr(spec.data.args, "delimiter", ",")
    table = read_table(path, [], delimiter=delimiter, target=target, target_required=True)
    values = table.target
    missing = np.flatnonzero(values == None if values.dtype == object else np.isnan(values))  # noqa: E711
    if missing.size:
        raise data_error(path, f"{table.where(int(missing[0]), target)}: missing value", code="missing",
                         hint="every row evaluated needs its target")
    if values.dtype == object:
        return _Labels(path, target, [str(v) for v in values], table.row_of)
    return _Labels(path, target, values, table.row_of)


def _read_npz_labels(path: Path, target: str) -> _Labels:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if target not in archive.files:
                raise data_error(path, f"no array named '{target}' (arrays: {', '.join(archive.files) or 'none'})",
                                 code="column", hint="the labels go in an array named like the training's targets")
            values = archive[target]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise data_error(path, f"cannot read the file as .npz: {e}", code="file") from None
    if values.dtype.kind in "US":
        return _Labels(path, target, [str(v) for v in values.reshape(-1)])
    if not np.issubdtype(values.dtype, np.number) and values.dtype != np.bool_:
        raise data_error(path, f"array '{target}' holds {values.dtype} values, not labels")
    return _Labels(path, target, values)


def _targets(labels: _Labels, classes: Optional[list[str]], loss: str, output_shape: Sequence[int]) -> np.ndarray:
    """Labels as the trainer's targets: text through the run's class list, numbers as they are.

    Text labels of a run without class names (numeric labels) must be numbers; numeric labels
    for an index loss must be class indices of the model.
    """
    if labels.is_text and classes is not None:
        return _class_indices(labels, classes)
    if labels.is_text and labels.row_of is None:
        raise data_error(labels.path, f"array '{labels.column}' holds text labels; this run's labels are numbers")
    if labels.is_text:
        numbers = np.array([number(labels.path, labels.row_of(i), labels.column, text)
                            for i, text in enumerate(labels.values)])
    else:
        numbers = np.asarray(labels.values)
    if LOSSES[loss].target == "index":
        return _checked_indices(output_shape, labels, numbers)
    return numbers.astype(np.float32)


def _class_indices(labels: _Labels, classes: list[str]) -> np.ndarray:
    position = {name: i for i, name in enumerate(classes)}
    indices = np.empty(len(labels.values), dtype=np.int64)
    for i, label in enumerate(labels.values):
        if label not in position:
            raise data_error(labels.path, f"{labels.where(i)}: unknown label '{label}' "
                                          f"(known classes: {', '.join(classes)})", code="label")
        indices[i] = position[label]
    return indices


def _checked_indices(output_shape: Sequence[int], labels: _Labels, numbers: np.ndarray) -> np.ndarray:
    """Numeric class labels: whole numbers in 0..C-1 (C the model's outputs), the bad one located."""
    count = output_shape[-1] if output_shape else 1
    numbers = numbers.astype(np.float64)
    bad = np.flatnonzero((numbers != np.round(numbers)) | (numbers < 0) | (numbers >= count))
    if bad.size:
        i = int(bad[0])
        raise data_error(labels.path, f"{labels.where(i)}: {numbers[i]:g} is not a class of this run "
                                      f"(class indices 0..{count - 1})", code="label")
    return numbers.astype(np.int64)


def _model_input(run: Run, preprocessor: Preprocessor, features: np.ndarray) -> dict[str, np.ndarray]:
    """Scaled features shaped and typed as the model's one input."""
    inputs = run.compiled.inputs
    if len(inputs) != 1:
        raise RunError([Problem("evaluate", f"a file feeds one input tensor; this model has {len(inputs)} "
                                            f"({', '.join(inputs)})", file=str(run.path),
                                hint="evaluate its validation split: leave out --data")])
    (name, tensor_type), = inputs.items()
    x = preprocessor.transform(features).reshape(len(features), *tensor_type.shape)
    return {name: x.astype(data_module.NUMPY_DTYPES[tensor_type.dtype], copy=False)}


def _preprocessor_from_spec(spec: Any) -> Preprocessor:
    """Runs written before ``preprocess.json`` existed: no scaling, columns from the spec when named."""
    if spec.data.kind == "csv":
        return Preprocessor(spec.data.args.features, spec.data.args.target)
    return Preprocessor()


# ---------------------------------------------------------------------------------------------
# showing and writing the result


def format_evaluation(result: Evaluation) -> str:
    """The result as a small aligned table (metric, value), then any confusion matrix, labelled.

    >>> print(format_evaluation({"run": "runs/r", "data": "validation split", "samples": 3, "classes": ["a", "b"],
    ...                          "metrics": {"loss": 0.25, "accuracy": 2 / 3, "confusion_matrix": [[1, 0], [1, 1]]}}))
    runs/r on the validation split (3 samples)
    metric    value
    loss      0.25
    accuracy  0.666667
    <BLANKLINE>
    confusion matrix (rows: target, columns: predicted)
    target\\predicted  a  b
    a                 1  0
    b                 1  1
    """
    metrics = result["metrics"]
    numbers = [(name, value) for name, value in metrics.items() if not isinstance(value, list)]
    where = f"the {result['data']}" if result["data"].endswith(" split") else result["data"]
    lines = [f"{result['run']} on {where} ({result['samples']} samples)"]
    lines += _aligned([("metric", "value")] + [(name, format(value, ".6g")) for name, value in numbers])
    for name, value in metrics.items():
        if isinstance(value, list):
            classes = result.get("classes")
            if isinstance(classes, dict):  # several outputs: confusion_matrix_<output>
                classes = classes.get(name.removeprefix("confusion_matrix_"))
            classes = classes or [str(i) for i in range(len(value))]
            title = name.replace("_", " ") + " (rows: target, columns: predicted)"
            lines += ["", title] + _aligned([("target\\predicted", *classes)] +
                                            [(c, *map(str, row)) for c, row in zip(classes, value)], numeric=True)
    return "\n".join(lines)


def _aligned(rows: list[tuple[str, ...]], numeric: bool = False) -> list[str]:
    """Columns padded to their widest cell; the first column left-aligned, numbers right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(w) if numeric else cell.ljust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return lines


def write_evaluation(result: Evaluation, path: Union[str, Path]) -> Path:
    """Write the result as JSON to ``path``, atomically (the old file or the whole new one)."""
    return write_atomic(Path(path), json.dumps(result, indent=2) + "\n")
