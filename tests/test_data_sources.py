"""Data sources: CSV, npz and synthetic loaders, and their errors (file, row, column)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specnn.catalog.sources import CsvArgs, NpzArgs, SyntheticArgs
from specnn.runtime.sources import load_csv, load_npz, make_synthetic
from specnn.spec.errors import DataError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def csv_error(tmp_path: Path, text: str, **args) -> str:
    write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_csv(CsvArgs(path="data.csv", **{"target": "label", **args}), tmp_path)
    assert len(info.value.problems) == 1
    return str(info.value)


def test_iris_csv_encodes_string_labels_in_sorted_order():
    arrays = load_csv(CsvArgs(path="data/iris.csv", target="species"), EXAMPLES)
    assert arrays.features.shape == (150, 4)
    assert arrays.features.dtype == np.float32
    assert arrays.classes == ["setosa", "versicolor", "virginica"]
    assert arrays.targets.dtype == np.int64
    assert np.bincount(arrays.targets).tolist() == [50, 50, 50]
    np.testing.assert_array_equal(arrays.features[0], np.array([5.1, 3.5, 1.4, 0.2], np.float32))


def test_csv_selects_feature_columns_by_name_and_keeps_numeric_labels(tmp_path):
    write(tmp_path, "a,b,label,c\n1,2,3,4\n5,6,0,8\n")
    arrays = load_csv(CsvArgs(path="data.csv", target="label", features=["c", "a"]), tmp_path)
    np.testing.assert_array_equal(arrays.features, np.array([[4, 1], [8, 5]], np.float32))
    assert arrays.targets.tolist() == [3, 0]
    assert arrays.targets.dtype == np.int64
    assert arrays.classes is None


def test_csv_fractional_targets_are_float32(tmp_path):
    write(tmp_path, "x;label\n1;0.5\n2;1.5\n")
    arrays = load_csv(CsvArgs(path="data.csv", target="label", delimiter=";"), tmp_path)
    assert arrays.targets.dtype == np.float32
    assert arrays.targets.tolist() == [0.5, 1.5]


def test_csv_non_numeric_feature_names_file_row_and_column(tmp_path):
    message = csv_error(tmp_path, "x,y,label\n1,2,a\n3,abc,b\n")
    assert message == f"{tmp_path / 'data.csv'}: row 3, column 'y': 'abc' is not a number"


def test_csv_missing_value_names_file_row_and_column(tmp_path):
    message = csv_error(tmp_path, "x,y,label\n1,2,a\n3,4,b\n,5,a\n")
    assert message == f"{tmp_path / 'data.csv'}: row 4, column 'x': missing value"


def test_csv_missing_target_value_is_reported(tmp_path):
    message = csv_error(tmp_path, "x,label\n1,a\n2, \n")
    assert message == f"{tmp_path / 'data.csv'}: row 3, column 'label': missing value"


def test_csv_row_numbers_count_blank_lines_like_a_spreadsheet(tmp_path):
    message = csv_error(tmp_path, "x,label\n1,a\n\n2,b\nnan?,a\n")
    assert message == f"{tmp_path / 'data.csv'}: row 5, column 'x': 'nan?' is not a number"


def test_csv_short_row_is_reported(tmp_path):
    message = csv_error(tmp_path, "x,y,label\n1,2,a\n3,4\n")
    assert message == f"{tmp_path / 'data.csv'}: row 3: has 2 fields, the header has 3"


def test_csv_missing_target_column_lists_columns_and_suggests(tmp_path):
    message = csv_error(tmp_path, "x,y,labels\n1,2,a\n")
    assert message == (
        f"{tmp_path / 'data.csv'}: row 1: no column 'label' (columns: x, y, labels) (did you mean 'labels'?)"
    )


def test_csv_missing_feature_column(tmp_path):
    message = csv_error(tmp_path, "x,y,label\n1,2,a\n", features=["x", "z"])
    assert message == f"{tmp_path / 'data.csv'}: row 1: no column 'z' (columns: x, y, label)"


def test_csv_empty_file(tmp_path):
    message = csv_error(tmp_path, "")
    assert message == f"{tmp_path / 'data.csv'}: the file is empty: expected a header row and data rows"


def test_csv_header_only(tmp_path):
    message = csv_error(tmp_path, "x,label\n")
    assert message == f"{tmp_path / 'data.csv'}: the file has a header row but no data rows"


def test_csv_missing_file(tmp_path):
    with pytest.raises(DataError) as info:
        load_csv(CsvArgs(path="nope.csv", target="label"), tmp_path)
    assert str(info.value) == f"{tmp_path / 'nope.csv'}: data file not found"


def test_npz_named_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", inputs=np.ones((5, 3), np.float64), labels=np.array(["b", "a", "b", "a", "a"]))
    arrays = load_npz(NpzArgs(path="d.npz", x="inputs", y="labels"), tmp_path)
    assert arrays.features.dtype == np.float32 and arrays.features.shape == (5, 3)
    assert arrays.targets.tolist() == [1, 0, 1, 0, 0]
    assert arrays.classes == ["a", "b"]


def test_npz_missing_array_lists_the_available_names(tmp_path):
    np.savez(tmp_path / "d.npz", inputs=np.ones((5, 3)), y=np.zeros(5))
    with pytest.raises(DataError) as info:
        load_npz(NpzArgs(path="d.npz"), tmp_path)
    assert str(info.value) == f"{tmp_path / 'd.npz'}: no array named 'x' (arrays: inputs, y)"


def test_npz_not_a_zip_file(tmp_path):
    (tmp_path / "d.npz").write_text("hello")
    with pytest.raises(DataError) as info:
        load_npz(NpzArgs(path="d.npz"), tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'd.npz'}: cannot read the file as .npz")


def test_synthetic_classification_is_seeded_and_shaped():
    args = SyntheticArgs(task="classification", samples=50, shape=[3, 2], classes=4)
    a, b, c = make_synthetic(args, Path("."), 1), make_synthetic(args, Path("."), 1), make_synthetic(args, Path("."), 2)
    assert a.features.shape == (50, 3, 2) and a.features.dtype == np.float32
    assert a.targets.dtype == np.int64 and set(a.targets.tolist()) <= {0, 1, 2, 3}
    assert a.classes == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(a.features, c.features)


def test_synthetic_regression_is_linear_plus_noise():
    args = SyntheticArgs(task="regression", samples=400, shape=[5], outputs=2, noise=0.0, seed=3)
    data = make_synthetic(args, Path("."), 99)
    assert data.targets.shape == (400, 2) and data.classes is None
    weights, *_ = np.linalg.lstsq(data.features, data.targets, rcond=None)
    np.testing.assert_allclose(data.features @ weights, data.targets, atol=1e-4)
