"""Prediction: the run's preprocessing reapplied, label names, probabilities, NPZ input, errors, CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from specnn.cli import cli
from specnn.runtime.runs.predict import predict
from specnn.runtime.runs.run import load_run
from specnn.launch import train
from specnn.errors import DataError
from specnn.spec.loader import load_spec
from test_preprocess import iris_spec_with, write_shop

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IRIS_CSV = EXAMPLES / "data" / "iris.csv"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> Path:
    """Iris trained with standard scaling, shared by this module's tests (read only)."""
    folder = tmp_path_factory.mktemp("iris")
    return train(load_spec(iris_spec_with(folder, "standard", epochs=15)), folder / "run", quiet=True).path


def iris_rows() -> tuple[np.ndarray, list[str]]:
    table = list(csv.DictReader(IRIS_CSV.open()))
    return np.array([[float(r[c]) for c in COLUMNS] for r in table], np.float32), [r["species"] for r in table]


def expected_outputs(run_dir: Path, features: np.ndarray) -> torch.Tensor:
    """The model's outputs on rows scaled by hand with the stored statistics."""
    scale = json.loads((run_dir / "preprocess.json").read_text())["scale"]
    scaled = (features - np.array(scale["mean"])) / np.array(scale["std"])
    with torch.inference_mode():
        return load_run(run_dir).model(torch.tensor(scaled, dtype=torch.float32))


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predictions_are_the_models_argmax_on_the_scaled_rows_with_label_names(iris_run):
    features, _ = iris_rows()
    predictions = predict(iris_run, IRIS_CSV)
    expected = expected_outputs(iris_run, features)
    assert predictions.labels == [CLASSES[i] for i in expected.argmax(dim=1).tolist()]
    np.testing.assert_allclose(predictions.outputs, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert predictions.classes == CLASSES and predictions.task == "classification"


def test_csv_output_has_label_names_and_probabilities_that_sum_to_one(iris_run):
    _, species = iris_rows()
    rows = parse(predict(iris_run, IRIS_CSV).to_csv(probabilities=True))
    assert list(rows[0]) == ["prediction", "p_setosa", "p_versicolor", "p_virginica"]
    assert len(rows) == 150
    assert {r["prediction"] for r in rows} <= set(CLASSES)
    for row in rows:
        assert sum(float(row[f"p_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-6)
        assert row["prediction"] == max(CLASSES, key=lambda c: float(row[f"p_{c}"]))
    assert sum(r["prediction"] == s for r, s in zip(rows, species)) >= 120  # it learned something


def test_the_target_column_may_be_absent_and_columns_are_matched_by_name(iris_run, tmp_path):
    features, _ = iris_rows()
    reordered = ["petal_width", "sepal_length", "petal_length", "sepal_width"]
    lines = [",".join(reordered)] + [",".join(str(row[COLUMNS.index(c)]) for c in reordered) for row in features]
    (tmp_path / "new.csv").write_text("\n".join(lines) + "\n")
    assert predict(iris_run, tmp_path / "new.csv").labels == predict(iris_run, IRIS_CSV).labels


def test_npz_input_by_column_arrays_or_one_features_array(iris_run, tmp_path):
    features, _ = iris_rows()
    np.savez(tmp_path / "columns.npz", **{c: features[:, i] for i, c in enumerate(COLUMNS)})
    np.savez(tmp_path / "matrix.npz", x=features)
    expected = predict(iris_run, IRIS_CSV)
    for name in ("columns.npz", "matrix.npz"):
        got = predict(iris_run, tmp_path / name)
        assert got.labels == expected.labels
        np.testing.assert_array_equal(got.outputs, expected.outputs)


def test_npz_input_without_the_arrays_names_what_is_missing(iris_run, tmp_path):
    np.savez(tmp_path / "bad.npz", features=np.zeros((2, 4)))
    with pytest.raises(DataError) as info:
        predict(iris_run, tmp_path / "bad.npz")
    assert str(info.value) == (f"{tmp_path / 'bad.npz'}: no array named 'sepal_length', 'sepal_width', "
                               "'petal_length', 'petal_width' (arrays: features)")


def test_npz_features_array_is_picked_by_name_in_the_api_and_the_cli(iris_run, tmp_path, cli_runner):
    features, _ = iris_rows()
    np.savez(tmp_path / "held_out.npz", ids=np.arange(len(features)), features=features)
    expected = predict(iris_run, IRIS_CSV)
    for got in (predict(iris_run, tmp_path / "held_out.npz", array="features"),
                predict(iris_run, f"{tmp_path / 'held_out.npz'}:features")):
        assert got.labels == expected.labels
    for arguments in (["--array", "features"], []):
        target = str(tmp_path / "held_out.npz") + ("" if arguments else ":features")
        result = cli_runner.invoke(cli, ["predict", str(iris_run), target, *arguments])
        assert result.exit_code == 0, result.output
        assert result.output == expected.to_csv()
    result = cli_runner.invoke(cli, ["predict", str(iris_run), str(tmp_path / "held_out.npz"), "--array", "featurs"])
    assert result.exit_code == 2
    assert result.output.strip() == (f"{tmp_path / 'held_out.npz'}: no array named 'featurs' (arrays: ids, features) "
                                     "(did you mean 'features'?)")


def test_npz_non_finite_value_names_the_array_and_index(iris_run, tmp_path):
    features, _ = iris_rows()
    features[7, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=features)
    with pytest.raises(DataError) as info:
        predict(iris_run, tmp_path / "nan.npz")
    assert str(info.value) == f"{tmp_path / 'nan.npz'}: x[7, 2]: nan is not a finite number"


def test_a_missing_column_names_the_file_and_the_columns_it_has(iris_run, tmp_path):
    (tmp_path / "new.csv").write_text("sepal_length,sepal_width,petal_length\n5.1,3.5,1.4\n")
    with pytest.raises(DataError) as info:
        predict(iris_run, tmp_path / "new.csv")
    assert str(info.value) == (f"{tmp_path / 'new.csv'}: row 1: no column 'petal_width' "
                               "(columns: sepal_length, sepal_width, petal_length) (did you mean 'sepal_width'?)")


def test_a_non_numeric_value_names_file_row_and_column(iris_run, tmp_path):
    (tmp_path / "new.csv").write_text(",".join(COLUMNS) + "\n5.1,3.5,1.4,0.2\n4.9,abc,1.4,0.2\n")
    with pytest.raises(DataError) as info:
        predict(iris_run, tmp_path / "new.csv")
    assert str(info.value) == f"{tmp_path / 'new.csv'}: row 3, column 'sepal_width': 'abc' is not a number (if the column holds categories, list it under data.preprocess.categorical)"


def test_categorical_rows_are_encoded_with_the_training_vocabulary(tmp_path):
    run = train(load_spec(write_shop(tmp_path)), tmp_path / "run", quiet=True)
    (tmp_path / "new.csv").write_text("size,color,weight,price\nM,green,1.5,20\nXL,purple,2.0,30\n")
    with pytest.raises(DataError) as info:
        predict(run.path, tmp_path / "new.csv")
    assert str(info.value) == (f"{tmp_path / 'new.csv'}: row 3, column 'color': unknown category 'purple' "
                               "(known: blue, green, red)")
    (tmp_path / "new.csv").write_text("size,color,weight,price\nM,green,1.5,20\nXL,red,2.0,30\n")
    predictions = predict(run.path, tmp_path / "new.csv")
    stats = json.loads((run.path / "preprocess.json").read_text())["scale"]
    raw = np.array([[20, 1.5, 0, 1, 0, 1], [30, 2.0, 0, 0, 1, 3]])  # color=blue,green,red; size L,M,S,XL
    scaled = torch.tensor((raw - np.array(stats["mean"])) / np.array(stats["std"]), dtype=torch.float32)
    with torch.inference_mode():
        expected = run.model(scaled)
    np.testing.assert_allclose(predictions.outputs, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert predictions.labels == [["no", "yes"][i] for i in expected.argmax(dim=1).tolist()]


def test_regression_predictions_are_the_model_outputs(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    lines = ["a,b,c,price"] + [f"{r[0]},{r[1]},{r[2]},{r.sum():.4f}" for r in x]
    (tmp_path / "prices.csv").write_text("\n".join(lines) + "\n")
    spec = write_shop(tmp_path, width=3)
    text = spec.read_text().replace("csv: {path: shop.csv, target: bought}", "csv: {path: prices.csv, target: price}")
    text = text.replace("    categorical: {color: onehot, size: index}\n", "").replace("out_features: 2", "out_features: 1")
    spec.write_text(text.replace("CrossEntropyLoss:", "MSELoss:"))
    run = train(load_spec(spec), tmp_path / "run", quiet=True)
    predictions = predict(run.path, tmp_path / "prices.csv")
    stats = json.loads((run.path / "preprocess.json").read_text())["scale"]
    with torch.inference_mode():
        expected = run.model(torch.tensor((x - np.array(stats["mean"])) / np.array(stats["std"]), dtype=torch.float32))
    assert predictions.labels is None and predictions.header() == ["prediction"]
    rows = parse(predictions.to_csv())
    np.testing.assert_allclose([float(r["prediction"]) for r in rows], expected[:, 0].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="a regression run has no class probabilities"):
        predictions.to_csv(probabilities=True)


# ---------------------------------------------------------------------------------------------
# command line


def test_cli_predict_prints_csv_to_stdout(cli_runner, iris_run):
    result = cli_runner.invoke(cli, ["predict", str(iris_run), str(IRIS_CSV), "--probabilities"])
    assert result.exit_code == 0, result.output
    assert result.output == predict(iris_run, IRIS_CSV).to_csv(probabilities=True)


def test_cli_predict_writes_the_output_file(cli_runner, iris_run, tmp_path):
    out = tmp_path / "out.csv"
    result = cli_runner.invoke(cli, ["predict", str(iris_run), str(IRIS_CSV), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == predict(iris_run, IRIS_CSV).to_csv()
    assert f"wrote 150 predictions to {out}" in result.output


def test_cli_bad_input_exits_2_and_leaves_the_output_file_as_it_was(cli_runner, iris_run, tmp_path):
    (tmp_path / "bad.csv").write_text(",".join(COLUMNS) + "\n5.1,,1.4,0.2\n")
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    result = cli_runner.invoke(cli, ["predict", str(iris_run), str(tmp_path / "bad.csv"), "-o", str(out)])
    assert result.exit_code == 2
    assert result.output.strip() == f"{tmp_path / 'bad.csv'}: row 2, column 'sepal_width': missing value (set data.preprocess.missing to drop these rows or fill them)"
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.csv"]


def test_cli_predict_on_a_folder_that_is_not_a_run_exits_2(cli_runner, tmp_path):
    result = cli_runner.invoke(cli, ["predict", str(tmp_path), str(IRIS_CSV)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'spec.yaml'}: missing run file" in result.output


# ---------------------------------------------------------------------------------------------
# a model with several inputs (examples/two_input_graph.yaml with an npz source)


@pytest.fixture(scope="module")
def two_input_run(tmp_path_factory) -> Path:
    """The two-input example (tabular [5] + sequence [12, 3]) trained briefly on npz arrays tab/seq."""
    folder = tmp_path_factory.mktemp("two")
    rng = np.random.default_rng(0)
    np.savez(folder / "train.npz", tab=rng.standard_normal((80, 5)), seq=rng.standard_normal((80, 12, 3)),
             y=rng.integers(0, 3, 80))
    text = (EXAMPLES / "two_input_graph.yaml").read_text()
    data = text[text.index("  synthetic:"):text.index("  validation_split")]
    text = text.replace(data, "  npz: {path: train.npz, x: {tabular: tab, sequence: seq}}\n")
    text = text.replace("epochs: 6", "epochs: 1").replace("export: [onnx]", "export: []")
    (folder / "two.yaml").write_text(text)
    return train(load_spec(folder / "two.yaml"), folder / "run", quiet=True).path


def test_a_two_input_run_predicts_from_one_array_per_input(two_input_run, tmp_path):
    rng = np.random.default_rng(1)
    tab, seq = rng.standard_normal((7, 5)), rng.standard_normal((7, 36))  # a flat sequence is reshaped
    np.savez(tmp_path / "new.npz", seq=seq, tab=tab)
    predictions = predict(two_input_run, tmp_path / "new.npz", batch_size=3)
    with torch.inference_mode():
        expected = load_run(two_input_run).model(torch.tensor(tab, dtype=torch.float32),
                                                 torch.tensor(seq.reshape(7, 12, 3), dtype=torch.float32))
    np.testing.assert_allclose(predictions.outputs, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert predictions.labels == [str(i) for i in expected.argmax(dim=1).tolist()]


def test_a_two_input_run_from_a_synthetic_source_reads_arrays_by_input_name(tmp_path):
    text = (EXAMPLES / "two_input_graph.yaml").read_text().replace("samples: 1500", "samples: 60")
    (tmp_path / "two.yaml").write_text(text.replace("epochs: 6", "epochs: 1").replace("export: [onnx]", "export: []"))
    run = train(load_spec(tmp_path / "two.yaml"), tmp_path / "run", quiet=True)
    tab, seq = np.ones((2, 5), np.float32), np.zeros((2, 12, 3), np.float32)
    np.savez(tmp_path / "new.npz", tabular=tab, sequence=seq)
    with torch.inference_mode():
        expected = run.model(torch.from_numpy(tab), torch.from_numpy(seq))
    np.testing.assert_allclose(predict(run.path, tmp_path / "new.npz").outputs, expected.numpy(), rtol=1e-6)


def test_a_csv_for_a_two_input_run_is_a_clear_error(two_input_run, tmp_path):
    (tmp_path / "new.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError) as caught:
        predict(two_input_run, tmp_path / "new.csv")
    assert str(caught.value) == (f"{tmp_path / 'new.csv'}: a CSV table feeds one model input; this model has 2 "
                                 "(tabular, sequence) (give an .npz file with one array per input: "
                                 "'tab' [5], 'seq' [12, 3])")


def test_a_missing_or_misshaped_input_array_is_named(two_input_run, tmp_path):
    np.savez(tmp_path / "missing.npz", tab=np.zeros((2, 5)))
    with pytest.raises(DataError) as caught:
        predict(two_input_run, tmp_path / "missing.npz")
    assert str(caught.value) == (f"{tmp_path / 'missing.npz'}: no array named 'seq' (arrays: tab) "
                                 "(one array per model input: 'tab' [5], 'seq' [12, 3])")
    np.savez(tmp_path / "shape.npz", tab=np.zeros((2, 5)), seq=np.zeros((2, 12, 2)))
    with pytest.raises(DataError) as caught:
        predict(two_input_run, tmp_path / "shape.npz")
    assert str(caught.value) == (f"{tmp_path / 'shape.npz'}: array 'seq' has samples of shape [12, 2], "
                                 "the model input takes [12, 3]")
    np.savez(tmp_path / "lengths.npz", tab=np.zeros((2, 5)), seq=np.zeros((3, 12, 3)))
    with pytest.raises(DataError) as caught:
        predict(two_input_run, tmp_path / "lengths.npz")
    assert str(caught.value) == f"{tmp_path / 'lengths.npz'}: the input arrays differ in length: 'tab' has 2, 'seq' has 3"


def test_cli_predict_with_a_two_input_run(cli_runner, two_input_run, tmp_path):
    np.savez(tmp_path / "new.npz", tab=np.zeros((3, 5)), seq=np.zeros((3, 12, 3)))
    result = cli_runner.invoke(cli, ["predict", str(two_input_run), str(tmp_path / "new.npz"), "--probabilities"])
    assert result.exit_code == 0, result.output
    assert result.output == predict(two_input_run, tmp_path / "new.npz").to_csv(probabilities=True)
    assert result.output.splitlines()[0] == "prediction,p_0,p_1,p_2"
