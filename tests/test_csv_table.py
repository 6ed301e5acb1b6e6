"""runtime/csv_table: the CSV reading the csv source and the preprocessing share, by its public names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from specnn.runtime.data import csv_table, sources
from specnn.runtime.data.csv_table import column_index, number, present, read_rows
from specnn.errors import DataError

PACKAGE = Path(__file__).resolve().parent.parent / "specnn"


def test_rows_keep_their_spreadsheet_numbers_across_blank_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("\ufeffa; b\n1;2\n\n3;4\n")
    assert read_rows(path, ";") == (["a", "b"], [(2, ["1", "2"]), (4, ["3", "4"])])


def test_cells_are_checked_and_located(tmp_path):
    path = tmp_path / "t.csv"
    assert column_index(path, ["width", "height"], "height") == 1
    assert present(path, 3, "width", "  x ") == "x"
    assert number(path, 3, "width", " 2.5") == 2.5
    for call, message in [
        (lambda: column_index(path, ["width", "height"], "heigth"),
         "row 1: no column 'heigth' (columns: width, height) (did you mean 'height'?)"),
        (lambda: present(path, 3, "width", " "), "row 3, column 'width': missing value"),
        (lambda: number(path, 3, "width", "ten"), "row 3, column 'width': 'ten' is not a number"),
        (lambda: number(path, 3, "width", "inf"), "row 3, column 'width': 'inf' is not a finite number"),
        (lambda: read_rows(tmp_path / "none.csv", ","), "data file not found"),
    ]:
        with pytest.raises(DataError) as caught:
            call()
        assert [p.format() for p in caught.value.problems] == [f"{caught.value.problems[0].file}: {message}"]


def test_the_sources_and_predict_read_tables_through_one_reader():
    from specnn.runtime.data import table
    from specnn.runtime.runs import evaluate, predict

    assert sources.read_table is predict.read_table is evaluate.read_table is table.read_table
    assert table.read_rows is csv_table.read_rows


def test_no_module_imports_another_modules_private_names():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("specnn"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.relative_to(PACKAGE)} imports {private} from {node.module}"
