"""Predictions from a trained run on new rows: ``specnn predict RUN INPUT``.

New rows go through exactly what training did: the same feature columns by name, the same
categorical vocabularies, the same scaling statistics (``preprocess.json``), then the model in
eval mode under ``torch.inference_mode``, in batches. The result is one row per input row: the
predicted class name (classification) with optional per-class probabilities, or the predicted
value(s) (regression).

>>> predictions = predict("runs/iris-mlp", "new.csv")          # doctest: +SKIP
>>> predictions.labels[:2], predictions.to_csv(probabilities=True).splitlines()[0]  # doctest: +SKIP
(['setosa', 'virginica'], 'prediction,p_setosa,p_versicolor,p_virginica')
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from specnn.runtime.data.preprocess import Preprocessor, load_preprocessor
from specnn.runtime.data.table import read_table
from specnn.runtime.data.tensors import TORCH_DTYPES, token_id_problem
from specnn.runtime.files import write_atomic
from specnn.runtime.runs.run import Run, load_run
from specnn.runtime.data.csv_table import data_error
from specnn.errors.texts import suggest


__all__ = ["Predictions", "predict", "read_features", "read_input_arrays"]


@dataclass
class Predictions:
    """A run's predictions for the rows of one input file.

    Attributes:
        task: ``classification``, ``binary`` or ``regression`` (from the run's loss).
        outputs: the model's raw outputs, shape (N, outputs).
        classes: the class names (classification and binary), index i is class i.
        labels: the predicted class name per row (classification and binary).
        probabilities: (N, classes), each row summing to 1 (classification and binary).
    """

    task: str
    outputs: np.ndarray
    classes: Optional[list[str]] = None
    labels: Optional[list[str]] = None
    probabilities: Optional[np.ndarray] = None
    names: Optional[list[str]] = None  # the image file of each row (image folders)
    # A model with several outputs: each output's predictions, by name, in ``loss:`` order.
    parts: Optional[dict[str, "Predictions"]] = None

    def __len__(self) -> int:
        return len(self.outputs)

    def header(self, probabilities: bool = False) -> list[str]:
        """The CSV header: ``prediction`` (or ``prediction_0`` ... for several values), then ``p_<class>``.

        With several outputs, each output's columns named after it: ``species``, ``species_p_setosa``,
        ``petal_width`` (``<output>_0`` ... for several values).
        """
        if self.parts is not None:
            return (["file"] if self.names is not None else []) + [
                output + name.removeprefix("prediction") if name.startswith("prediction") else f"{output}_{name}"
                for output, part in self.parts.items()
                for name in part.header(probabilities and part.probabilities is not None)]
        if self.labels is not None:
            names = ["prediction"]
        else:
            width = self.outputs.shape[1]
            names = ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]
        if probabilities:
            names += [f"p_{name}" for name in self._probability_classes()]
        return (["file"] if self.names is not None else []) + names

    def rows(self, probabilities: bool = False) -> list[list[str]]:
        """One list of cell texts per input row, matching :meth:`header`."""
        if self.parts is not None:
            columns = [part.rows(probabilities and part.probabilities is not None) for part in self.parts.values()]
            table = [[cell for cells in row for cell in cells] for row in zip(*columns)]
            return [[name, *cells] for name, cells in zip(self.names, table)] if self.names is not None else table
        if self.labels is not None:
            table = [[label] for label in self.labels]
        else:
            table = [[_number(v) for v in row] for row in self.outputs]
        if probabilities:
            self._probability_classes()
            for cells, row in zip(table, self.probabilities):
                cells += [_number(p) for p in row]
        if self.names is not None:
            table = [[name, *cells] for name, cells in zip(self.names, table)]
        return table

    def to_csv(self, probabilities: bool = False) -> str:
        """The predictions as CSV text (header row first).

        Raises:
            ValueError: probabilities asked of a regression run.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header(probabilities))
        writer.writerows(self.rows(probabilities))
        return buffer.getvalue()

    def write_csv(self, path: Union[str, Path], probabilities: bool = False) -> Path:
        """Write :meth:`to_csv` to ``path`` atomically: the old file or the whole new one, never half."""
        return write_atomic(Path(path), self.to_csv(probabilities))

    def _probability_classes(self) -> list[str]:
        if self.probabilities is None or self.classes is None:
            raise ValueError(f"a {self.task} run has no class probabilities")
        return self.classes


def _number(value: float) -> str:
    return format(float(value), ".8g")


def predict(run: Union[Run, str, Path], path: Union[str, Path], *, array: Optional[str] = None,
            batch_size: int = 1024, checkpoint: Optional[str] = None) -> Predictions:
    """Predict every row of a CSV or NPZ file with a trained run.

    The file holds the training's feature columns, by name (the target column may be there; it
    is ignored). They are encoded and scaled with what the run stored, then fed to the model in
    eval mode, ``batch_size`` rows at a time.

    Args:
        run: a :class:`~specnn.runtime.runs.run.Run` or a run folder.
        path: a ``.csv`` file, or a ``.npz`` file with one array per feature column or one
            features array (named as the training's npz source, default ``x``). A model with
            several inputs reads an ``.npz`` with one array per input (see :func:`read_input_arrays`).
            ``data.npz:x`` names the features array, as ``array`` does.
        array: the ``.npz`` array holding the features (default: the training's name, else ``x``).
        batch_size: rows per forward pass.
        checkpoint: for a run folder: ``best`` or ``last`` predicts with that checkpoint's weights
            instead of ``weights.pt``.

    Raises:
        RunError: the run folder is missing files or corrupt.
        DataError: the input file is missing a column or holds a bad value (file, row, column named).
    """
    run = run if isinstance(run, Run) else load_run(run, checkpoint)
    path, array = split_array_name(path, array)
    inputs = run.compiled.inputs
    preprocessor = load_preprocessor(run.path, run.spec) or _preprocessor_from_spec(run.spec)
    names = None
    if preprocessor.image is not None:
        names, images = read_images(path, preprocessor.image)
        arrays = {next(iter(inputs)): images}
    elif len(inputs) > 1:
        if array is not None:
            raise data_error(path, f"array '{array}' names one features array, but the model has "
                                   f"{len(inputs)} inputs", code="predict",
                             hint=f"give an .npz with one array per input: {_wanted(inputs, run.spec)}")
        arrays = read_input_arrays(path, inputs, run.spec)
    else:
        features = read_features(Path(path), preprocessor, run.spec, array)
        (input_name, input_type), = inputs.items()
        if math.prod(features.shape[1:]) != math.prod(input_type.shape):  # no preprocess.json to say the width
            raise data_error(path, f"has {math.prod(features.shape[1:])} values per row, the model input "
                                   f"{list(input_type.shape)} takes {math.prod(input_type.shape)}", code="data-shape")
        arrays = {input_name: preprocessor.transform(features).reshape(len(features), *input_type.shape)}
    _check_rows(path, arrays, run.compiled.graph)
    tensors = [torch.as_tensor(arrays[name]).to(TORCH_DTYPES[t.dtype]) for name, t in inputs.items()]
    returned = _forward(run.model, tensors, batch_size, len(run.compiled.outputs))
    if preprocessor.outputs is not None:  # a loss per output: each output read as its own run would be
        predictions = _interpret_outputs(run, preprocessor.outputs, returned)
    else:
        outputs = returned[0].reshape(len(returned[0]), -1)
        if preprocessor.target_scale is not None:  # back to the units of the training targets
            outputs = preprocessor.target_scale.inverse(outputs)
        predictions = _interpret(run, outputs)
    predictions.names = names
    return predictions


def _check_rows(path: Path, arrays: dict[str, np.ndarray], graph: Any) -> None:
    """Rows the model can take: at least one, and token ids within the Embedding reading them."""
    from specnn.compiler.token_ids import embedding_limits

    if not len(next(iter(arrays.values()))):
        raise data_error(path, "holds no rows to predict", code="predict")
    for name, limit in embedding_limits(graph).items():
        found = token_id_problem(arrays.get(name), limit, "", name)
        if found is not None:
            raise data_error(path, found[0], code="data-vocab", hint=found[1])


def read_images(path: Path, settings: Any) -> tuple[list[str], np.ndarray]:
    """An image file, or every image in a folder and its subfolders (sorted), decoded and
    normalized as the run's training images were: names (relative to the folder) and (N, C, H, W).

    Raises:
        DataError: no such file or folder, no images in the folder, or a file Pillow cannot read.
    """
    from specnn.runtime.data.images import IMAGE_SUFFIXES, decode, normalize

    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise data_error(path, f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder", code="empty")
        names = [str(p.relative_to(path)) for p in files]
    elif path.is_file():
        files, names = [path], [path.name]
    else:
        raise data_error(path, "no such image or folder", code="file")
    pixels = np.stack([decode(f, settings.size, settings.channels, settings.resize) for f in files])
    return names, normalize(pixels, settings.mean, settings.std)


def split_array_name(path: Union[str, Path], array: Optional[str] = None) -> tuple[Path, Optional[str]]:
    """``data.npz:x`` -> (``data.npz``, ``x``); a path that exists as written is left whole.

    >>> split_array_name("held_out.npz:features")
    (PosixPath('held_out.npz'), 'features')
    """
    path = Path(path)
    file, colon, name = str(path).rpartition(":")
    if colon and name and file.lower().endswith(".npz") and not path.exists():
        if array is not None and array != name:
            raise data_error(Path(file), f"two array names given: '{name}' in the path and '{array}'", code="predict")
        return Path(file), name
    return path, array


def read_features(path: Path, preprocessor: Preprocessor, spec: Any = None,
                  array: Optional[str] = None) -> np.ndarray:
    """An input file's features, encoded like the run's training data but not yet scaled: (N, width).

    ``array``: for an ``.npz``, the array holding the features (default: the training's name, else
    ``x``, or one array per feature column).

    Raises:
        DataError: missing file, missing column or array, non-numeric or non-finite value, an
            unknown category, or a width that differs from the training's (file, row, column named).
    """
    if path.suffix.lower() == ".npz":
        features = _read_npz(path, preprocessor, spec, array)
    elif array is not None:
        raise data_error(path, f"an array name ('{array}') applies to an .npz file only", code="predict")
    else:
        delimiter = getattr(spec.data.args, "delimiter", ",") if spec is not None else ","
        table = read_table(path, preprocessor.columns, list(preprocessor.categorical), delimiter=delimiter,
                           target=preprocessor.target, allow_missing=list(preprocessor.fills))
        features = preprocessor.encode(table)
    if not len(features):
        raise data_error(path, "holds no rows to predict", code="predict")
    width = math.prod(features.shape[1:])
    if preprocessor.width is not None and width != preprocessor.width:
        named = f" (columns: {', '.join(preprocessor.columns)})" if preprocessor.columns else ""
        raise data_error(path, f"has {width} features per row, the run was trained on {preprocessor.width}{named}",
                         code="data-shape")
    return features


# ---------------------------------------------------------------------------------------------
# reading NPZ input


def _read_npz(path: Path, preprocessor: Preprocessor, spec: Any, array: Optional[str] = None) -> np.ndarray:
    if not path.is_file():
        raise data_error(path, "data file not found", code="file")
    array_name = array or _npz_x(spec) or "x"
    if isinstance(array_name, dict):  # one model input, named: its array
        (array_name,) = array_name.values()
    try:
        with np.load(path, allow_pickle=False) as archive:
            available = list(archive.files)
            columns = preprocessor.columns
            if array is not None and array not in available:
                raise data_error(path, f"no array named '{array}' (arrays: {', '.join(available) or 'none'})",
                                 code="column", hint=suggest(array, available))
            if array is None and columns and all(c in available for c in columns):
                arrays = {c: archive[c] for c in columns}
            elif array_name in available and not preprocessor.categorical:
                arrays = {array_name: archive[array_name]}
            else:
                wanted = [c for c in columns or () if c not in available] or [array_name]
                raise data_error(path, f"no array named {', '.join(repr(w) for w in wanted)} "
                                       f"(arrays: {', '.join(available) or 'none'})", code="column")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise data_error(path, f"cannot read the file as .npz: {e}", code="file") from None
    if array_name in arrays:
        return _numeric(path, array_name, arrays[array_name])
    return _encode_npz_columns(path, preprocessor, arrays)


def read_input_arrays(path: Path, inputs: dict[str, Any], spec: Any = None) -> dict[str, np.ndarray]:
    """A model with several inputs: one array per input from an ``.npz``, shaped ``(N, *input shape)``.

    Each input's array is named as in the training's npz source (``x: {input: array}``), else
    by the input's name (the names a synthetic source uses).

    Raises:
        DataError: a CSV (one table cannot feed several inputs), a missing or unreadable file, a
            missing array, arrays of different lengths, non-numbers, or a shape the input does not take.
    """
    listed = ", ".join(inputs)
    if path.suffix.lower() != ".npz":
        raise data_error(path, f"a CSV table feeds one model input; this model has {len(inputs)} ({listed})",
                         code="predict", hint=f"give an .npz file with one array per input: {_wanted(inputs, spec)}")
    if not path.is_file():
        raise data_error(path, "data file not found", code="file")
    names = _input_array_names(inputs, spec)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in names.values() if name not in archive.files]
            if missing:
                raise data_error(path, f"no array named {', '.join(repr(m) for m in missing)} "
                                       f"(arrays: {', '.join(archive.files) or 'none'})", code="column",
                                 hint=f"one array per model input: {_wanted(inputs, spec)}")
            raw = {key: archive[name] for key, name in names.items()}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise data_error(path, f"cannot read the file as .npz: {e}", code="file") from None
    lengths = {len(a) for a in raw.values()}
    if len(lengths) != 1:
        raise data_error(path, "the input arrays differ in length: " +
                         ", ".join(f"'{names[k]}' has {len(a)}" for k, a in raw.items()))
    return {key: _shaped(path, names[key], _input_values(path, names[key], a), inputs[key].shape)
            for key, a in raw.items()}


def _input_values(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    # Integers stay exact (token ids for an int64 input); anything else is checked as floats.
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    return _numeric(path, name, array)


def _npz_x(spec: Any) -> Any:
    """The training's npz ``x`` (an array name, or input name -> array name); None for other sources."""
    return spec.data.args.x if spec is not None and spec.data.kind == "npz" else None


def _input_array_names(inputs: dict[str, Any], spec: Any) -> dict[str, str]:
    x = _npz_x(spec)
    return {name: x[name] if isinstance(x, dict) and name in x else name for name in inputs}


def _wanted(inputs: dict[str, Any], spec: Any) -> str:
    names = _input_array_names(inputs, spec)
    return ", ".join(f"'{names[k]}' {list(t.shape)}" for k, t in inputs.items())


def _shaped(path: Path, name: str, values: np.ndarray, shape: Any) -> np.ndarray:
    """``values`` (N, ...) as (N, *shape): flat or already shaped, when the sizes agree."""
    if math.prod(values.shape[1:]) != math.prod(shape):
        raise data_error(path, f"array '{name}' has samples of shape {list(values.shape[1:])}, the model input "
                               f"takes {list(shape)}", code="data-shape")
    return values.reshape(len(values), *shape)


def _encode_npz_columns(path: Path, preprocessor: Preprocessor, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Columnar NPZ input (one 1-D array per column) through the same encoding as CSV rows."""
    from specnn.runtime.data.preprocess import Table

    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise data_error(path, "the column arrays differ in length: " +
                         ", ".join(f"'{c}' has {len(a)}" for c, a in arrays.items()))
    n = lengths.pop()
    values = {c: (np.array([str(v) for v in a.reshape(-1)], dtype=object) if c in preprocessor.categorical
                  else _numeric(path, c, a).reshape(n)) for c, a in arrays.items()}
    # Rows are named by their numpy index here, as a numpy user looks them up.
    return preprocessor.encode(Table(path, list(arrays), values, row_of=lambda i: i))


def _numeric(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    real = np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)
    if not real and array.dtype != np.bool_:
        raise data_error(path, f"array '{name}' holds {array.dtype} values, not real numbers")
    if array.ndim == 0:
        raise data_error(path, f"array '{name}' is a single value, not one row per sample")
    with np.errstate(over="ignore"):  # a value past float32's range becomes inf: reported just below
        values = array.astype(np.float32)
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        at, value = ", ".join(str(i) for i in bad[0]), array[tuple(bad[0])]
        what = "is not a finite number" if not np.isfinite(value) else "is past float32's range (3.4e38)"
        raise data_error(path, f"{name}[{at}]: {value} {what}")
    return values if values.ndim > 1 else values[:, None]


# ---------------------------------------------------------------------------------------------
# the model


@torch.inference_mode()
def _forward(model: torch.nn.Module, inputs: list[torch.Tensor], batch_size: int, returns: int = 1) -> list[np.ndarray]:
    """The model's outputs for every sample, one array per output (``returns``: how many the model returns):
    ``inputs`` (one tensor per model input) in batches."""
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    rows = len(inputs[0])
    batches = []
    for start in range(0, rows, batch_size):
        returned = model(*(x[start:start + batch_size].to(device) for x in inputs))
        batches.append([t.float().cpu() for t in (returned if returns > 1 else (returned,))])
    if not batches:
        return [np.empty((0, 1), np.float32) for _ in range(returns)]
    return [torch.cat([batch[i] for batch in batches]).numpy() for i in range(returns)]


def _interpret_outputs(run: Run, layout: list[Any], returned: list[np.ndarray]) -> Predictions:
    """A model with several outputs: each output's predictions, in ``loss:`` order, joined by row."""
    position = {name: i for i, name in enumerate(run.compiled.outputs)}
    parts = {}
    for target in layout:
        outputs = returned[position[target.output]].reshape(len(returned[0]), -1)
        if target.scale is not None:  # back to the units of the training targets
            outputs = target.scale.inverse(outputs)
        parts[target.output] = _interpret(run, outputs, target.task, target.classes, target.loss)
    joined = np.concatenate([part.outputs for part in parts.values()], axis=1)
    found = next((part.probabilities for part in parts.values() if part.probabilities is not None), None)
    return Predictions(run.meta["task"], joined, probabilities=found, parts=parts)


def _interpret(run: Run, outputs: np.ndarray, task: Optional[str] = None, classes: Optional[list[str]] = None,
               loss: Optional[str] = None) -> Predictions:
    """Class names and probabilities (classification, binary) or values (regression).

    ``task``, ``classes``, ``loss``: one output's, with a loss per output (default: the run's).
    """
    task = task or run.meta["task"]
    known = classes if loss is not None else run.classes
    loss = loss or run.spec.loss.kind
    if task == "classification":
        probabilities = torch.softmax(torch.from_numpy(outputs), dim=-1).numpy()
        classes = known or [str(i) for i in range(outputs.shape[1])]
    elif task == "binary" and outputs.shape[1] == 1:
        # BCEWithLogitsLoss trains on logits; BCELoss on probabilities the model already outputs.
        logits = torch.from_numpy(outputs[:, 0])
        positive = (logits if loss == "BCELoss" else torch.sigmoid(logits)).numpy()
        probabilities = np.stack([1 - positive, positive], axis=1)
        classes = known or ["0", "1"]
    else:
        return Predictions(task, outputs)
    labels = [classes[i] for i in probabilities.argmax(axis=1)]
    return Predictions(task, outputs, classes, labels, probabilities)


def _preprocessor_from_spec(spec: Any) -> Preprocessor:
    """Runs written before ``preprocess.json`` existed: no scaling, columns from the spec when named."""
    if spec.data.kind == "csv":
        return Preprocessor(spec.data.args.features, spec.data.args.target)
    return Preprocessor()
