"""Data sources: CSV, npz, synthetic and scikit-learn loaders, and their errors (file, row, column)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from specnn.catalog.sources import CsvArgs, NpzArgs, SklearnArgs, SyntheticArgs
from specnn.runtime.data.tensors import load_arrays
from specnn.runtime.data.sources import load_csv, load_npz, load_sklearn, make_synthetic
from specnn.errors import DataError, SpecError
from specnn.spec.loader import load_spec

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
    assert message == f"{tmp_path / 'data.csv'}: row 3, column 'y': 'abc' is not a number (if the column holds categories, list it under data.preprocess.categorical)"


def test_csv_missing_value_names_file_row_and_column(tmp_path):
    message = csv_error(tmp_path, "x,y,label\n1,2,a\n3,4,b\n,5,a\n")
    assert message == f"{tmp_path / 'data.csv'}: row 4, column 'x': missing value (set data.preprocess.missing to drop these rows or fill them)"


def test_csv_rows_without_a_target_are_dropped_and_counted(tmp_path):
    write(tmp_path, "x,label\n1,a\n2, \n3,NA\n4,b\n")
    arrays = load_csv(CsvArgs(path="data.csv", target="label"), tmp_path)
    assert arrays.features[:, 0].tolist() == [1, 4]
    assert arrays.classes == ["a", "b"]
    assert arrays.notes == [f"{tmp_path / 'data.csv'}: dropped 2 row(s) with no target value"]


def test_csv_row_numbers_count_blank_lines_like_a_spreadsheet(tmp_path):
    message = csv_error(tmp_path, "x,label\n1,a\n\n2,b\nnan?,a\n")
    assert message == f"{tmp_path / 'data.csv'}: row 5, column 'x': 'nan?' is not a number (if the column holds categories, list it under data.preprocess.categorical)"


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


# ---------------------------------------------------------------------------------------------
# several inputs, token ids, scikit-learn


def test_npz_maps_input_names_to_arrays_and_keeps_integer_features_int64(tmp_path):
    ids = np.arange(12, dtype=np.int32).reshape(4, 3)
    np.savez(tmp_path / "d.npz", tab=np.ones((4, 2)), ids=ids, y=np.arange(4))
    arrays = load_npz(NpzArgs(path="d.npz", x={"tabular": "tab", "tokens": "ids"}), tmp_path)
    assert list(arrays.features) == ["tabular", "tokens"]
    assert arrays.features["tabular"].dtype == np.float32
    assert arrays.features["tokens"].dtype == np.int64
    np.testing.assert_array_equal(arrays.features["tokens"], ids)


def test_npz_mapping_names_every_missing_array_once(tmp_path):
    np.savez(tmp_path / "d.npz", tab=np.ones((4, 2)), y=np.arange(4))
    with pytest.raises(DataError) as info:
        load_npz(NpzArgs(path="d.npz", x={"a": "tabs", "b": "ids", "c": "ids"}), tmp_path)
    assert str(info.value) == f"{tmp_path / 'd.npz'}: no array named 'tabs', 'ids' (arrays: tab, y) (did you mean 'tab'?)"


def test_npz_arrays_of_different_lengths(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.ones((4, 2)), b=np.ones((3, 2)), y=np.arange(4))
    with pytest.raises(DataError) as info:
        load_npz(NpzArgs(path="d.npz", x={"first": "a", "second": "b"}), tmp_path)
    assert str(info.value) == f"{tmp_path / 'd.npz'}: 'b' has 3 samples but 'y' has 4"


def test_synthetic_several_inputs_share_labels_and_token_inputs_are_int64_ids():
    args = SyntheticArgs(samples=300, classes=3, inputs={"tab": {"shape": [4]}, "ids": {"shape": [10], "vocab": 7}})
    data = make_synthetic(args, Path("."), 0)
    assert list(data.features) == ["tab", "ids"]
    assert data.features["tab"].shape == (300, 4) and data.features["tab"].dtype == np.float32
    ids = data.features["ids"]
    assert ids.shape == (300, 10) and ids.dtype == np.int64 and ids.min() >= 0 and ids.max() <= 6
    # learnable: the most frequent id differs between classes
    favourite = [np.bincount(ids[data.targets == c].ravel(), minlength=7).argmax() for c in range(3)]
    assert len(set(favourite)) > 1


def test_synthetic_token_regression_targets_depend_on_the_ids():
    args = SyntheticArgs(task="regression", samples=200, shape=[5], vocab=4, outputs=2, noise=0.0)
    data = make_synthetic(args, Path("."), 0)
    assert data.features.dtype == np.int64 and data.targets.shape == (200, 2)
    counts = np.stack([np.bincount(row, minlength=4) for row in data.features]).astype(np.float64)
    weights, *_ = np.linalg.lstsq(counts, data.targets, rcond=None)  # a linear map of the id counts
    np.testing.assert_allclose(counts @ weights, data.targets, atol=1e-4)


def test_synthetic_shape_and_inputs_together_is_a_spec_problem():
    with pytest.raises(ValidationError) as info:
        SyntheticArgs(shape=[3], inputs={"a": {"shape": [2]}})
    assert info.value.errors()[0]["msg"] == "give 'shape' for one input or 'inputs' for several, not both"


SKLEARN_SETS = [
    ("iris", (150, 4), ["setosa", "versicolor", "virginica"]),
    ("digits", (1797, 64), [str(d) for d in range(10)]),
    ("wine", (178, 13), ["class_0", "class_1", "class_2"]),
    ("breast_cancer", (569, 30), ["malignant", "benign"]),
]


@pytest.mark.parametrize("name, shape, classes", SKLEARN_SETS, ids=[s[0] for s in SKLEARN_SETS])
def test_sklearn_sets_keep_their_class_names(name, shape, classes):
    arrays = load_sklearn(SklearnArgs(name=name), Path("."))
    assert arrays.features.shape == shape and arrays.features.dtype == np.float32
    assert arrays.classes == classes
    assert arrays.targets.dtype == np.int64 and sorted(set(arrays.targets.tolist())) == list(range(len(classes)))


def test_sklearn_digits_as_images_are_the_same_pixels_channels_first():
    flat = load_sklearn(SklearnArgs(name="digits"), Path("."))
    images = load_sklearn(SklearnArgs(name="digits", as_images=True), Path("."))
    assert images.features.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(images.features.reshape(1797, 64), flat.features)
    np.testing.assert_array_equal(images.targets, flat.targets)


def test_sklearn_as_images_is_for_digits_only(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SPEC_WITH_DATA.replace("DATA", "sklearn: {name: wine, as_images: true}"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}:7:3: data.sklearn: as_images is for 'digits' only, not 'wine'"


def test_without_scikit_learn_the_spec_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` raise ImportError
    path = tmp_path / "s.yaml"
    path.write_text(SPEC_WITH_DATA.replace("DATA", "sklearn: {name: iris}"))
    with pytest.raises(SpecError) as info:
        load_arrays(load_spec(path))
    assert str(info.value) == (
        f"{path}:7:3: data.sklearn: the sklearn data source ('iris') needs scikit-learn, which is not installed "
        '(pip install "specnn[sklearn]")'
    )


SPEC_WITH_DATA = """\
specnn: 1
name: s
model:
  input: [4]
  layers: [{Linear: {out_features: 3}}]
data:
  DATA
loss: {CrossEntropyLoss: }
optimizer: {Adam: }
"""
