"""Evaluation: the validation split equals training's last epoch, held-out files by hand, errors, CLI."""

from __future__ import annotations

import csv
import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import specnn.runtime.runs.evaluate as evaluate_module
from specnn.cli import cli
from specnn.runtime.runs.evaluate import evaluate, format_evaluation
from specnn.runtime.runs.run import load_run
from specnn.launch import train
from specnn.errors import DataError, RunError
from specnn.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IRIS_CSV = EXAMPLES / "data" / "iris.csv"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
IRIS_METRICS = "[accuracy, {f1: {average: macro}}, {top_k_accuracy: {k: 2}}, confusion_matrix]"

REGRESSION_SPEC = """\
specnn: 1
name: prices
seed: 5
model:
  input: [3]
  layers:
    - Linear: {out_features: 8}
    - ReLU:
    - Linear: {out_features: 1}
data:
  csv: {path: prices.csv, target: price}
  preprocess: {scale: minmax}
  validation_split: 0.25
loss:
  MSELoss:
optimizer:
  Adam: {lr: 0.02}
train: {epochs: 4, batch_size: 4, device: cpu, metrics: [mse, mae, r2]}
"""


def iris_spec(folder: Path, validation_split: float = 0.2) -> Path:
    """The iris example with standard scaling, several metrics, 8 epochs, no exports."""
    text = (EXAMPLES / "iris.yaml").read_text()
    for old, new in [("  validation_split: 0.2", f"  preprocess: {{scale: standard}}\n  validation_split: {validation_split}"),
                     ("epochs: 60", f"epochs: 8\n  metrics: {IRIS_METRICS}"), ("export: [state_dict, onnx]", ""),
                     ("device: auto", "device: cpu"), ("path: data/iris.csv", f"path: {IRIS_CSV}")]:
        assert old in text
        text = text.replace(old, new)
    (folder / "iris.yaml").write_text(text)
    return folder / "iris.yaml"


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> Path:
    """An iris run shared by this module's tests (read only)."""
    folder = tmp_path_factory.mktemp("iris")
    return train(load_spec(iris_spec(folder)), folder / "run", quiet=True).path


def last_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def iris_rows(indices: list[int]) -> tuple[np.ndarray, list[str]]:
    table = list(csv.DictReader(IRIS_CSV.open()))
    rows = [table[i] for i in indices]
    return np.array([[float(r[c]) for c in COLUMNS] for r in rows], np.float32), [r["species"] for r in rows]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\n".join(",".join(map(str, row)) for row in [header, *rows]) + "\n")
    return path


def outputs_by_hand(run_dir: Path, features: np.ndarray) -> torch.Tensor:
    """The model on rows scaled by hand with the statistics in preprocess.json."""
    scale = json.loads((run_dir / "preprocess.json").read_text())["scale"]
    x = torch.tensor((features - np.array(scale["mean"])) / np.array(scale["std"]), dtype=torch.float32)
    with torch.inference_mode():
        return load_run(run_dir).model(x)


HELD_OUT = [0, 7, 20, 49, 50, 61, 77, 83, 99, 100, 119, 133, 149]


# ---------------------------------------------------------------------------------------------
# the validation split


def test_validation_split_gives_the_last_epochs_val_numbers_and_writes_nothing(iris_run):
    before = folder_state(iris_run)
    result = evaluate(iris_run)
    record = last_record(iris_run)
    matrix = json.loads((iris_run / "confusion_matrix.json").read_text())["val"]
    assert result == {
        "run": str(iris_run),
        "data": "validation split",
        "samples": 30,
        "classes": CLASSES,
        "metrics": {"loss": record["val_loss"], "accuracy": record["val_accuracy"], "f1": record["val_f1"],
                    "top2_accuracy": record["val_top2_accuracy"], "confusion_matrix": matrix},
    }
    assert folder_state(iris_run) == before


def test_default_metric_is_the_trainers_default(tmp_path):
    spec = iris_spec(tmp_path)
    spec.write_text(spec.read_text().replace(f"\n  metrics: {IRIS_METRICS}", "").replace("epochs: 8", "epochs: 1"))
    run = train(load_spec(spec), tmp_path / "run", quiet=True).path
    record = last_record(run)
    assert evaluate(run)["metrics"] == {"loss": record["val_loss"], "accuracy": record["val_accuracy"]}


def test_no_validation_split_asks_for_a_file_located_in_the_runs_spec(tmp_path):
    run = train(load_spec(iris_spec(tmp_path, validation_split=0)), tmp_path / "run", quiet=True).path
    lines = (run / "spec.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "validation_split:" in text)
    col = lines[line - 1].index("validation_split") + 1  # problems point at the key
    with pytest.raises(RunError) as info:
        evaluate(run)
    assert str(info.value) == (
        f"{run / 'spec.yaml'}:{line}:{col}: data.validation_split: this run has no validation split "
        "(validation_split is 0): there is nothing to evaluate without a file "
        "(pass --data FILE: a CSV or NPZ with the feature columns and the target)")


# ---------------------------------------------------------------------------------------------
# a held-out file


def test_held_out_csv_accuracy_and_loss_equal_the_models_argmax_by_hand(iris_run, tmp_path):
    features, species = iris_rows(HELD_OUT)
    data = write_csv(tmp_path / "held_out.csv", [*COLUMNS, "species"],
                     [[*map(float, row), name] for row, name in zip(features, species)])
    result = evaluate(iris_run, data)
    outputs = outputs_by_hand(iris_run, features)
    targets = torch.tensor([CLASSES.index(s) for s in species])
    predicted = outputs.argmax(dim=1)
    confusion = [[int(((targets == t) & (predicted == p)).sum()) for p in range(3)] for t in range(3)]
    metrics = result["metrics"]
    assert result["data"] == str(data) and result["samples"] == len(HELD_OUT)
    assert metrics["accuracy"] == (predicted == targets).sum().item() / len(HELD_OUT)
    assert metrics["confusion_matrix"] == confusion
    assert metrics["loss"] == pytest.approx(torch.nn.functional.cross_entropy(outputs, targets).item(), rel=1e-5)
    assert metrics["top2_accuracy"] == (outputs.topk(2).indices == targets[:, None]).any(dim=1).float().mean().item()


def test_columns_by_name_and_npz_input_give_the_same_result(iris_run, tmp_path):
    features, species = iris_rows(HELD_OUT)
    reordered = ["species", "petal_width", "sepal_length", "petal_length", "sepal_width"]
    by_name = write_csv(tmp_path / "reordered.csv", reordered,
                        [[name, *(float(row[COLUMNS.index(c)]) for c in reordered[1:])] for row, name in zip(features, species)])
    np.savez(tmp_path / "named.npz", **{c: features[:, i] for i, c in enumerate(COLUMNS)}, species=np.array(species))
    np.savez(tmp_path / "indices.npz", x=features, species=np.array([CLASSES.index(s) for s in species]))
    expected = evaluate(iris_run, write_csv(tmp_path / "plain.csv", [*COLUMNS, "species"],
                                            [[*map(float, r), s] for r, s in zip(features, species)]))["metrics"]
    for data in (by_name, tmp_path / "named.npz", tmp_path / "indices.npz"):
        assert evaluate(iris_run, data)["metrics"] == expected


def test_an_unknown_label_names_file_row_column_and_the_known_classes(iris_run, tmp_path):
    data = write_csv(tmp_path / "new.csv", [*COLUMNS, "species"],
                     [[5.1, 3.5, 1.4, 0.2, "setosa"], [6.0, 2.2, 4.0, 1.0, "versicolor"], [6.3, 3.3, 6.0, 2.5, "virginca"]])
    with pytest.raises(DataError) as info:
        evaluate(iris_run, data)
    assert str(info.value) == (f"{data}: row 4, column 'species': unknown label 'virginca' "
                               "(known classes: setosa, versicolor, virginica)")


def test_a_numeric_npz_label_outside_the_classes_is_located(iris_run, tmp_path):
    features, _ = iris_rows([0, 1, 2])
    np.savez(tmp_path / "bad.npz", x=features, species=np.array([0, 2, 3]))
    with pytest.raises(DataError) as info:
        evaluate(iris_run, tmp_path / "bad.npz")
    assert str(info.value) == f"{tmp_path / 'bad.npz'}: species[2]: 3 is not a class of this run (class indices 0..2)"


def test_the_target_column_is_required(iris_run, tmp_path):
    data = write_csv(tmp_path / "new.csv", COLUMNS, [[5.1, 3.5, 1.4, 0.2]])
    with pytest.raises(DataError) as info:
        evaluate(iris_run, data)
    assert str(info.value) == (f"{data}: row 1: no column 'species' "
                               "(columns: sepal_length, sepal_width, petal_length, petal_width)")
    np.savez(tmp_path / "new.npz", x=np.zeros((2, 4), np.float32))
    with pytest.raises(DataError) as info:
        evaluate(iris_run, tmp_path / "new.npz")
    assert str(info.value) == (f"{tmp_path / 'new.npz'}: no array named 'species' (arrays: x) "
                               "(the labels go in an array named like the training's targets)")


def test_a_missing_feature_column_or_a_bad_value_is_located(iris_run, tmp_path):
    data = write_csv(tmp_path / "new.csv", ["sepal_length", "sepal_width", "petal_length", "species"],
                     [[5.1, 3.5, 1.4, "setosa"]])
    with pytest.raises(DataError) as info:
        evaluate(iris_run, data)
    assert str(info.value) == (f"{data}: row 1: no column 'petal_width' (columns: sepal_length, sepal_width, "
                               "petal_length, species) (did you mean 'sepal_width'?)")
    write_csv(data, [*COLUMNS, "species"], [[5.1, 3.5, 1.4, 0.2, "setosa"], [4.9, "abc", 1.4, 0.2, "setosa"]])
    with pytest.raises(DataError) as info:
        evaluate(iris_run, data)
    assert str(info.value) == f"{data}: row 3, column 'sepal_width': 'abc' is not a number (if the column holds categories, list it under data.preprocess.categorical)"


def test_a_missing_run_file_is_a_run_error(iris_run, tmp_path):
    with pytest.raises(RunError) as info:
        evaluate(tmp_path)
    assert str(info.value).splitlines()[0] == (f"{tmp_path / 'spec.yaml'}: missing run file "
                                               "(a run folder holds spec.yaml, weights.pt, meta.json)")


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_missing_preprocess_json_is_refused_when_the_spec_scales(iris_run, tmp_path, command):
    # Without the fitted statistics the rows would go in unscaled and the answers would be wrong.
    import shutil

    from specnn.runtime.runs.predict import predict

    run_dir = shutil.copytree(iris_run, tmp_path / "run")
    (run_dir / "preprocess.json").unlink()
    rows = write_csv(tmp_path / "rows.csv", COLUMNS + ["species"], [[5.1, 3.5, 1.4, 0.2, "setosa"]])
    before = folder_state(run_dir)
    with pytest.raises(RunError) as info:
        evaluate(run_dir) if command == "evaluate" else predict(run_dir, rows)
    assert str(info.value).splitlines()[0] == (
        f"{run_dir / 'preprocess.json'}: missing run file: the run's spec asks for data.preprocess "
        "(scale: standard), fitted on its training split and stored here")
    assert folder_state(run_dir) == before


# ---------------------------------------------------------------------------------------------
# regression


@pytest.fixture
def prices_run(tmp_path) -> Path:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(24, 3))
    write_csv(tmp_path / "prices.csv", ["a", "b", "c", "price"],
              [[f"{v:.4f}" for v in row] + [f"{row @ [1.0, -2.0, 0.5]:.4f}"] for row in x])
    (tmp_path / "prices.yaml").write_text(REGRESSION_SPEC)
    return train(load_spec(tmp_path / "prices.yaml"), tmp_path / "run", quiet=True).path


def test_regression_validation_split_equals_the_last_epoch(prices_run):
    record = last_record(prices_run)
    result = evaluate(prices_run)
    assert result["samples"] == 6 and result["classes"] is None
    assert result["metrics"] == {key: record[f"val_{key}"] for key in ("loss", "mse", "mae", "r2")}


def test_regression_held_out_mse_by_hand(prices_run, tmp_path):
    x = np.array([[0.1, 0.2, 0.3], [-1.0, 0.5, 2.0], [1.5, -0.5, 0.0]], np.float32)
    y = np.array([1.2, -0.4, 2.25], np.float32)
    data = write_csv(tmp_path / "new.csv", ["c", "a", "b", "price"], [[r[2], r[0], r[1], t] for r, t in zip(x, y)])
    scale = json.loads((prices_run / "preprocess.json").read_text())["scale"]
    low, high = np.array(scale["min"]), np.array(scale["max"])
    with torch.inference_mode():
        predicted = load_run(prices_run).model(torch.tensor((x - low) / (high - low), dtype=torch.float32))[:, 0]
    metrics = evaluate(prices_run, data)["metrics"]
    assert metrics["mse"] == pytest.approx(((predicted.numpy() - y) ** 2).mean(), rel=1e-5)
    assert metrics["mae"] == pytest.approx(np.abs(predicted.numpy() - y).mean(), rel=1e-5)
    assert metrics["loss"] == pytest.approx(metrics["mse"], rel=1e-5)


def test_a_data_file_changed_since_training_is_reported_not_evaluated(prices_run, tmp_path):
    with (tmp_path / "prices.csv").open("a") as f:
        f.write("0.1,0.2,0.3,0.0\n" * 4)
    with pytest.raises(RunError) as info:
        evaluate(prices_run)
    problem, = info.value.problems
    assert problem.code == "data-changed" and problem.file == str(prices_run / "spec.yaml")
    assert problem.format().endswith(": data.csv: the data source no longer gives the run's validation split: its "
                                     "validation split has 7 samples, the run's had 6 "
                                     "(evaluate a held-out file with --data FILE)")


# ---------------------------------------------------------------------------------------------
# command line and formatting


def test_format_evaluation_doctest():
    assert doctest.testmod(evaluate_module).failed == 0


def test_cli_prints_the_table_and_json(cli_runner, iris_run):
    expected = evaluate(iris_run)
    result = cli_runner.invoke(cli, ["evaluate", str(iris_run)])
    assert result.exit_code == 0, result.output
    assert result.output == format_evaluation(expected) + "\n"
    lines = result.output.splitlines()
    assert lines[1].split() == ["metric", "value"] and lines[2].split() == ["loss", format(expected["metrics"]["loss"], ".6g")]
    assert "target\\predicted  setosa  versicolor  virginica" in lines
    result = cli_runner.invoke(cli, ["evaluate", str(iris_run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected


def test_cli_output_file_is_json_and_the_run_is_untouched(cli_runner, iris_run, tmp_path):
    before = folder_state(iris_run)
    out = tmp_path / "eval.json"
    result = cli_runner.invoke(cli, ["evaluate", str(iris_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == evaluate(iris_run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]
    assert folder_state(iris_run) == before


def test_cli_bad_input_exits_2_with_a_located_message(cli_runner, iris_run, tmp_path):
    data = write_csv(tmp_path / "new.csv", [*COLUMNS, "species"], [[5.1, 3.5, 1.4, 0.2, "rose"]])
    out = tmp_path / "eval.json"
    result = cli_runner.invoke(cli, ["evaluate", str(iris_run), "--data", str(data), "-o", str(out)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"{data}: row 2, column 'species': unknown label 'rose' "
                                     "(known classes: setosa, versicolor, virginica)")
    assert not out.exists()
    result = cli_runner.invoke(cli, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.splitlines()[0] == (f"{tmp_path / 'spec.yaml'}: missing run file "
                                             "(a run folder holds spec.yaml, weights.pt, meta.json)")
    result = cli_runner.invoke(cli, ["evaluate", str(iris_run), "--device", "tpu"])
    assert result.exit_code == 2
    assert result.output.strip() == "device: unknown device 'tpu' (use auto, cpu, cuda, cuda:N or mps)"
