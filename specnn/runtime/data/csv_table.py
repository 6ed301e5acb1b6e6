"""Reading CSV tables: rows with spreadsheet row numbers, columns by name, checked cells.

What the csv source (``runtime/data/sources.py``) and the preprocessing (``runtime/data/preprocess.py``)
share. Every problem is a :class:`~specnn.errors.DataError` naming the file, the row
(1-based, header = row 1, as a spreadsheet shows it) and the column.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from specnn.errors import DataError, Problem
from specnn.errors.texts import suggest

__all__ = ["column_index", "data_error", "number", "present", "read_rows"]


def data_error(file: Path | str, message: str, *, code: str = "data", hint: str | None = None) -> DataError:
    """A DataError located in a data file (row and column, when known, are in the message)."""
    return DataError([Problem(code, message, file=str(file), hint=hint)])


def read_rows(path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank data rows, each with its spreadsheet row number."""
    if not path.is_file():
        raise data_error(path, "data file not found", code="file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            # Blank lines are skipped but still counted, so row numbers match a spreadsheet.
            table = [(n, row) for n, row in enumerate(csv.reader(f, delimiter=delimiter), start=1) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise data_error(path, f"cannot read the file as CSV: {e}", code="file") from None
    if not table:
        raise data_error(path, "the file is empty: expected a header row and data rows", code="empty")
    header = [name.strip() for name in table[0][1]]
    if len(table) == 1:
        raise data_error(path, "the file has a header row but no data rows", code="empty")
    return header, table[1:]


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
