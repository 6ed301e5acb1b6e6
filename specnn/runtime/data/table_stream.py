"""Tables bigger than memory: split, fitted and read unit by unit, never whole.

A CSV or Parquet table is streamed when ``data.loader.in_memory`` is false, or ``auto`` and its
float32 features would exceed ``memory_limit_mb`` (Parquet: rows and columns from its metadata;
CSV: rows estimated from the file size and the first MiB's line length). Three passes over the
file's units (``table_units.py``), each holding one unit at a time:

1. **count**: the target and ``drop`` columns: the rows kept (a missing target or a ``drop`` cell
   removes the row, counted in a note as in memory), the classes, whether numeric labels are whole;
2. **split**: :func:`~specnn.runtime.data.splits.split_indices` over the kept rows, exactly as in
   memory, so a streamed run holds out *the same rows* as an in-memory one; kept as one byte per
   row (the permutation itself, 8 bytes per row, lives only while the split is made);
3. **fit**: every column once: category vocabularies from every row; fills, feature scaling and
   target scaling from the training rows, with running moments (Chan's parallel update), so
   ``preprocess.json`` holds the in-memory statistics up to float rounding. Every bad cell of the
   file is found here, located, before anything trains.

What streaming cannot do as memory does, it refuses at the spec key: ``median`` fills (a median
needs every value; use ``mean``), ``stratify`` (it needs every label at once),
``validation_path``/``test_path`` files, a target column per output (``targets``) and int64
(token id) inputs. Epochs are read by ``table_loader.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from specnn.catalog.losses import LOSSES
from specnn.errors import DataError, SpecError, locate, spec_problem
from specnn.runtime.data.csv_table import data_error
from specnn.runtime.data.missing import FILLS, Fill, strategy_for
from specnn.runtime.data.preprocess import (
    Encoding,
    Preprocessor,
    TargetScale,
    check_input_width,
    only_input,
)
from specnn.runtime.data.sources import Arrays, resolve_path
from specnn.runtime.data.splits import split_parts
from specnn.runtime.data.table import Table, Wanted, is_parquet
from specnn.runtime.data.table_units import TableFile
from specnn.runtime.data.tensors import match_inputs, prepare_targets

if TYPE_CHECKING:
    from specnn.spec.models import Spec

__all__ = ["table_streams", "check_streamable", "stream_table", "TablePart", "RowReader", "Moments"]

MAX_CLASSES = 100_000  # distinct text labels a streamed table may have (they are held in memory)
TRAIN, VALIDATION, TEST = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# when


def table_streams(spec: "Spec") -> bool:
    """Whether the spec's table is streamed: ``in_memory: false``, or ``auto`` above ``memory_limit_mb``."""
    loader = spec.data.loader
    if loader.in_memory != "auto":
        return not loader.in_memory
    path = resolve_path(spec.data.args.path, spec.base_dir)
    try:
        return float32_bytes(path, getattr(spec.data.args, "delimiter", ",")) > loader.memory_limit_mb * 2**20
    except (OSError, ValueError, ImportError):
        return False  # unreadable: the in-memory reader says what is wrong, located


def float32_bytes(path: Path, delimiter: str = ",") -> float:
    """About the size of a table's features as float32: rows x (columns - 1 target) x 4."""
    if is_parquet(path):
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(path).metadata
        return metadata.num_rows * max(metadata.num_columns - 1, 1) * 4.0
    with path.open("rb") as f:
        head = f.read(1 << 20)
    lines = head.split(b"\n")
    columns = lines[0].count(delimiter.encode()) + 1
    per_line = len(head) / max(len(lines) - 1, 1)
    return path.stat().st_size / max(per_line, 1.0) * max(columns - 1, 1) * 4.0


def check_streamable(spec: "Spec") -> None:
    """What a streamed table cannot do, refused at the spec key that asks for it.

    Raises:
        SpecError: ``stratify``, ``validation_path``/``test_path``, ``targets``, or a ``median`` fill.
    """
    data, settings = spec.data, spec.data.preprocess
    why = "a streamed table is read in units and never held whole"
    if data.stratify:
        raise _refuse(spec, ("data", "stratify"), f"stratify needs every label at once; {why}",
                      "remove stratify, or hold the table in memory (data.loader.in_memory: true)")
    for key in ("validation_path", "test_path"):
        if getattr(data, key):
            raise _refuse(spec, ("data", key), f"{key} is not streamed yet; {why}",
                          f"use {key.replace('_path', '_split')}, or hold the tables in memory "
                          "(data.loader.in_memory: true)")
    if getattr(data.args, "targets", None) is not None:
        raise _refuse(spec, ("data", data.kind, "targets"), f"a target column per output is not streamed yet; {why}",
                      "hold the table in memory (data.loader.in_memory: true)")
    per_column = isinstance(settings.missing, Mapping)
    for column, chosen in (settings.missing.items() if per_column else [(None, settings.missing)]):
        if chosen == "median":
            where = ("data", "preprocess", "missing") + ((column,) if per_column else ())
            raise _refuse(spec, where, f"a median needs every training value at once; {why}",
                          "use mean, most_frequent or {constant: value}, or hold the table in memory")


def _refuse(spec: "Spec", where: tuple, message: str, hint: str) -> SpecError:
    return SpecError([spec_problem(spec, where, message, code="streaming", hint=hint)])


# ---------------------------------------------------------------------------------------------
# the run's streamed splits


def stream_table(spec: "Spec", inputs: Mapping[str, Any], output_shape: Sequence[int], check_classes: Any,
                 fitted: Optional[Preprocessor], columns: list[str], header: list[str]) -> tuple:
    """Count, split and fit a streamed table: ``(train, validation, test, classes, preprocessor, notes)``.

    The parts are :class:`TablePart` s (None when empty, the training part always given).
    """
    args, settings = spec.data.args, spec.data.preprocess
    path = resolve_path(args.path, spec.base_dir)
    file = TableFile(path, header, getattr(args, "delimiter", ","))
    categorical = dict(settings.categorical)
    drop = [c for c in columns if strategy_for(settings, c) == "drop"]
    counted = _count(file, drop, categorical, args.target)
    labels = counted.sample_labels()
    if check_classes is not None:
        check_classes(Arrays(np.empty((len(labels), 0)), labels, counted.classes))
    from specnn.runtime.data.prepare import targets_for_loss

    targets_for_loss(spec, labels, output_shape)  # class range and target shape, located, before the fit
    parts = _split(spec, counted.rows)
    want = Wanted(columns, set(categorical), args.target,
                  {c for c in columns if strategy_for(settings, c) != "error"})
    reader = RowReader(file, want, drop, parts, counted.kept_start, counted.target, Preprocessor(),
                       spec.loss.kind, tuple(output_shape))
    if fitted is not None:
        reader.preprocessor = fitted
    else:
        reader.preprocessor = _fit(spec, reader, columns, categorical)
    _check_width(spec, reader, inputs)
    counts = reader.part_counts()
    split = [TablePart(reader, p, counts[p]) for p in (TRAIN, VALIDATION, TEST)]
    train, validation, test = (part if len(part) or i == 0 else None for i, part in enumerate(split))
    return train, validation, test, counted.classes, reader.preprocessor, counted.notes(file.path, drop)


def _split(spec: "Spec", rows: int) -> np.ndarray:
    """One byte per kept row: its part (0 train, 1 validation, 2 test), as the in-memory split makes it."""
    try:
        return split_parts(rows, spec.data.validation_split, spec.data.test_split, spec.seed)
    except DataError as error:
        raise DataError(locate(spec, error.problems)) from None


def _check_width(spec: "Spec", reader: "RowReader", inputs: Mapping[str, Any]) -> None:
    """The encoded width against the model's input, located as in memory; the input's name and dtype kept."""
    width = len(reader.preprocessor.feature_names or [])
    empty = np.empty((0, width), np.float32)
    check_input_width(spec, reader.preprocessor, empty, inputs)
    (name, matched), = match_inputs(spec, inputs, empty).items()
    if matched.dtype.kind in "iu":  # whole-number and range checks of token ids read the whole column
        raise _refuse(spec, ("model", "input"), f"a {matched.dtype} (token id) input is not streamed yet; a streamed "
                      "table feeds float32 features", "hold the table in memory (data.loader.in_memory: true)")
    if reader.preprocessor.scale != "none":
        only_input(spec, reader.preprocessor, matched)  # no scaling of int64 token ids
    reader.input_shape, reader.input_dtype = matched.shape[1:], matched.dtype


# ---------------------------------------------------------------------------------------------
# pass 1: rows kept, classes


@dataclass
class TargetKind:
    """How a target column becomes labels: class indices of text, or numbers (whole or not)."""

    classes: Optional[list[str]] = None
    whole: bool = True

    def labels(self, values: np.ndarray) -> np.ndarray:
        """Labels as :func:`~specnn.runtime.data.table.labels_from_column` makes them for the whole column."""
        if self.classes is not None:
            return np.searchsorted(np.array(self.classes, dtype=str), values.astype(str)).astype(np.int64)
        numbers = np.asarray(values, dtype=np.float64)
        return numbers.astype(np.int64) if self.whole else numbers.astype(np.float32)


@dataclass
class Counted:
    rows: int = 0
    kept_start: list[int] = field(default_factory=list)  # per unit: its first kept row's index
    no_target: int = 0
    dropped: int = 0
    texts: set = field(default_factory=set)  # distinct labels as text (up to MAX_CLASSES)
    numeric: bool = True
    target: TargetKind = field(default_factory=TargetKind)
    classes: Optional[list[str]] = None

    def add_labels(self, values: np.ndarray) -> None:
        if len(self.texts) <= MAX_CLASSES:
            self.texts.update(np.unique(values.astype(str)).tolist())
        if self.numeric:
            try:
                numbers = np.asarray(values, dtype=np.float64)
                self.target.whole &= bool(np.all(numbers == np.round(numbers)))
            except (ValueError, TypeError):
                self.numeric = False

    def sample_labels(self) -> np.ndarray:
        """Every distinct label, as training labels (for the class count and the loss's checks)."""
        if self.classes is not None:
            return np.arange(len(self.classes))
        found = np.array(sorted(float(t) for t in self.texts), dtype=np.float64)
        return found.astype(np.int64) if self.target.whole else found.astype(np.float32)

    def notes(self, path: Path, drop: list[str]) -> list[str]:
        notes = [f"{path}: dropped {self.no_target} row(s) with no target value"] if self.no_target else []
        if self.dropped:
            notes.append(f"{path}: dropped {self.dropped} row(s) with a missing {'/'.join(drop)} value "
                         "(data.preprocess.missing: drop)")
        return notes + [f"{path}: streamed ({self.rows} rows, data.loader.in_memory)"]


def _count(file: TableFile, drop: list[str], categorical: Mapping[str, str], target: str) -> Counted:
    counted = Counted()
    want = Wanted(list(drop), {c for c in drop if c in categorical}, target, set(drop))
    for unit in file.units:
        table = file.read(unit, want)
        counted.kept_start.append(counted.rows)
        no_target = missing(table.target)
        dropped = np.zeros(len(table), bool)
        for column in drop:
            dropped |= missing(table.values[column])
        dropped &= ~no_target
        keep = ~(no_target | dropped)
        counted.no_target += int(no_target.sum())
        counted.dropped += int(dropped.sum())
        counted.rows += int(keep.sum())
        counted.add_labels(table.target[keep])
    counted.kept_start.append(counted.rows)
    if not counted.rows:
        raise data_error(file.path, "no rows are left after dropping those with missing values", code="empty")
    if not counted.numeric:
        if len(counted.texts) > MAX_CLASSES:
            raise data_error(file.path, f"column '{target}' holds more than {MAX_CLASSES} distinct text labels",
                             code="label")
        counted.classes = sorted(counted.texts)
        counted.target = TargetKind(counted.classes)
    return counted


def missing(values: Optional[np.ndarray]) -> np.ndarray:
    if values is None:
        return np.zeros(0, bool)
    return values == None if values.dtype == object else np.isnan(values)  # noqa: E711 (elementwise)


# ---------------------------------------------------------------------------------------------
# reading one unit's rows of a part


@dataclass
class RowReader:
    """Everything a DataLoader worker needs to turn a unit of the file into model inputs and targets."""

    file: TableFile
    want: Wanted
    drop: list[str]
    parts: np.ndarray  # per kept row: 0 train, 1 validation, 2 test
    kept_start: list[int]
    target: TargetKind
    preprocessor: Preprocessor
    loss: str
    output_shape: tuple
    input_shape: tuple = ()
    input_dtype: Any = np.float32
    train_classes: Optional[np.ndarray] = None  # training rows per class label (classification)

    def kept(self, unit: int, threads: bool = True) -> tuple[Table, np.ndarray]:
        """The unit's kept rows (a missing target or ``drop`` cell removes one) and each one's part."""
        table = self.file.read(self.file.units[unit], self.want, threads)
        keep = ~missing(table.target)
        for column in self.drop:
            keep &= ~missing(table.values[column])
        if not keep.all():
            table = table.take(keep)
        return table, self.parts[self.kept_start[unit]:self.kept_start[unit + 1]]

    def part_counts(self) -> list[np.ndarray]:
        """Per part, its rows in each unit."""
        starts = np.asarray(self.kept_start)
        return [np.add.reduceat(self.parts == p, starts[:-1]) if len(self.parts) else np.zeros(len(starts) - 1, int)
                for p in (TRAIN, VALIDATION, TEST)]

    def read(self, unit: int, part: int, lo: int, hi: int, threads: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``lo:hi`` of ``part`` in ``unit`` as ``(inputs, targets)``, preprocessed as in memory."""
        table, parts = self.kept(unit, threads)
        chosen = np.zeros(len(table), bool)
        chosen[np.flatnonzero(parts == part)[lo:hi]] = True
        table = table.take(chosen)
        p = self.preprocessor
        x = p.encode(table)
        x = p.transform(x, in_place=True)  # the unit's own copy
        x = np.ascontiguousarray(x).reshape(len(x), *self.input_shape).astype(self.input_dtype, copy=False)
        y = prepare_targets(self.target.labels(table.target), self.loss, self.output_shape)
        if p.target_scale is not None:
            y = p.target_scale.apply(y)
        return x, y


@dataclass
class TablePart:
    """One split of a streamed table: which rows of which units (``table_loader.py`` reads them)."""

    reader: RowReader
    part: int
    counts: np.ndarray  # this part's rows in each unit

    def __len__(self) -> int:
        return int(self.counts.sum())


# ---------------------------------------------------------------------------------------------
# pass 3: fit on the training rows


class Moments:
    """Count, mean, sum of squared deviations, minimum and maximum, merged batch by batch (Chan et al.)."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.low, self.high = np.inf, -np.inf

    def add(self, x: np.ndarray) -> None:
        if not len(x):
            return
        x = x.astype(np.float64)
        mean = x.mean(axis=0)
        self._merge(len(x), mean, ((x - mean) ** 2).sum(axis=0))
        self.low, self.high = np.minimum(self.low, x.min(axis=0)), np.maximum(self.high, x.max(axis=0))

    def add_constant(self, value: float, k: int) -> None:
        if k:
            self._merge(k, np.float64(value), 0.0)
            self.low, self.high = np.minimum(self.low, value), np.maximum(self.high, value)

    def _merge(self, k: int, mean: Any, m2: Any) -> None:
        total = self.count + k
        delta = mean - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * k / total)
        self.count = total

    @property
    def std(self) -> Any:
        return np.sqrt(self.m2 / max(self.count, 1))


@dataclass
class _Fit:
    vocab: dict[str, set] = field(default_factory=dict)
    gaps: set = field(default_factory=set)  # categorical columns with a missing cell somewhere
    moments: dict[str, Moments] = field(default_factory=dict)  # numeric columns, present training values
    holes: Counter = field(default_factory=Counter)  # numeric column -> missing training cells
    frequent: dict[str, Counter] = field(default_factory=dict)
    target: Moments = field(default_factory=Moments)


def _fit(spec: "Spec", reader: RowReader, columns: list[str], categorical: Mapping[str, str]) -> Preprocessor:
    settings = spec.data.preprocess
    fit = _Fit({c: set() for c in categorical}, moments={c: Moments() for c in columns if c not in categorical})
    frequent = [c for c in columns if strategy_for(settings, c) == "most_frequent"]
    fit.frequent = {c: Counter() for c in frequent}
    scale_target = settings.scale_target != "none"
    for unit in range(len(reader.file.units)):
        table, parts = reader.kept(unit)
        train = parts == TRAIN
        _fit_unit(fit, table, train, categorical)
        _count_classes(reader, table.target[train])
        if scale_target:
            fit.target.add(prepare_targets(reader.target.labels(table.target[train]), reader.loss,
                                           reader.output_shape).reshape(int(train.sum()), -1))
    fills = _fills(spec, fit, columns, categorical)
    preprocessor = Preprocessor(columns, spec.data.args.target, {}, settings.scale, fills=fills)
    preprocessor.categorical = {c: Encoding(kind, sorted(fit.vocab[c] | ({str(fills[c].value)} if c in fit.gaps
                                                                          and c in fills else set())))
                                for c, kind in categorical.items()}
    _scaling(preprocessor, fit)
    if scale_target:
        preprocessor.target_scale = _target_scale(spec, settings.scale_target, fit.target)
    return preprocessor


def _count_classes(reader: RowReader, values: np.ndarray) -> None:
    if reader.target.classes is None and not reader.target.whole:
        return  # regression: no classes
    found = np.bincount(np.maximum(reader.target.labels(values), 0))
    counts = reader.train_classes if reader.train_classes is not None else np.zeros(0, np.int64)
    counts = np.pad(counts, (0, max(0, len(found) - len(counts))))
    counts[:len(found)] += found
    reader.train_classes = counts


def _fit_unit(fit: _Fit, table: Table, train: np.ndarray, categorical: Mapping[str, str]) -> None:
    for column in table.columns:
        values = table.values[column]
        gone = missing(values)
        if column in categorical:
            fit.vocab[column].update(np.unique(values[~gone].astype(str)).tolist())
            if gone.any():
                fit.gaps.add(column)
        else:
            fit.moments[column].add(values[train & ~gone])
            fit.holes[column] += int((train & gone).sum())
        if column in fit.frequent:
            present = values[train & ~gone]
            found, counts = np.unique(present.astype(str) if column in categorical else present, return_counts=True)
            fit.frequent[column].update(dict(zip(found.tolist(), counts.tolist())))


def _fills(spec: "Spec", fit: _Fit, columns: list[str], categorical: Mapping[str, str]) -> dict[str, Fill]:
    """Each filled column's value, checked as ``missing.fit_fills`` checks it (located at the spec key)."""
    from specnn.runtime.data.missing import fitted_value

    settings, fills = spec.data.preprocess, {}
    for column in columns:
        strategy = strategy_for(settings, column)
        if strategy not in FILLS:
            continue
        where = ("data", "preprocess", "missing") + ((column,) if isinstance(settings.missing, Mapping) else ())
        text = column in categorical
        # the in-memory checks (a text constant for numbers, the mean of categories, no training value)
        # on a stand-in column: one training value when there was one
        seen = bool(fit.frequent[column]) if column in fit.frequent else \
            (not text and fit.moments[column].count > 0)
        sample = np.array(["x"] if seen else [None], dtype=object) if text else np.array([0.0 if seen else np.nan])
        value = fitted_value(sample, sample, strategy, settings.missing_for(column), column, where, spec)
        if strategy == "mean":
            value = float(fit.moments[column].mean)
        elif strategy == "most_frequent":
            value = _most_frequent(fit.frequent[column], text)
        fills[column] = Fill(strategy, value)
        if not text and fit.holes[column]:  # the filled cells count in the scaling statistics
            fit.moments[column].add_constant(float(np.float32(value)), fit.holes[column])
    return fills


def _most_frequent(counts: Counter, text: bool) -> Any:
    top = max(counts.values())
    best = min(value for value, count in counts.items() if count == top)  # ties: the smallest, as np.unique
    return str(best) if text else float(best)


def _scaling(preprocessor: Preprocessor, fit: _Fit) -> None:
    """The scaling statistics per encoded feature; encoded categories keep the identity (0 and 1)."""
    names = preprocessor.feature_names or []
    preprocessor.width = len(names)
    if preprocessor.scale == "none":
        return
    low, high = [], []
    for name in names:
        m = fit.moments.get(name)
        if m is None:
            low.append(0.0), high.append(1.0)
        elif preprocessor.scale == "standard":
            low.append(float(m.mean)), high.append(float(m.std))
        else:
            low.append(float(m.low)), high.append(float(m.high))
    keys = ("mean", "std") if preprocessor.scale == "standard" else ("min", "max")
    preprocessor.stats = {keys[0]: low, keys[1]: high}


def _target_scale(spec: "Spec", method: str, moments: Moments) -> TargetScale:
    if LOSSES[spec.loss.kind].task != "regression":
        raise SpecError([spec_problem(spec, ("data", "preprocess", "scale_target"), f"scale_target is for regression "
                                      f"targets; {spec.loss.kind} learns classes", code="preprocess",
                                      hint="remove scale_target")])
    if method == "standard":
        shift, spread = np.atleast_1d(moments.mean), np.atleast_1d(moments.std)
    else:
        shift, spread = np.atleast_1d(moments.low), np.atleast_1d(moments.high - moments.low)
    return TargetScale(method, shift.tolist(), np.where(spread > 0, spread, 1.0).tolist())

