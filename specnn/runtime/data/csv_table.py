"""Reading CSV tables: rows with spreadsheet row numbers, columns by name, checked cells.

What the csv source (``runtime/data/sources.py``) and the preprocessing (``runtime/data/preprocess.py``)
share. Every problem is a :class:`~specnn.errors.DataError` naming the file, the row
(1-based, header = row 1, as a spreadsheet shows it) and the column.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

from specnn.errors import DataError, Problem
from specnn.errors.texts import suggest

__all__ = ["check_file", "column_index", "data_error", "header_problems", "number", "present", "read_csv_header",
           "read_rows", "cell_number", "cell_text"]


def data_error(file: Path | str, message: str, *, code: str = "data", hint: str | None = None) -> DataError:
    """A DataError located in a data file (row and column, when known, are in the message)."""
    return DataError([Problem(code, message, file=str(file), hint=hint)])


def read_rows(path: Path, delimiter: str, limit: int | None = None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank data rows (the first ``limit``), each with its spreadsheet row number."""
    check_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            # Blank lines are skipped but still counted, so row numbers match a spreadsheet.
            rows = ((n, row) for n, row in enumerate(csv.reader(f, delimiter=delimiter), start=1) if row)
            table = list(itertools.islice(rows, None if limit is None else limit + 1))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise data_error(path, f"cannot read the file as CSV: {e}", code="file") from None
    if not table:
        raise data_error(path, "the file is empty: expected a header row and data rows", code="empty")
    header = _checked_header(path, table[0][1])
    if len(table) == 1:
        raise data_error(path, "the file has a header row but no data rows", code="empty")
    return header, table[1:]


def check_file(path: Path) -> None:
    """A DataError unless ``path`` is a regular file this process may look at (not found, no permission)."""
    try:
        path.stat()
    except FileNotFoundError:
        raise data_error(path, "data file not found", code="file") from None
    except OSError as e:
        raise data_error(path, f"cannot read the file: {e.strerror or e}", code="file") from None
    if not path.is_file():
        raise data_error(path, "not a regular file", code="file")


def read_csv_header(path: Path, delimiter: str = ",") -> list[str]:
    """The column names of a CSV file (its first non-blank row), stripped.

    Raises:
        DataError: missing, unreadable or empty file; a column name that appears twice.
    """
    check_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            first = next((row for row in csv.reader(f, delimiter=delimiter) if row), None)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise data_error(path, f"cannot read the file as CSV: {e}", code="file") from None
    if first is None:
        raise data_error(path, "the file is empty: expected a header row and data rows", code="empty")
    return _checked_header(path, first)


def header_problems(names: list[str]) -> str | None:
    """The first repeated column name, as a message naming both columns (1-based); None if all differ.

    >>> header_problems(["a", "b", "a"])
    "row 1: columns 1 and 3 are both named 'a' (a column read by name must be unique)"
    """
    seen: dict[str, int] = {}
    for at, name in enumerate(names, start=1):
        if name in seen:
            return (f"row 1: columns {seen[name]} and {at} are both named '{name}' "
                    "(a column read by name must be unique)")
        seen[name] = at
    return None


def _checked_header(path: Path, row: list[str]) -> list[str]:
    header = [name.strip() for name in row]
    problem = header_problems(header)
    if problem:
        raise data_error(path, problem, code="column", hint="rename one of them")
    return header


def column_index(path: Path, header: list[str], name: str) -> int:
    """Where column ``name`` is in ``header``; a DataError at row 1 (with a "did you mean") if absent."""
    if name not in header:
        raise data_error(
            path,
            f"row 1: no column '{name}' (columns: {', '.join(header)})",
            code="column",
            hint=suggest(name, header),
        )
    return header.index(name)


def present(path: Path, row: int, column: str, text: str) -> str:
    """A cell's text without surrounding spaces; a DataError naming row and column when it is empty."""
    text = text.strip()
    if not text:
        raise data_error(path, f"row {row}, column '{column}': missing value")
    return text


def number(path: Path, row: int, column: str, text: str) -> float:
    """A cell as a finite float; a DataError naming row and column when it is missing or not a number."""
    text = present(path, row, column, text)
    try:
        value = float(text)
    except ValueError:
        raise data_error(path, f"row {row}, column '{column}': '{text}' is not a number") from None
    if not math.isfinite(value):
        raise data_error(path, f"row {row}, column '{column}': '{text}' is not a finite number")
    return value


def cell_text(path: Path, row: int, column: str, text: str, optional: bool = False) -> str | None:
    """A text cell stripped; a missing one is None when ``optional``, else a located DataError."""
    text = text.strip()
    if text in _MISSING_TEXT:
        if optional:
            return None
        raise data_error(path, f"row {row}, column '{column}': missing value", code="missing", hint=MISSING_HINT)
    return text


def cell_number(path: Path, row: int, column: str, text: str, optional: bool = False) -> float:
    """A numeric cell; a missing one is NaN when ``optional``, else a located DataError."""
    text = text.strip()
    if text in _MISSING_TEXT:
        if optional:
            return math.nan
        raise data_error(path, f"row {row}, column '{column}': missing value", code="missing", hint=MISSING_HINT)
    try:
        value = float(text)
    except ValueError:
        raise data_error(path, f"row {row}, column '{column}': '{text}' is not a number",
                         hint=CATEGORICAL_HINT) from None
    if not math.isfinite(value):
        raise data_error(path, f"row {row}, column '{column}': '{text}' is not a finite number")
    return value


# What counts as a missing cell (pandas' usual spellings), shared with table.py's fast reader.
MISSING = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "#N/A")
_MISSING_TEXT = frozenset(MISSING)
MISSING_HINT = "set data.preprocess.missing to drop these rows or fill them"
CATEGORICAL_HINT = "if the column holds categories, list it under data.preprocess.categorical"
