"""A table file read one unit at a time: a byte range of a CSV, or a Parquet row group.

Streamed tables (``table_stream.py``) never hold the file: each pass and each DataLoader worker
reads one unit, converts its columns exactly as the in-memory reader does (``table.py``: float32
numbers, stripped text, ``MISSING`` cells as NaN/None), and lets it go. A CSV is cut into units
of about ``UNIT_BYTES`` at line breaks, so any unit can be parsed on its own; a cell quoted across
a line break cannot be cut that way, and is refused with its row (hold such a file in memory, or
write it as Parquet). A bad cell is located by re-reading only its unit with the per-cell reader:
the file, the spreadsheet row and the column, as the in-memory path names them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from specnn.runtime.data.csv_table import (
    MISSING,
    cell_number,
    cell_text,
    check_file,
    data_error,
)
from specnn.runtime.data.table import Filler, Table, Wanted, is_parquet, require_pyarrow

__all__ = ["UNIT_BYTES", "Unit", "TableFile"]

UNIT_BYTES = 1 << 22  # 4 MiB of CSV text: ~50k rows of 20 numbers, parsed in ~0.05 s


@dataclass(frozen=True)
class Unit:
    """One readable piece of a table file.

    Attributes:
        index: its position in the file.
        first_row: CSV: the spreadsheet row of its first line (header = row 1); Parquet: the
            1-based number of its first row.
        offset, length: CSV: the bytes it spans.
        group: Parquet: the row group.
    """

    index: int
    first_row: int
    offset: int = 0
    length: int = 0
    group: int = 0


class TableFile:
    """A CSV or Parquet file as :class:`Unit` s, each read into a :class:`~specnn.runtime.data.table.Table`."""

    def __init__(self, path: Path, header: list[str], delimiter: str = ",", unit_bytes: Optional[int] = None) -> None:
        self.path, self.header, self.delimiter = Path(path), list(header), delimiter
        self.parquet = is_parquet(self.path)
        check_file(self.path)
        self.units = list(self._parquet_units() if self.parquet else self._csv_units(unit_bytes or UNIT_BYTES))

    def _parquet_units(self) -> Iterator[Unit]:
        pa = require_pyarrow(str(self.path))
        import pyarrow.parquet as pq

        try:
            metadata = pq.ParquetFile(self.path).metadata
        except (pa.ArrowException, OSError) as e:
            raise data_error(self.path, f"cannot read the file as Parquet: {e}", code="file") from None
        first = 1
        for group in range(metadata.num_row_groups):
            yield Unit(group, first, group=group)
            first += metadata.row_group(group).num_rows

    def _csv_units(self, unit_bytes: int) -> Iterator[Unit]:
        with self.path.open("rb") as f:
            offset, row = _after_header(f)
            index = 0
            while True:
                f.seek(offset)
                block = f.read(unit_bytes)
                if not block:
                    return
                if len(block) == unit_bytes:  # cut after the last whole line (a longer line: to its end)
                    cut = block.rfind(b"\n") + 1
                    block = block[:cut] if cut else block + f.readline()
                yield Unit(index, row, offset, len(block))
                index, offset, row = index + 1, offset + len(block), row + block.count(b"\n")

    def read(self, unit: Unit, want: Wanted, threads: bool = True) -> Table:
        """The unit's wanted columns, checked as the in-memory reader checks them.

        Raises:
            DataError: a bad or missing cell, a short row (file, row and column named).
        """
        pa = require_pyarrow(str(self.path))
        row_of = self._row_numbers(unit)
        try:
            batches = self._parquet_batches(unit, want) if self.parquet else self._csv_batches(pa, unit, want, threads)
            filler = Filler(want, sum(b.num_rows for b in batches))
            for batch in batches:
                filler.add(pa, self.path, batch, row_of)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            if self.parquet:
                raise data_error(self.path, f"cannot read the file as Parquet: {e}", code="file") from None
            raise self._locate(unit, want, e) from None
        return filler.table(self.path, row_of)

    def _parquet_batches(self, unit: Unit, want: Wanted) -> list:
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(self.path).iter_batches(batch_size=1 << 16, row_groups=[unit.group],
                                                            columns=want.all, use_threads=False))

    def _csv_batches(self, pa: Any, unit: Unit, want: Wanted, threads: bool) -> list:
        import pyarrow.csv as pacsv

        types = {n: pa.float32() for n in want.names if n not in want.categorical}
        types.update({n: pa.string() for n in want.categorical})
        if want.target is not None and want.target not in want.names:
            types[want.target] = pa.string()  # a unit's own guess could differ from another's
        table = pacsv.read_csv(
            pa.py_buffer(self._bytes(unit)),
            read_options=pacsv.ReadOptions(column_names=self.header, use_threads=threads),
            parse_options=pacsv.ParseOptions(delimiter=self.delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=want.all, column_types=types, null_values=list(MISSING),
                strings_can_be_null=True, quoted_strings_can_be_null=True))
        return table.to_batches()

    def _bytes(self, unit: Unit) -> bytes:
        with self.path.open("rb") as f:
            f.seek(unit.offset)
            return f.read(unit.length)

    def _rows(self, unit: Unit) -> Iterator[tuple[int, list[str]]]:
        """The unit's non-blank rows with their spreadsheet row numbers (the per-cell reader's view)."""
        text = self._bytes(unit).decode("utf-8", errors="replace")
        try:
            for number, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter),
                                         start=unit.first_row):
                if row:
                    yield number, row
        except csv.Error as e:
            raise data_error(self.path, f"rows {unit.first_row}-: cannot read as CSV: {e}") from None

    def _row_numbers(self, unit: Unit) -> Callable[[int], int]:
        """Data row ``i`` of the unit -> the number a user finds it at (computed on first use)."""
        if self.parquet:
            return lambda i: unit.first_row + i
        found: list[int] = []

        def row_of(i: int) -> int:
            if not found:
                found.extend(number for number, _ in self._rows(unit))
            return found[i]
        return row_of

    def _locate(self, unit: Unit, want: Wanted, error: Exception) -> Exception:
        """What pyarrow refused in a CSV unit, named by the per-cell reader (row and column)."""
        at = {name: self.header.index(name) for name in want.all}
        for number, row in self._rows(unit):
            if len(row) != len(self.header):
                return data_error(self.path, f"row {number}: has {len(row)} fields, the header has {len(self.header)}")
            for name in want.names:
                optional = name in want.allow_missing
                check: Any = cell_text if name in want.categorical else cell_number
                check(self.path, number, name, row[at[name]], optional)
        last = unit.first_row + self._bytes(unit).count(b"\n")
        return data_error(self.path, f"rows {unit.first_row}-{last}: cannot read as CSV ({error}); a cell quoted "
                                     "across a line break cannot be streamed", code="file",
                          hint="hold the table in memory (data.loader.in_memory: true) or write it as Parquet")


def _after_header(f: Any) -> tuple[int, int]:
    """The byte offset and spreadsheet row of the first line after the header (blank lines counted)."""
    row = 0
    while True:
        line = f.readline()
        row += 1
        if not line or line.strip(b"\r\n"):
            return f.tell(), row + 1

