"""Feature preprocessing: categorical encoding and scaling, fitted once and stored with the run.

A spec asks for it in its data section::

    data:
      csv: {path: shop.csv, target: bought}
      preprocess:
        scale: standard                      # none | standard | minmax
        categorical: {color: onehot, size: index}

Two things are fitted, on purpose from different rows:

* the **vocabulary** of each categorical column, from every row of the training file (sorted),
  so the model's input width does not depend on the random validation split;
* the **scaling statistics** (mean and standard deviation, or minimum and maximum), from the
  training split only, so nothing about the validation rows leaks into training.

Both go to ``preprocess.json`` in the run folder together with the feature columns and their
order; :func:`load_preprocessor` reads them back, so evaluation and prediction transform new rows
exactly as training did. Scaling applies to numeric columns; encoded categories pass through.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Optional, Sequence

import numpy as np

from specnn.runtime.data.csv_table import column_index, data_error, number, present, read_rows
from specnn.runtime.data.sources import Arrays, encode_labels, resolve_path
from specnn.errors import DataError, Problem, RunError, SpecError, spec_problem
from specnn.runtime.files import PREPROCESS_FILE, write_json

if TYPE_CHECKING:
    from specnn.spec.models import Spec

FORMAT = 1
Scale = Literal["none", "standard", "minmax"]

__all__ = [
    "PREPROCESS_FILE", "Encoding", "Preprocessor", "Table", "load_training_arrays", "load_preprocessor",
    "read_csv_table", "read_csv_header", "check_input_width", "fit_on_training_split",
]


# ---------------------------------------------------------------------------------------------
# categorical columns


@dataclass(frozen=True)
class Encoding:
    """How one categorical column becomes numbers.

    Attributes:
        kind: ``onehot`` (one 0/1 feature per category) or ``index`` (one feature: the category's
            position in ``categories``).
        categories: the known categories, sorted.
    """

    kind: Literal["onehot", "index"]
    categories: list[str]

    def feature_names(self, column: str) -> list[str]:
        """Names of the features this column becomes, e.g. ``["color=blue", "color=red"]``.

        >>> Encoding("onehot", ["blue", "red"]).feature_names("color")
        ['color=blue', 'color=red']
        >>> Encoding("index", ["blue", "red"]).feature_names("color")
        ['color']
        """
        return [f"{column}={c}" for c in self.categories] if self.kind == "onehot" else [column]

    def encode(self, values: Sequence[str], column: str, rows: Sequence[int], file: Path | str) -> np.ndarray:
        """The column's features, shape (N, width).

        Raises:
            DataError: a value is not a known category (file, row and column named).
        """
        position = {name: i for i, name in enumerate(self.categories)}
        at = np.empty(len(values), dtype=np.int64)
        for i, value in enumerate(values):
            if value not in position:
                raise data_error(
                    file, f"row {rows[i]}, column '{column}': unknown category '{value}' "
                          f"(known: {', '.join(self.categories)})", code="category")
            at[i] = position[value]
        if self.kind == "index":
            return at.astype(np.float32)[:, None]
        return np.eye(len(self.categories), dtype=np.float32)[at]


# ---------------------------------------------------------------------------------------------
# reading CSV columns by name (numeric and categorical)


@dataclass
class Table:
    """Feature columns read from a CSV file, by name, with each data row's spreadsheet number.

    Attributes:
        file: where the rows came from.
        columns: the feature columns, in the order the model sees them.
        values: per column, float32 numbers (numeric columns) or the stripped text (categorical).
        rows: the spreadsheet row number of each sample (the header is row 1).
        target: the target column's text per row, when it was asked for and is present.
    """

    file: Path
    columns: list[str]
    values: dict[str, Any]
    rows: list[int]
    target: Optional[list[str]] = None

    def __len__(self) -> int:
        return len(self.rows)


def read_csv_header(path: Path, delimiter: str = ",") -> list[str]:
    """The column names of a CSV file (its first row).

    Raises:
        DataError: missing, unreadable or empty file.
    """
    if not path.is_file():
        raise data_error(path, "data file not found", code="file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            first = next((row for row in csv.reader(f, delimiter=delimiter) if row), None)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise data_error(path, f"cannot read the file as CSV: {e}", code="file") from None
    if first is None:
        raise data_error(path, "the file is empty: expected a header row and data rows", code="empty")
    return [name.strip() for name in first]


def read_csv_table(
    path: Path,
    columns: Optional[Sequence[str]],
    categorical: Sequence[str] = (),
    *,
    delimiter: str = ",",
    target: Optional[str] = None,
    target_required: bool = False,
) -> Table:
    """Read feature columns by name; numeric ones as float32, ``categorical`` ones as text.

    Args:
        path: the CSV file (header row first).
        columns: feature columns to read; None: every column except ``target``.
        categorical: columns kept as text (encoded later by an :class:`Encoding`).
        delimiter: the field separator.
        target: the target column's name; its text is read when the column is present.
        target_required: a missing target column is an error (training), not ignored (prediction).

    Raises:
        DataError: a missing column, a short row, a missing or non-numeric value (file, row,
            column named).
    """
    header, data_rows = read_rows(path, delimiter)
    names = list(columns) if columns is not None else [h for h in header if h != target]
    at = {name: column_index(path, header, name) for name in names}
    target_at = None
    if target is not None and (target_required or target in header):
        target_at = column_index(path, header, target)
    values: dict[str, Any] = {n: ([] if n in categorical else np.empty(len(data_rows), np.float32)) for n in names}
    labels: list[str] = []
    for i, (row_number, row) in enumerate(data_rows):
        if len(row) != len(header):
            raise data_error(path, f"row {row_number}: has {len(row)} fields, the header has {len(header)}")
        for name in names:
            if name in categorical:
                values[name].append(present(path, row_number, name, row[at[name]]))
            else:
                values[name][i] = number(path, row_number, name, row[at[name]])
        if target_at is not None:
            labels.append(present(path, row_number, target, row[target_at]))
    rows = [number for number, _ in data_rows]
    return Table(path, names, values, rows, labels if target_at is not None else None)


# ---------------------------------------------------------------------------------------------
# the preprocessor


@dataclass
class Preprocessor:
    """Everything a run needs to turn raw feature columns into the model's input.

    Attributes:
        columns: the raw feature columns in order (CSV names); None for unnamed sources (npz).
        target: the target column's name, when the source has one.
        categorical: the encoding of each categorical column.
        scale: ``none``, ``standard`` or ``minmax``.
        stats: per encoded feature, ``mean``/``std`` or ``min``/``max`` (after :meth:`fit`);
            encoded categories hold the identity (0 and 1).
        width: the number of features per sample after encoding (flattened).
    """

    columns: Optional[list[str]] = None
    target: Optional[str] = None
    categorical: dict[str, Encoding] = field(default_factory=dict)
    scale: Scale = "none"
    stats: dict[str, list[float]] = field(default_factory=dict)
    width: Optional[int] = None

    @property
    def feature_names(self) -> Optional[list[str]]:
        """The encoded features in model order (``color=red`` for one-hot), when columns have names."""
        if self.columns is None:
            return None
        names: list[str] = []
        for column in self.columns:
            encoding = self.categorical.get(column)
            names += encoding.feature_names(column) if encoding else [column]
        return names

    def encode(self, table: Table) -> np.ndarray:
        """A table's features as numbers, shape (N, width): categories encoded, in column order."""
        parts = []
        for column in self.columns or table.columns:
            encoding = self.categorical.get(column)
            if encoding is None:
                parts.append(np.asarray(table.values[column], np.float32)[:, None])
            else:
                parts.append(encoding.encode(table.values[column], column, table.rows, table.file))
        return np.concatenate(parts, axis=1) if parts else np.empty((len(table), 0), np.float32)

    def fit(self, features: np.ndarray) -> "Preprocessor":
        """Fit the scaling statistics on training features (N, ...); returns self."""
        flat = features.reshape(len(features), -1).astype(np.float64)
        self.width = flat.shape[1]
        if self.scale == "none":
            self.stats = {}
            return self
        scaled = self._scaled_mask(flat.shape[1])
        if self.scale == "standard":
            low, high = np.where(scaled, flat.mean(axis=0), 0.0), np.where(scaled, flat.std(axis=0), 1.0)
            self.stats = {"mean": low.tolist(), "std": high.tolist()}
        else:
            low, high = np.where(scaled, flat.min(axis=0), 0.0), np.where(scaled, flat.max(axis=0), 1.0)
            self.stats = {"min": low.tolist(), "max": high.tolist()}
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Scale features (N, ...) with the fitted statistics; same shape, float32 (unchanged for ``none``).

        A feature that did not vary in the training split (zero std or max == min) is only
        shifted, never divided by zero.
        """
        flat = features.reshape(len(features), -1).astype(np.float64)
        if self.scale == "standard":
            shift, spread = np.array(self.stats["mean"]), np.array(self.stats["std"])
        elif self.scale == "minmax":
            shift = np.array(self.stats["min"])
            spread = np.array(self.stats["max"]) - shift
        else:
            return features
        spread = np.where(spread > 0, spread, 1.0)
        return ((flat - shift) / spread).astype(np.float32).reshape(features.shape)

    def _scaled_mask(self, width: int) -> np.ndarray:
        """Which encoded features are scaled: the numeric columns, not encoded categories."""
        names = self.feature_names
        if names is None or len(names) != width:
            return np.ones(width, dtype=bool)
        numeric = set(self.columns or ()) - set(self.categorical)
        return np.array([name in numeric for name in names])

    # -- storage ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The contents of ``preprocess.json``."""
        return {
            "format": FORMAT,
            "columns": self.columns,
            "target": self.target,
            "categorical": {c: {"encoding": e.kind, "categories": e.categories} for c, e in self.categorical.items()},
            "features": self.feature_names,
            "width": self.width,
            "scale": {"method": self.scale, **self.stats},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Preprocessor":
        """Read back :meth:`to_json`'s output (KeyError/TypeError/ValueError when malformed)."""
        if data["format"] != FORMAT:
            raise ValueError(f"format {data['format']!r}, this specnn reads format {FORMAT}")
        scale = dict(data["scale"])
        method = scale.pop("method")
        if method not in ("none", "standard", "minmax"):
            raise ValueError(f"unknown scale method {method!r}")
        categorical = {c: Encoding(e["encoding"], list(e["categories"])) for c, e in data["categorical"].items()}
        return cls(data["columns"], data["target"], categorical, method, scale, data["width"])

    def save(self, folder: Path) -> Path:
        """Write ``preprocess.json`` into a run folder, atomically."""
        return write_json(Path(folder) / PREPROCESS_FILE, self.to_json())


def load_preprocessor(folder: Path | str, spec: Any = None) -> Optional[Preprocessor]:
    """The preprocessing a run fitted, from its ``preprocess.json``; None when the run has none.

    Args:
        folder: the run folder.
        spec: the run's spec; when it asks for scaling or categorical encoding, the file must be there.

    Raises:
        RunError: the file exists but cannot be read, or is missing though ``spec`` needs it
            (the file is named).
    """
    path = Path(folder) / PREPROCESS_FILE
    if not path.is_file():
        _require_when_asked(path, spec)
        return None
    try:
        return Preprocessor.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise RunError([Problem("corrupt", f"cannot read the run's preprocessing: {e}", file=str(path))]) from None


def _require_when_asked(path: Path, spec: Any) -> None:
    # Without the fitted statistics new rows would go in unscaled or unencoded: wrong answers, no error.
    asked = spec.data.preprocess if spec is not None else None
    if asked is None or (asked.scale == "none" and not asked.categorical):
        return
    what = ", ".join(([f"scale: {asked.scale}"] if asked.scale != "none" else [])
                     + (["categorical"] if asked.categorical else []))
    raise RunError([Problem("missing", f"missing run file: the run's spec asks for data.preprocess ({what}), "
                            "fitted on its training split and stored here", file=str(path))])


# ---------------------------------------------------------------------------------------------
# training: load the source, encode categories, and fit on the training split


def load_training_arrays(spec: "Spec") -> tuple[Arrays, Preprocessor]:
    """The spec's data with categorical columns encoded, and the (not yet fitted) preprocessor.

    CSV sources with categorical columns are read here (text kept for those columns); every
    other source goes through its usual loader. Call :meth:`Preprocessor.fit` on the training
    split and :meth:`Preprocessor.transform` on each split afterwards.

    Raises:
        SpecError: categorical columns on a source without named columns.
        DataError: the data cannot be read (file, row and column named).
    """
    from specnn.runtime.data.tensors import load_arrays

    settings = spec.data.preprocess
    categorical = dict(settings.categorical)
    if spec.data.kind != "csv":
        if categorical:
            raise SpecError([spec_problem(spec, ("data", "preprocess", "categorical"),
                                f"categorical columns need a csv source, not {spec.data.kind}", code="preprocess")])
        return load_arrays(spec), Preprocessor(scale=settings.scale)
    args = spec.data.args
    path = resolve_path(args.path, spec.base_dir)
    columns = args.features or [h for h in read_csv_header(path, args.delimiter) if h != args.target]
    _check_categorical_columns(spec, path, columns, categorical)
    if not categorical:
        return load_arrays(spec), Preprocessor(columns, args.target, scale=settings.scale)
    table = read_csv_table(path, columns, list(categorical), delimiter=args.delimiter,
                           target=args.target, target_required=True)
    encodings = {c: Encoding(kind, sorted(set(table.values[c]))) for c, kind in categorical.items()}
    preprocessor = Preprocessor(columns, args.target, encodings, settings.scale)
    targets, classes = encode_labels(table.target or [])
    return Arrays(preprocessor.encode(table), targets, classes), preprocessor


def check_input_width(spec: "Spec", preprocessor: Preprocessor, features: Any, inputs: Mapping[str, Any]) -> None:
    """After one-hot encoding, the model input must hold exactly the encoded features.

    The compiler cannot know how many categories the data has, so this is checked at train
    time and located at the model's input, with the width to write there.

    Raises:
        DataError: the encoded width differs from the model input's size.
    """
    onehot = {c: e for c, e in preprocessor.categorical.items() if e.kind == "onehot"}
    if not onehot or len(inputs) != 1 or isinstance(features, Mapping):
        return
    shape = next(iter(inputs.values())).shape
    width = math.prod(features.shape[1:])
    if width == math.prod(shape):
        return
    expands = ", ".join(f"'{c}' into {len(e.categories)}" for c, e in onehot.items())
    raise DataError([spec_problem(
        spec, ("model", "input"),
        f"one-hot encoding gives {width} features per sample ({expands}) but the model input is {list(shape)}",
        code="data-shape", hint=f"set 'input: [{width}]'",
    )])


def fit_on_training_split(spec: "Spec", preprocessor: Preprocessor, train: Arrays, validation: Optional[Arrays]) -> None:
    """Fit the scaling on the training split only, then scale both splits (in place).

    Args:
        spec: the spec, to locate problems.
        preprocessor: from :func:`load_training_arrays`.
        train, validation: the splits, features already matched to the model's inputs.

    Raises:
        SpecError: scaling asked for a model with several inputs or an int64 (token id) input.
    """
    name, features = _only_input(spec, preprocessor, train.features)
    if features is None:
        return
    preprocessor.fit(features)
    if preprocessor.scale == "none":
        return
    for part in (train, validation):
        if part is not None:
            scaled = preprocessor.transform(_only_input(spec, preprocessor, part.features)[1])
            part.features = {name: scaled} if name is not None else scaled


def _only_input(spec: "Spec", preprocessor: Preprocessor, features: Any) -> tuple[Optional[str], Optional[np.ndarray]]:
    """The one input array to scale (and its name when features are named); None if nothing to scale."""
    name = None
    if isinstance(features, Mapping):
        if len(features) != 1:
            if preprocessor.scale == "none":
                return None, None
            raise SpecError([spec_problem(spec, ("data", "preprocess", "scale"),
                                f"scaling applies to a model with one input; this one has {len(features)}", code="preprocess")])
        (name, features), = features.items()
    if preprocessor.scale != "none" and features.dtype.kind in "iub":
        raise SpecError([spec_problem(spec, ("data", "preprocess", "scale"),
                            f"the model input is {features.dtype} (e.g. token ids): scaling would change the ids", code="preprocess")])
    return name, features


def _check_categorical_columns(spec: "Spec", path: Path, columns: list[str], categorical: dict[str, str]) -> None:
    unknown = [c for c in categorical if c not in columns]
    if unknown:
        raise DataError([spec_problem(
            spec, ("data", "preprocess", "categorical", unknown[0]),
            f"'{unknown[0]}' is not a feature column of {path} (features: {', '.join(columns)})",
            code="column",
        )])

