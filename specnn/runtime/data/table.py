"""Reading tables (CSV, Parquet) by column name, fast and in bounded memory.

CSV and Parquet go through pyarrow's multi-threaded columnar readers (``pip install
"specnn[parquet]"``); without pyarrow a CSV of numbers goes through ``numpy.loadtxt``. Neither
says where a bad cell is in spreadsheet terms, so when the fast reader refuses a file (or finds a
missing or infinite value where none is allowed) the file is re-scanned once by the per-cell
reader in ``csv_table.py``, which names the row and column. The fast path never builds Python
objects per cell: numeric columns go from Arrow buffers to float32 numpy arrays, one column at a
time, each Arrow column released as soon as it is converted (peak: about the data twice).

Missing cells are ``MISSING`` texts (empty, NA, NaN, null ...). Where they are allowed they come
back as NaN (numeric columns) or None (categorical columns and text targets), for
``preprocess.py`` to drop or fill; elsewhere they are a located error naming the spec key that
handles them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Optional, Sequence

import numpy as np

from specnn.errors.texts import needs_extra
from specnn.runtime.data.csv_table import (
    CATEGORICAL_HINT, MISSING, MISSING_HINT, check_file, column_index, data_error, header_problems, read_rows,
)

__all__ = ["MISSING", "MISSING_HINT", "CATEGORICAL_HINT", "Table", "read_table", "read_header", "labels_from_column",
           "is_parquet", "require_pyarrow"]



@dataclass
class Table:
    """Columns of a table, by name, as numpy arrays.

    Attributes:
        file: where the rows came from.
        columns: the feature columns, in the order the model sees them.
        values: numeric columns as float32 (NaN: missing); categorical ones as object arrays of
            stripped text (None: missing).
        target: the target column when asked for and present: float64 (NaN: missing) or an
            object array of stripped text (None: missing).
        row_of: a data row's index -> its number as a user finds it (CSV: the spreadsheet row,
            header = row 1, blank lines counted; computed by a re-scan, only when asked).
        matrix: when the fast reader read the numeric columns, they are this (N, numeric
            columns) float32 array's columns (``values`` holds views of it).
        more_targets: with a target per model output, the target columns after the first, by name
            (as ``target``); rows are taken from them alike.
    """

    file: Path
    columns: list[str]
    values: dict[str, np.ndarray]
    target: Optional[np.ndarray] = None
    row_of: Callable[[int], int] = field(default=lambda i: i + 1, repr=False)
    matrix: Optional[np.ndarray] = field(default=None, repr=False)  # the numeric columns, row-major, in order
    more_targets: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        if self.values:
            return len(next(iter(self.values.values())))
        return len(self.target) if self.target is not None else 0

    def where(self, i: int, column: str) -> str:
        """``row N, column 'c'``: how a message names data row ``i``'s cell."""
        return f"row {self.row_of(i)}, column '{column}'"

    def take(self, keep: np.ndarray) -> "Table":
        """The rows where ``keep`` (a mask) holds; row numbers still name the file's rows."""
        at = np.flatnonzero(keep)
        matrix = self.matrix[at] if self.matrix is not None else None
        numeric = self.numeric_columns()
        values = {name: (matrix[:, numeric.index(name)] if matrix is not None and name in numeric else array[at])
                  for name, array in self.values.items()}
        target = self.target[at] if self.target is not None else None
        more = {name: column[at] for name, column in self.more_targets.items()}
        return Table(self.file, self.columns, values, target, lambda i: self.row_of(int(at[i])), matrix, more)

    def numeric_columns(self) -> list[str]:
        """The numeric columns in order (those of ``matrix``)."""
        return [c for c in self.columns if self.values[c].dtype != object]

    def features(self) -> Optional[np.ndarray]:
        """The (N, columns) feature matrix without a copy, when every column is a number read fast."""
        if self.matrix is not None and self.matrix.shape[1] == len(self.columns):
            return self.matrix
        return None


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def require_pyarrow(what: str):
    """pyarrow, or a DataError saying how to install it (``what``: the file that needs it)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        message, hint = needs_extra("reading Parquet", "parquet")
        raise data_error(what, message, code="missing-extra", hint=hint) from None
    return pyarrow


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.csv  # noqa: F401
        return pyarrow
    except ImportError:
        return None


def read_header(path: Path, delimiter: str = ",") -> list[str]:
    """The column names of a CSV (its first row) or Parquet file (its schema).

    Raises:
        DataError: missing, unreadable or empty file; a column name that appears twice.
    """
    if is_parquet(path):
        return _parquet_schema(path)
    from specnn.runtime.data.csv_table import read_csv_header

    return read_csv_header(path, delimiter)


def read_table(
    path: Path,
    columns: Optional[Sequence[str]],
    categorical: Collection[str] = (),
    *,
    delimiter: str = ",",
    target: Optional[str] = None,
    target_required: bool = False,
    allow_missing: Collection[str] = (),
    limit: Optional[int] = None,
) -> Table:
    """Read feature columns (and the target) by name from a CSV or Parquet file.

    Args:
        path: the file; ``.parquet``/``.pq`` is Parquet, anything else CSV with a header row.
        columns: feature columns to read; None: every column except ``target``.
        categorical: columns kept as text.
        delimiter: the CSV field separator.
        target: the target column's name; read when present (or always, with ``target_required``).
        allow_missing: feature columns whose missing cells come back as NaN/None rather than an
            error. A missing target is never an error here: the caller drops or refuses the row.
        limit: read only the first rows (``specnn validate --data``).

    Raises:
        DataError: unreadable file, a repeated or missing column, a short row, a missing cell where
            none is allowed, a value that is not a (finite) number (file, row, column named).
    """
    header = read_header(path, delimiter)
    names = list(columns) if columns is not None else [h for h in header if h != target]
    for name in names:
        column_index(path, header, name)
    read_target = target is not None and (target_required or target in header)
    if read_target:
        column_index(path, header, target)
    want = Wanted(names, set(categorical), target if read_target else None, set(allow_missing))
    if is_parquet(path):
        return _read_parquet(path, want, limit)
    if limit is not None:
        return _read_csv_slow(path, delimiter, want, limit)
    pa = _pyarrow()
    if pa is not None:
        table = _read_csv_arrow(pa, path, header, delimiter, want)
    else:
        table = _read_csv_numpy(path, header, delimiter, want)
    return table if table is not None else _read_csv_slow(path, delimiter, want)


@dataclass
class Wanted:
    """The columns a read asks for: features (some kept as text), the target, and those that may be missing."""

    names: list[str]
    categorical: set[str]
    target: Optional[str]
    allow_missing: set[str]

    @property
    def all(self) -> list[str]:
        return list(dict.fromkeys(self.names + ([self.target] if self.target else [])))


# ---------------------------------------------------------------------------------------------
# CSV through pyarrow; None when the file needs the per-cell reader to say what is wrong


def _read_csv_arrow(pa: Any, path: Path, header: list[str], delimiter: str, want: Wanted) -> Optional[Table]:
    import pyarrow.csv as pacsv

    types = {n: pa.float32() for n in want.names if n not in want.categorical}
    types.update({n: pa.string() for n in want.categorical})
    try:
        # Batch by batch into columns allocated once: pyarrow's whole-table read would hold the
        # parsed file and the table at once (about 6x the float32 data at its peak).
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=1 << 21),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=want.all, column_types=types, null_values=list(MISSING),
                strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
        filler = Filler(want, _line_count(path))
        for batch in reader:
            if not filler.add(pa, path, batch, None):
                return None  # a missing or infinite value where none may be: the per-cell reader says where
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a bad cell, a short row, quoted line breaks ...: the per-cell reader says which
    except OSError as e:
        raise data_error(path, f"cannot read the file as CSV: {e}", code="file") from None
    if not filler.rows:
        return None
    return filler.table(path, _spreadsheet_rows(path, delimiter))


def _line_count(path: Path) -> int:
    """An upper bound on a CSV's data rows: its line breaks, plus a last line without one."""
    count = 1
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            count += chunk.count(b"\n")
    return count


class Filler:
    """Record batches written into numpy columns allocated once (pages past the last row stay unused)."""

    def __init__(self, want: Wanted, capacity: int) -> None:
        self.want, self.rows = want, 0
        numeric = [n for n in want.names if n not in want.categorical]
        # Row-major, as the model reads it: a batch fills only its own rows' pages, and a table of
        # numbers becomes the feature matrix without another copy.
        self.matrix = np.empty((capacity, len(numeric)), np.float32)
        self.numbers = {n: self.matrix[:, j] for j, n in enumerate(numeric)}
        self.parts: dict[str, list[np.ndarray]] = {n: [] for n in want.all if n not in self.numbers or n == want.target}

    def add(self, pa: Any, path: Path, batch: Any, row_of: Optional[Callable[[int], int]]) -> bool:
        """Append a batch; False (CSV) or a located DataError (``row_of`` given) at a refused cell."""
        want, start, k = self.want, self.rows, batch.num_rows
        for name in want.all:
            column = batch.column(name)
            if name == want.target:
                self.parts[name].append(_target_values(pa, column))
                if name not in want.names:
                    continue
            if name in want.categorical:
                values = _text(pa, column)
                self.parts[name].append(values)
                bad = values == None  # noqa: E711 (elementwise)
                if name in want.allow_missing:
                    continue
            else:
                values = self.numbers[name][start:start + k]
                values[:] = _float32(pa, path, name, column)
                bad = ~np.isfinite(values)
                if name in want.allow_missing:
                    bad &= ~np.isnan(values)
            if bad.any():
                if row_of is None:
                    return False
                i = int(np.argmax(bad))
                raise _bad_cell(path, f"row {row_of(start + i)}, column '{name}'", values[i], name in want.categorical)
        self.rows += k
        return True

    def table(self, path: Path, row_of: Callable[[int], int]) -> Table:
        values = {}
        for name in self.want.names:
            values[name] = self.numbers[name][:self.rows] if name in self.numbers else _joined(self.parts[name])
        target = _joined(self.parts[self.want.target]) if self.want.target else None
        return Table(path, list(self.want.names), values, target, row_of, self.matrix[:self.rows])


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    if any(p.dtype == object for p in parts):
        parts = [p.astype(object) for p in parts]
    return np.concatenate(parts) if parts else np.empty(0)


def _float32(pa: Any, path: Path, name: str, column: Any) -> np.ndarray:
    import pyarrow.compute as pc

    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type) or pa.types.is_boolean(column.type)
            or pa.types.is_null(column.type)):
        raise data_error(path, f"column '{name}' holds {column.type} values, not numbers", code="type",
                         hint=CATEGORICAL_HINT)
    return pc.cast(column, pa.float32()).to_numpy(zero_copy_only=False)  # nulls become NaN


def _text(pa: Any, column: Any) -> np.ndarray:
    import pyarrow.compute as pc

    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = pc.cast(column, pa.string())
    column = pc.utf8_trim_whitespace(column)
    # " NA " is as missing as "NA": the reader matched null texts before stripping.
    column = pc.if_else(pc.is_in(column, value_set=pa.array(MISSING)), pa.scalar(None, pa.string()), column)
    return column.to_numpy(zero_copy_only=False)


def _target_values(pa: Any, column: Any) -> np.ndarray:
    """A target column: float64 (NaN missing) when numeric, else stripped text (None missing)."""
    import pyarrow.compute as pc

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        return pc.cast(column, pa.float64()).to_numpy()
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    return _text(pa, column)


def _bad_cell(path: Path, where: str, value: Any, categorical: bool):
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):  # numpy's float32 too
        return data_error(path, f"{where}: missing value", code="missing", hint=MISSING_HINT)
    return data_error(path, f"{where}: '{value}' is not a finite number")


def _spreadsheet_rows(path: Path, delimiter: str) -> Callable[[int], int]:
    """Data row index -> spreadsheet row, from one re-scan of the file made on first use."""
    found: list[int] = []

    def row_of(i: int) -> int:
        if not found:
            found.extend(number for number, _ in read_rows(path, delimiter)[1])
        return found[i]
    return row_of


# ---------------------------------------------------------------------------------------------
# CSV without pyarrow: numpy's C reader for numbers, else the per-cell reader


def _read_csv_numpy(path: Path, header: list[str], delimiter: str, want: Wanted) -> Optional[Table]:
    if want.categorical or want.allow_missing:
        return None
    at = [header.index(n) for n in want.names]
    try:
        matrix = np.loadtxt(path, delimiter=delimiter, skiprows=1, usecols=at, dtype=np.float32, ndmin=2,
                            encoding="utf-8-sig", comments=None, quotechar='"')
        target = None
        if want.target is not None:
            text = np.loadtxt(path, delimiter=delimiter, skiprows=1, usecols=[header.index(want.target)], dtype=str,
                              ndmin=1, encoding="utf-8-sig", comments=None, quotechar='"')
            target = np.array([t.strip() or None for t in text], dtype=object)
    except (ValueError, OSError):
        return None
    if not len(matrix) or not np.isfinite(matrix).all() or (target is not None and (target == None).any()):  # noqa: E711
        return None
    values = {name: np.ascontiguousarray(matrix[:, j]) for j, name in enumerate(want.names)}
    return Table(path, list(want.names), values, target, _spreadsheet_rows(path, delimiter))


def _read_csv_slow(path: Path, delimiter: str, want: Wanted, limit: Optional[int] = None) -> Table:
    """The per-cell reader: slow, but it names the row and column of whatever is wrong."""
    from specnn.runtime.data.csv_table import cell_number, cell_text

    header, rows = read_rows(path, delimiter, limit)
    at = {name: header.index(name) for name in want.all}
    values: dict[str, Any] = {n: ([] if n in want.categorical else np.empty(len(rows), np.float32)) for n in want.names}
    labels: list[Optional[str]] = []
    for i, (number, row) in enumerate(rows):
        if len(row) != len(header):
            raise data_error(path, f"row {number}: has {len(row)} fields, the header has {len(header)}")
        for name in want.names:
            optional = name in want.allow_missing
            if name in want.categorical:
                values[name].append(cell_text(path, number, name, row[at[name]], optional))
            else:
                values[name][i] = cell_number(path, number, name, row[at[name]], optional)
        if want.target is not None:
            labels.append(cell_text(path, number, want.target, row[at[want.target]], True))
    for name in want.categorical & set(want.names):
        values[name] = np.array(values[name], dtype=object)
    target = _slow_target(labels) if want.target is not None else None
    numbers = [number for number, _ in rows]
    return Table(path, list(want.names), values, target, lambda i: numbers[i])


def _slow_target(labels: list[Optional[str]]) -> np.ndarray:
    """Text labels as the fast reader gives them: float64 when every present one is a number."""
    try:
        return np.array([np.nan if t is None else float(t) for t in labels], dtype=np.float64)
    except ValueError:
        return np.array(labels, dtype=object)


# ---------------------------------------------------------------------------------------------
# Parquet


def _parquet_schema(path: Path) -> list[str]:
    pa = require_pyarrow(str(path))
    import pyarrow.parquet as pq

    check_file(path)
    try:
        names = list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as e:
        raise data_error(path, f"cannot read the file as Parquet: {e}", code="file") from None
    problems = header_problems(names)
    if problems:
        raise data_error(path, problems, code="column")
    return names


def _read_parquet(path: Path, want: Wanted, limit: Optional[int] = None) -> Table:
    pa = require_pyarrow(str(path))
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        rows = parquet.metadata.num_rows if limit is None else min(limit, parquet.metadata.num_rows)
        filler = Filler(want, rows)
        for batch in parquet.iter_batches(batch_size=min(1 << 16, max(rows, 1)), columns=want.all):
            batch = batch.slice(0, rows - filler.rows)
            filler.add(pa, path, batch, lambda i: i + 1)
            if filler.rows >= rows:
                break
    except (pa.ArrowException, OSError) as e:
        raise data_error(path, f"cannot read the file as Parquet: {e}", code="file") from None
    return filler.table(path, lambda i: i + 1)


# ---------------------------------------------------------------------------------------------
# targets


def labels_from_column(values: np.ndarray) -> tuple[np.ndarray, Optional[list[str]]]:
    """Targets from a target column without missing values: whole numbers as int64, other numbers
    float32, text as indices into the sorted class names.

    >>> labels_from_column(np.array(["b", "a", "b"], dtype=object))
    (array([1, 0, 1]), ['a', 'b'])
    >>> labels_from_column(np.array([2.0, 0.0]))
    (array([2, 0]), None)
    """
    if values.dtype != object:
        if np.all(values == np.round(values)):
            return values.astype(np.int64), None
        return values.astype(np.float32), None
    classes, indices = np.unique(values.astype(str), return_inverse=True)
    return indices.astype(np.int64).reshape(-1), [str(c) for c in classes]
