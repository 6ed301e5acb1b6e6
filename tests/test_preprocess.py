"""Preprocessing: scaling fitted on the training split only, categorical encoding, preprocess.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from specnn.runtime.data.splits import split_indices
from specnn.runtime.data.preprocess import Encoding, Preprocessor, load_preprocessor
from specnn.runtime.data.sources import load_csv
from specnn.launch import train
from specnn.runtime.data.table import Table
from specnn.errors import DataError, RunError, SpecError
from specnn.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COLORS, SIZES = ["red", "green", "blue"], ["S", "M", "L", "XL"]

SHOP_SPEC = """\
specnn: 1
name: shop
seed: 3
model:
  input: [{width}]
  layers:
    - Linear: {{out_features: 8}}
    - ReLU:
    - Linear: {{out_features: 2}}
data:
  csv: {{path: shop.csv, target: bought}}
  preprocess:
    scale: {scale}
    categorical: {{color: onehot, size: index}}
  validation_split: 0.25
loss:
  CrossEntropyLoss:
optimizer:
  Adam: {{lr: 0.01}}
train: {{epochs: 2, batch_size: 8, device: cpu}}
"""


def write_shop(folder: Path, rows: int = 40, *, width: int = 6, scale: str = "standard") -> Path:
    """A small shop data set: two numbers, a one-hot color (3) and an index-encoded size: 6 features."""
    rng = np.random.default_rng(0)
    lines = ["price,weight,color,size,bought"]
    for i in range(rows):
        lines.append(f"{rng.uniform(1, 100):.2f},{rng.uniform(0, 5):.3f},{COLORS[i % 3]},{SIZES[i % 4]},"
                     f"{'yes' if i % 2 else 'no'}")
    (folder / "shop.csv").write_text("\n".join(lines) + "\n")
    spec = folder / "shop.yaml"
    spec.write_text(SHOP_SPEC.format(width=width, scale=scale))
    return spec


def iris_spec_with(folder: Path, scale: str, epochs: int = 2) -> Path:
    """The iris example with ``preprocess: {scale: ...}``, written to ``folder``."""
    text = (EXAMPLES / "iris.yaml").read_text()
    for old, new in [("  validation_split: 0.2", f"  preprocess: {{scale: {scale}}}\n  validation_split: 0.2"),
                     ("epochs: 60", f"epochs: {epochs}"), ("export: [state_dict, onnx]", ""),
                     ("path: data/iris.csv", f"path: {EXAMPLES / 'data' / 'iris.csv'}")]:
        assert old in text
        text = text.replace(old, new)
    spec_file = folder / "iris.yaml"
    spec_file.write_text(text)
    return spec_file


def train_iris(tmp_path: Path, scale: str) -> Path:
    return train(load_spec(iris_spec_with(tmp_path, scale)), tmp_path / "run", quiet=True).path


def iris_train_split() -> np.ndarray:
    """The iris training rows as the trainer splits them (seed 0, 20 % validation)."""
    arrays = load_csv(load_spec(EXAMPLES / "iris.yaml").data.args, EXAMPLES)
    train_at, _, _ = split_indices(len(arrays), 0.2, 0.0, seed=0)
    return arrays.features[train_at].astype(np.float64)


def test_standard_scaling_is_fitted_on_the_training_split_not_the_whole_file(tmp_path):
    run = train_iris(tmp_path, "standard")
    stored = json.loads((run / "preprocess.json").read_text())
    train_rows = iris_train_split()
    whole = load_csv(load_spec(EXAMPLES / "iris.yaml").data.args, EXAMPLES).features.astype(np.float64)
    assert stored["scale"]["method"] == "standard"
    np.testing.assert_allclose(stored["scale"]["mean"], train_rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stored["scale"]["std"], train_rows.std(axis=0), rtol=1e-12)
    assert not np.allclose(stored["scale"]["mean"], whole.mean(axis=0), rtol=1e-6)
    assert stored["columns"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert stored["features"] == stored["columns"] and stored["width"] == 4 and stored["target"] == "species"


def test_minmax_scaling_stores_the_training_split_minimum_and_maximum(tmp_path):
    run = train_iris(tmp_path, "minmax")
    stored = json.loads((run / "preprocess.json").read_text())["scale"]
    train_rows = iris_train_split()
    assert stored["min"] == train_rows.min(axis=0).tolist()
    assert stored["max"] == train_rows.max(axis=0).tolist()
    scaled = load_preprocessor(run).transform(train_rows.astype(np.float32))
    assert scaled.min() == 0.0 and scaled.max() == pytest.approx(1.0)


def test_a_run_without_preprocessing_stores_its_columns_and_no_scaling(tmp_path):
    run = train_iris(tmp_path, "none")
    preprocessor = load_preprocessor(run)
    assert preprocessor.scale == "none" and preprocessor.stats == {}
    features = np.arange(8, dtype=np.float32).reshape(2, 4)
    assert preprocessor.transform(features) is features


@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_a_constant_feature_is_shifted_never_divided_by_zero(scale):
    features = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]], np.float32)
    preprocessor = Preprocessor(scale=scale).fit(features)
    scaled = preprocessor.transform(features)
    assert np.isfinite(scaled).all()
    assert scaled[:, 1].tolist() == [0.0, 0.0, 0.0]
    expected = [-1.2247449, 0.0, 1.2247449] if scale == "standard" else [0.0, 0.5, 1.0]
    np.testing.assert_allclose(scaled[:, 0], expected, rtol=1e-6)


def test_one_hot_and_index_encoding_give_the_declared_width_and_are_stored(tmp_path):
    spec = write_shop(tmp_path)
    run = train(load_spec(spec), tmp_path / "run", quiet=True)
    stored = json.loads((run.path / "preprocess.json").read_text())
    assert stored["categorical"] == {
        "color": {"encoding": "onehot", "categories": ["blue", "green", "red"]},
        "size": {"encoding": "index", "categories": ["L", "M", "S", "XL"]},
    }
    assert stored["features"] == ["price", "weight", "color=blue", "color=green", "color=red", "size"]
    assert stored["width"] == 6
    # encoded categories pass through the scaling unchanged (mean 0, std 1)
    assert stored["scale"]["mean"][2:] == [0.0, 0.0, 0.0, 0.0]
    assert stored["scale"]["std"][2:] == [1.0, 1.0, 1.0, 1.0]
    assert run.classes == ["no", "yes"]


def test_encoding_rows_one_hot_and_index():
    color, size = Encoding("onehot", ["blue", "green", "red"]), Encoding("index", ["L", "M", "S"])
    table = Table(Path("f.csv"), [], {}, row_of=lambda i: i + 2)
    np.testing.assert_array_equal(color.encode(np.array(["red", "blue"], object), "color", table), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(size.encode(np.array(["S", "L", "M"], object), "size", table), [[2], [0], [1]])


def test_an_unseen_category_names_file_row_column_and_the_known_categories():
    with pytest.raises(DataError) as info:
        table = Table(Path("new.csv"), [], {}, row_of=lambda i: i + 2)
        Encoding("onehot", ["blue", "green", "red"]).encode(np.array(["red", "purple"], object), "color", table)
    assert str(info.value) == "new.csv: row 3, column 'color': unknown category 'purple' (known: blue, green, red)"


def test_one_hot_width_that_differs_from_the_model_input_is_located_with_the_width_to_write(tmp_path):
    spec = write_shop(tmp_path, width=4)
    with pytest.raises(DataError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    assert str(info.value) == (
        f"{spec}:5:3: model.input: one-hot encoding gives 6 features per sample ('color' into 3) "
        "but the model input is [4] (set 'input: [6]')"
    )
    assert not (tmp_path / "run").exists()


def test_a_categorical_column_that_is_not_a_feature_is_located_in_the_spec(tmp_path):
    spec = write_shop(tmp_path)
    spec.write_text(spec.read_text().replace("size: index", "sizes: index"))
    with pytest.raises(DataError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    assert str(info.value) == (
        f"{spec}:14:34: data.preprocess.categorical.sizes: 'sizes' is not a feature column of "
        f"{tmp_path / 'shop.csv'} (features: price, weight, color, size)"
    )


def test_categorical_columns_need_a_csv_source(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2), np.float32), y=np.array([0, 1, 0, 1]))
    spec = write_shop(tmp_path)
    spec.write_text(spec.read_text().replace("csv: {path: shop.csv, target: bought}", "npz: {path: d.npz}"))
    with pytest.raises(SpecError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    assert str(info.value) == f"{spec}:14:5: data.preprocess.categorical: categorical needs a table source (csv or parquet) with named columns, not npz"


def test_preprocess_json_round_trips_and_a_corrupt_one_names_the_file(tmp_path):
    original = Preprocessor(["a", "c"], "y", {"c": Encoding("onehot", ["p", "q"])}, "standard").fit(
        np.array([[1, 0, 1], [3, 1, 0]], np.float32))
    original.save(tmp_path)
    assert load_preprocessor(tmp_path) == original
    (tmp_path / "preprocess.json").write_text('{"format": 1, "columns": ')
    with pytest.raises(RunError) as info:
        load_preprocessor(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'preprocess.json'}: cannot read the run's preprocessing: ")
