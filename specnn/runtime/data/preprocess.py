"""Feature preprocessing: categorical encoding and scaling, fitted once and stored with the run.

A spec asks for it in its data section::

    data:
      csv: {path: shop.csv, target: bought}
      preprocess:
        scale: standard                      # none | standard | minmax
        categorical: {color: onehot, size: index}
        missing: {age: median}               # see missing.py
        scale_target: standard               # regression targets, mapped back by predict

Three things are fitted, on purpose from different rows:

* the **vocabulary** of each categorical column, from every row of the training file (sorted),
  so the model's input width does not depend on the random validation split;
* the **scaling statistics** (mean and standard deviation, or minimum and maximum), from the
  training split only, so nothing about the validation rows leaks into training;
* the **fill values** of missing cells (``missing.py``), from the training split only.

All go to ``preprocess.json`` in the run folder together with the feature columns and their
order; :func:`load_preprocessor` reads them back, so evaluation and prediction transform new rows
exactly as training did. Scaling applies to numeric columns; encoded categories pass through.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Optional

import numpy as np

from specnn.catalog.losses import LOSSES
from specnn.runtime.data.csv_table import data_error
from specnn.runtime.data.images import ImageSettings
from specnn.runtime.data.missing import Fill, apply_fills
from specnn.runtime.data.sources import Arrays
from specnn.runtime.data.table import Table
from specnn.errors import DataError, Problem, RunError, SpecError, spec_problem
from specnn.runtime.files import PREPROCESS_FILE, write_json

if TYPE_CHECKING:
    from specnn.spec.models import Spec

FORMAT = 1
Scale = Literal["none", "standard", "minmax"]

__all__ = [
    "PREPROCESS_FILE", "Encoding", "Preprocessor", "TargetScale", "load_preprocessor", "check_input_width",
    "fit_on_training_split",
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

    def encode(self, values: np.ndarray, column: str, table: "Table") -> np.ndarray:
        """The column's features, shape (N, width).

        Raises:
            DataError: a value is not a known category (file, row and column named).
        """
        known = np.array(self.categories, dtype=str)
        text = np.asarray(values).astype(str)
        at = np.minimum(np.searchsorted(known, text), max(len(known) - 1, 0))
        unknown = known[at] != text if len(known) else np.ones(len(text), dtype=bool)
        if unknown.any():
            i = int(np.argmax(unknown))
            raise data_error(table.file, f"{table.where(i, column)}: unknown category '{values[i]}' "
                                         f"(known: {', '.join(self.categories)})", code="category")
        if self.kind == "index":
            return at.astype(np.float32)[:, None]
        return np.eye(len(self.categories), dtype=np.float32)[at]


# ---------------------------------------------------------------------------------------------
# the preprocessor

_CHUNK = 1 << 16  # rows scaled at a time: float64 arithmetic without a float64 copy of the data


@dataclass
class TargetScale:
    """Regression targets scaled for training; predictions are mapped back with :meth:`inverse`."""

    method: Scale
    shift: list[float]
    spread: list[float]

    @classmethod
    def fit(cls, method: Scale, targets: np.ndarray) -> "TargetScale":
        flat = targets.reshape(len(targets), -1).astype(np.float64)
        if method == "standard":
            shift, spread = flat.mean(axis=0), flat.std(axis=0)
        else:
            shift, spread = flat.min(axis=0), flat.max(axis=0) - flat.min(axis=0)
        return cls(method, shift.tolist(), np.where(spread > 0, spread, 1.0).tolist())

    def apply(self, targets: np.ndarray) -> np.ndarray:
        flat = (targets.reshape(len(targets), -1).astype(np.float64) - self.shift) / self.spread
        return flat.astype(np.float32).reshape(targets.shape)

    def inverse(self, outputs: np.ndarray) -> np.ndarray:
        flat = outputs.reshape(len(outputs), -1).astype(np.float64) * self.spread + self.shift
        return flat.astype(np.float32).reshape(outputs.shape)


@dataclass
class OutputTarget:
    """One output's block of the target matrix, and how its targets were encoded.

    Attributes:
        output: the model output's name.
        loss: its loss (a ``LOSSES`` key).
        shape: the output's per-sample shape.
        start, stop: its columns in the target matrix.
        source: where its targets come from (a table column, an npz array), for messages.
        classes: class names, for a classifier with named labels.
        scale: the regression targets' scaling (``scale_target``), fitted on the training split.
    """

    output: str
    loss: str
    shape: tuple[int, ...]
    start: int
    stop: int
    source: Optional[str] = None
    classes: Optional[list[str]] = None
    scale: Optional[TargetScale] = None

    @property
    def task(self) -> str:
        return LOSSES[self.loss].task

    @property
    def indices(self) -> bool:
        """Its targets are class indices (one column), not values shaped like the output."""
        return LOSSES[self.loss].target == "index"

    def block(self, targets: Any) -> Any:
        """This output's targets from a target matrix (numpy or torch), in the loss's form."""
        columns = targets[:, self.start:self.stop]
        if self.indices:
            return columns[:, 0].long() if hasattr(columns, "long") else columns[:, 0].astype(np.int64)
        return columns.reshape(len(columns), *self.shape)

    def to_json(self) -> dict[str, Any]:
        scale = None if self.scale is None else {"method": self.scale.method, "shift": self.scale.shift,
                                                 "spread": self.scale.spread}
        return {"output": self.output, "loss": self.loss, "shape": list(self.shape), "columns": [self.start, self.stop],
                "source": self.source, "classes": self.classes, "target_scale": scale}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "OutputTarget":
        scale = data.get("target_scale")
        start, stop = data["columns"]
        return cls(data["output"], data["loss"], tuple(data["shape"]), int(start), int(stop), data.get("source"),
                   data.get("classes"),
                   TargetScale(scale["method"], list(scale["shift"]), list(scale["spread"])) if scale else None)


@dataclass
class Preprocessor:
    """Everything a run needs to turn raw feature columns into the model's input.

    Attributes:
        columns: the raw feature columns in order (table names); None for unnamed sources (npz).
        target: the target column's name, when the source has one.
        categorical: the encoding of each categorical column.
        scale: ``none``, ``standard`` or ``minmax``.
        stats: per encoded feature, ``mean``/``std`` or ``min``/``max`` (after :meth:`fit`);
            encoded categories hold the identity (0 and 1).
        width: the number of features per sample after encoding (flattened).
        fills: per column with a fill strategy, the value fitted on the training split.
        target_scale: the regression targets' scaling, when ``scale_target`` asks for one.
        image: how an image file becomes a model input (image folders).
        outputs: with a loss per output, each output's block of the targets (data/outputs.py).
    """

    columns: Optional[list[str]] = None
    target: Optional[str] = None
    categorical: dict[str, Encoding] = field(default_factory=dict)
    scale: Scale = "none"
    stats: dict[str, list[float]] = field(default_factory=dict)
    width: Optional[int] = None
    fills: dict[str, Fill] = field(default_factory=dict)
    target_scale: Optional[TargetScale] = None
    image: Optional[ImageSettings] = None
    outputs: Optional[list[OutputTarget]] = None

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
        """A table's features as numbers, shape (N, width): missing cells filled, categories encoded.

        The table's columns are released as they are copied in, so the peak is about one copy
        of the data more than the table.
        """
        apply_fills(table, self.fills)
        columns = self.columns or table.columns
        if not self.categorical and list(columns) == table.columns and table.features() is not None:
            return table.features()  # the reader's own matrix: no copy
        widths = [len(self.categorical[c].categories) if c in self.categorical and
                  self.categorical[c].kind == "onehot" else 1 for c in columns]
        out = np.empty((len(table), sum(widths)), np.float32)
        at = 0
        for column, width in zip(columns, widths):
            encoding = self.categorical.get(column)
            values = table.values[column]
            out[:, at:at + width] = values[:, None] if encoding is None else encoding.encode(values, column, table)
            at += width
        return out

    def fit(self, features: np.ndarray) -> "Preprocessor":
        """Fit the scaling statistics on training features (N, ...); returns self."""
        flat = features.reshape(len(features), -1)
        self.width = flat.shape[1]
        if self.scale == "none":
            self.stats = {}
            return self
        scaled = self._scaled_mask(flat.shape[1])
        if self.scale == "standard":
            mean = flat.mean(axis=0, dtype=np.float64)
            squares = sum(((flat[i:i + _CHUNK].astype(np.float64) - mean) ** 2).sum(axis=0)
                          for i in range(0, len(flat), _CHUNK))
            std = np.sqrt(squares / max(len(flat), 1))
            low, high = np.where(scaled, mean, 0.0), np.where(scaled, std, 1.0)
            self.stats = {"mean": low.tolist(), "std": high.tolist()}
        else:
            low, high = np.where(scaled, flat.min(axis=0), 0.0), np.where(scaled, flat.max(axis=0), 1.0)
            self.stats = {"min": low.tolist(), "max": high.tolist()}
        return self

    def transform(self, features: np.ndarray, in_place: bool = False) -> np.ndarray:
        """Scale features (N, ...) with the fitted statistics; same shape, float32 (unchanged for ``none``).

        A feature that did not vary in the training split (zero std or max == min) is only
        shifted, never divided by zero. ``in_place`` writes into ``features`` (float32, contiguous)
        instead of a new array.
        """
        if self.scale == "standard":
            shift, spread = np.array(self.stats["mean"]), np.array(self.stats["std"])
        elif self.scale == "minmax":
            shift = np.array(self.stats["min"])
            spread = np.array(self.stats["max"]) - shift
        else:
            return features
        spread = np.where(spread > 0, spread, 1.0)
        flat = features.reshape(len(features), -1)
        own = in_place and features.dtype == np.float32 and features.flags.c_contiguous
        out = flat if own else np.empty(flat.shape, np.float32)
        for i in range(0, len(flat), _CHUNK):
            out[i:i + _CHUNK] = (flat[i:i + _CHUNK].astype(np.float64) - shift) / spread
        return out.reshape(features.shape)

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
        data = {
            "format": FORMAT,
            "columns": self.columns,
            "target": self.target,
            "categorical": {c: {"encoding": e.kind, "categories": e.categories} for c, e in self.categorical.items()},
            "features": self.feature_names,
            "width": self.width,
            "scale": {"method": self.scale, **self.stats},
        }
        if self.fills:
            data["missing"] = {c: fill.to_json() for c, fill in self.fills.items()}
        if self.image is not None:
            data["image"] = self.image.to_json()
        if self.target_scale is not None:
            t = self.target_scale
            data["target_scale"] = {"method": t.method, "shift": t.shift, "spread": t.spread}
        if self.outputs is not None:
            data["outputs"] = [target.to_json() for target in self.outputs]
        return data

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
        fills = {c: Fill.from_json(f) for c, f in data.get("missing", {}).items()}
        target = data.get("target_scale")
        target_scale = TargetScale(target["method"], list(target["shift"]), list(target["spread"])) if target else None
        image = ImageSettings.from_json(data["image"]) if data.get("image") else None
        outputs = [OutputTarget.from_json(o) for o in data["outputs"]] if data.get("outputs") is not None else None
        return cls(data["columns"], data["target"], categorical, method, scale, data["width"], fills, target_scale,
                   image, outputs)

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
    if asked is None:
        return
    what = ", ".join(([f"scale: {asked.scale}"] if asked.scale != "none" else [])
                     + (["categorical"] if asked.categorical else [])
                     + (["missing"] if asked.missing != "error" else [])
                     + ([f"scale_target: {asked.scale_target}"] if asked.scale_target != "none" else []))
    if not what:
        return
    raise RunError([Problem("missing", f"missing run file: the run's spec asks for data.preprocess ({what}), "
                            "fitted on its training split and stored here", file=str(path))])


# ---------------------------------------------------------------------------------------------
# training: load the source, encode categories, and fit on the training split


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


def fit_on_training_split(spec: "Spec", preprocessor: Preprocessor, train: Arrays, *others: Optional[Arrays]) -> None:
    """Fit the scaling on the training split only, then scale every split (in place).

    Args:
        spec: the spec, to locate problems.
        preprocessor: from :func:`~specnn.runtime.data.prepare.load_splits`.
        train, others: the splits (validation, test; None when absent), features already
            matched to the model's inputs.

    Raises:
        SpecError: scaling asked for a model with several inputs or an int64 (token id) input.
    """
    name, features = only_input(spec, preprocessor, train.features)
    if features is None:
        return
    preprocessor.fit(features)
    if preprocessor.scale == "none":
        return
    for part in (train, *others):
        if part is not None:  # the splits are this run's own arrays: scaled where they are
            scaled = preprocessor.transform(only_input(spec, preprocessor, part.features)[1], in_place=True)
            part.features = {name: scaled} if name is not None else scaled


def only_input(spec: "Spec", preprocessor: Preprocessor, features: Any) -> tuple[Optional[str], Optional[np.ndarray]]:
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


