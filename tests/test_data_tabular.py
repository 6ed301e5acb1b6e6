"""Real tables: Parquet and CSV alike, missing values, a test split, target scaling, and the data
mistakes that used to train silently or fail without a location (a spec in, a behaviour out)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from specnn.catalog.sources import CsvArgs, ParquetArgs
from specnn.cli import cli
from specnn.errors import DataError, SpecError
from specnn.runtime.data.sources import load_csv, load_parquet
from specnn.runtime.data.splits import split_indices
from specnn.runtime.runs.evaluate import evaluate
from specnn.runtime.runs.predict import predict
from specnn.launch import train
from specnn.spec.loader import load_spec

SPEC = """\
specnn: 1
name: houses
seed: 1
model:
  input: [3]
  layers:
    - Linear: {{out_features: 16}}
    - ReLU:
    - Linear: {{out_features: {outputs}}}
data:
  {source}: {{path: {path}, target: {target}}}
  validation_split: 0.2
{extra}loss:
  {loss}:
optimizer:
  Adam: {{lr: 0.02}}
train: {{epochs: {epochs}, batch_size: 32, device: cpu}}
"""


def write_spec(folder: Path, *, path: str = "houses.csv", target: str = "price", extra: str = "",
               loss: str = "MSELoss", outputs: int = 1, epochs: int = 30, source: str = "csv") -> Path:
    spec = folder / "houses.yaml"
    spec.write_text(SPEC.format(path=path, target=target, extra=extra, loss=loss, outputs=outputs, epochs=epochs,
                                source=source))
    return spec


def write_houses(folder: Path, rows: int = 300, missing: bool = False) -> Path:
    """price = 1000 * rooms + 50 * area + noise (in the thousands: target scaling matters)."""
    rng = np.random.default_rng(0)
    rooms, area, age = rng.integers(1, 6, rows), rng.uniform(20, 200, rows), rng.uniform(0, 50, rows)
    price = 1000 * rooms + 50 * area + rng.normal(0, 10, rows)
    lines = ["rooms,area,age,price"]
    for i in range(rows):
        cells = [str(rooms[i]), f"{area[i]:.2f}", f"{age[i]:.1f}", f"{price[i]:.1f}"]
        if missing and i % 10 == 3:
            cells[2] = ""  # age missing
        if missing and i % 25 == 7:
            cells[3] = "NA"  # target missing: the row is dropped
        lines.append(",".join(cells))
    path = folder / "houses.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parquet_and_csv_give_identical_arrays(tmp_path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    csv = write_houses(tmp_path)
    pq.write_table(pacsv.read_csv(csv), tmp_path / "houses.parquet")
    from_csv = load_csv(CsvArgs(path="houses.csv", target="price"), tmp_path)
    from_parquet = load_parquet(ParquetArgs(path="houses.parquet", target="price"), tmp_path)
    np.testing.assert_array_equal(from_csv.features, from_parquet.features)
    np.testing.assert_array_equal(from_csv.targets, from_parquet.targets)
    assert from_csv.features.dtype == from_parquet.features.dtype == np.float32


def test_missing_values_filled_on_the_training_split_and_applied_by_predict(tmp_path):
    write_houses(tmp_path, missing=True)
    spec = write_spec(tmp_path, extra="  preprocess: {scale: standard, missing: {age: median}, scale_target: standard}\n")
    lines = []
    run = train(load_spec(spec), tmp_path / "run", echo=lines.append, progress=False)
    assert f"{tmp_path / 'houses.csv'}: dropped 12 row(s) with no target value" in lines
    stored = json.loads((run.path / "preprocess.json").read_text())
    assert stored["missing"]["age"]["strategy"] == "median"
    assert stored["target_scale"]["method"] == "standard"
    # the median is the training split's, not the whole file's
    ages = np.genfromtxt(tmp_path / "houses.csv", delimiter=",", skip_header=1)
    assert stored["missing"]["age"]["value"] != pytest.approx(np.nanmedian(ages[:, 2]))
    (tmp_path / "new.csv").write_text("rooms,area,age\n3,100,\n1,50,10\n")
    predictions = predict(run.path, tmp_path / "new.csv")
    # in dollars again (the model learned scaled targets): 3 rooms and 100 m2 is about 8000
    assert predictions.outputs[:, 0] == pytest.approx([8000, 3500], rel=0.15)


def test_a_missing_cell_without_a_strategy_names_the_spec_key(tmp_path):
    write_houses(tmp_path, missing=True)
    with pytest.raises(DataError) as info:
        train(load_spec(write_spec(tmp_path)), tmp_path / "run", quiet=True)
    assert str(info.value) == (f"{tmp_path / 'houses.csv'}: row 5, column 'age': missing value "
                               "(set data.preprocess.missing to drop these rows or fill them)")
    assert not (tmp_path / "run").exists()


def test_drop_strategy_and_a_mean_of_categories_is_located(tmp_path):
    write_houses(tmp_path, missing=True)
    lines = []
    train(load_spec(write_spec(tmp_path, epochs=1, extra="  preprocess: {missing: drop}\n")), tmp_path / "run",
          echo=lines.append, progress=False)
    assert any("dropped 30 row(s) with a missing rooms/area/age value" in line for line in lines)
    (tmp_path / "shop.csv").write_text("x,color,y\n1,red,0\n2,,1\n3,blue,0\n4,red,1\n5,blue,0\n")
    spec = write_spec(tmp_path, path="shop.csv", target="y", loss="CrossEntropyLoss", outputs=2,
                      extra="  preprocess: {categorical: {color: index}, missing: {color: mean}}\n")
    text = spec.read_text().replace("input: [3]", "input: [2]")
    spec.write_text(text)
    with pytest.raises(SpecError) as info:
        train(load_spec(spec), tmp_path / "run2", quiet=True)
    where = "  preprocess: {categorical: {color: index}, missing: {color: mean}}"
    line, col = text.splitlines().index(where) + 1, where.index("color: mean") + 1
    assert str(info.value) == (f"{spec}:{line}:{col}: data.preprocess.missing.color: column 'color' holds categories: "
                               "it has no mean (use most_frequent or {constant: name})")


def test_most_frequent_category_fills_and_predict_uses_the_same(tmp_path):
    rows = ["x,color,y"] + [f"{i},{'red' if i % 3 else 'blue'},{i % 2}" for i in range(60)] + ["61,,1"]
    (tmp_path / "shop.csv").write_text("\n".join(rows) + "\n")
    spec = write_spec(tmp_path, path="shop.csv", target="y", loss="CrossEntropyLoss", outputs=2, epochs=1,
                      extra="  preprocess: {categorical: {color: onehot}, missing: {color: most_frequent}}\n")
    run = train(load_spec(spec), tmp_path / "run", quiet=True)
    stored = json.loads((run.path / "preprocess.json").read_text())
    assert stored["missing"]["color"] == {"strategy": "most_frequent", "value": "red"}
    assert stored["categorical"]["color"]["categories"] == ["blue", "red"]
    (tmp_path / "new.csv").write_text("x,color\n5,\n6,blue\n")
    assert len(predict(run.path, tmp_path / "new.csv")) == 2


def test_test_split_is_held_out_and_evaluated_once_after_training(tmp_path):
    write_houses(tmp_path)
    text = write_spec(tmp_path, loss="CrossEntropyLoss", outputs=6, target="rooms", epochs=5).read_text()
    spec = tmp_path / "houses.yaml"
    spec.write_text(text.replace("input: [3]", "input: [3]").replace(
        "  csv: {path: houses.csv, target: rooms}", "  csv: {path: houses.csv, target: rooms, "
        "features: [area, age, price]}").replace("validation_split: 0.2", "validation_split: 0.2\n  test_split: 0.1\n"
                                                   "  stratify: true\n  preprocess: {scale: standard}"))
    lines = []
    run = train(load_spec(spec), tmp_path / "run", echo=lines.append, progress=False)
    result = json.loads((run.path / "test.json").read_text())
    assert result["samples"] == 30 and run.meta["samples"] == {"train": 210, "validation": 60, "test": 30}
    assert set(result["metrics"]) == {"loss", "accuracy", "confusion_matrix"}
    assert np.sum(result["metrics"]["confusion_matrix"]) == 30
    assert lines[-1].startswith("test (30 samples): loss ")
    again = evaluate(run.path, split="test")
    assert again["samples"] == 30
    assert again["metrics"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"])
    # the epochs never saw the test split: metrics.jsonl has no test_ keys
    assert not any(key.startswith("test") for line in (run.path / "metrics.jsonl").read_text().splitlines()
                   for key in json.loads(line))


def test_plain_split_is_unchanged_and_stratified_keeps_class_shares():
    # the split every existing run used: one permutation, validation first
    order = np.random.default_rng(5).permutation(50)
    train_at, val_at, test_at = split_indices(50, 0.2, 0.0, 5)
    assert val_at.tolist() == sorted(order[:10]) and train_at.tolist() == sorted(order[10:]) and not len(test_at)
    labels = np.array([0] * 80 + [1] * 20)
    train_at, val_at, test_at = split_indices(100, 0.2, 0.1, 0, labels)
    assert np.bincount(labels[val_at]).tolist() == [16, 4]
    assert np.bincount(labels[test_at]).tolist() == [8, 2]
    assert sorted([*train_at, *val_at, *test_at]) == list(range(100))


def test_a_repeated_column_name_is_an_error_naming_both_columns(tmp_path):
    (tmp_path / "d.csv").write_text("x,age,y,age\n1,2,0,3\n")
    with pytest.raises(DataError) as info:
        load_csv(CsvArgs(path="d.csv", target="y"), tmp_path)
    assert str(info.value) == (f"{tmp_path / 'd.csv'}: row 1: columns 2 and 4 are both named 'age' "
                               "(a column read by name must be unique) (rename one of them)")


def test_float_labels_with_cross_entropy_are_located_at_the_loss(tmp_path):
    write_houses(tmp_path)
    spec = write_spec(tmp_path, loss="CrossEntropyLoss", outputs=3)
    with pytest.raises(DataError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    line = spec.read_text().splitlines().index("  CrossEntropyLoss:") + 1
    message = str(info.value)
    assert message.startswith(f"{spec}:{line}:3: loss.CrossEntropyLoss: CrossEntropyLoss needs one integer class "
                              "label per sample; the targets hold fractional values such as ")
    assert message.endswith("(from houses.csv, column 'price') (use MSELoss or another regression loss for "
                            "numeric targets)")


def test_integer_labels_with_mse_say_use_cross_entropy(tmp_path):
    write_houses(tmp_path)
    spec = write_spec(tmp_path, target="rooms", outputs=5)
    with pytest.raises(DataError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    assert str(info.value).endswith("(from houses.csv, column 'rooms') (the targets are integer class labels: "
                                    "use CrossEntropyLoss)")


def test_a_string_column_names_the_categorical_fix(tmp_path):
    (tmp_path / "d.csv").write_text("x,city,y\n1,lyon,0\n2,paris,1\n")
    with pytest.raises(DataError) as info:
        load_csv(CsvArgs(path="d.csv", target="y"), tmp_path)
    assert str(info.value) == (f"{tmp_path / 'd.csv'}: row 2, column 'city': 'lyon' is not a number "
                               "(if the column holds categories, list it under data.preprocess.categorical)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_csv_is_a_clean_error_exit_2(tmp_path):
    write_houses(tmp_path)
    spec = write_spec(tmp_path)
    (tmp_path / "houses.csv").chmod(0)
    try:
        result = CliRunner().invoke(cli, ["train", str(spec), "--out", str(tmp_path / "run")])
    finally:
        (tmp_path / "houses.csv").chmod(0o644)
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"{tmp_path / 'houses.csv'}: cannot read the file")
    assert "Traceback" not in result.output


def test_a_csv_in_a_folder_without_permission_is_a_clean_error(tmp_path):
    from specnn.runtime.data.csv_table import check_file

    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "d.csv").write_text("x,y\n1,2\n")
    folder.chmod(0)
    try:
        if os.access(folder / "d.csv", os.R_OK):
            pytest.skip("this user reads every file")
        with pytest.raises(DataError) as info:
            check_file(folder / "d.csv")
    finally:
        folder.chmod(0o755)
    assert str(info.value) == f"{folder / 'd.csv'}: cannot read the file: Permission denied"


def test_validate_data_runs_the_data_checks_without_training(tmp_path):
    write_houses(tmp_path)
    spec = write_spec(tmp_path, target="prise")
    runner = CliRunner()
    assert runner.invoke(cli, ["validate", str(spec)]).exit_code == 0  # the spec alone is fine
    result = runner.invoke(cli, ["validate", "--data", str(spec)])
    written = "  csv: {path: houses.csv, target: prise}"
    line, col = spec.read_text().splitlines().index(written) + 1, written.index("target") + 1
    assert result.exit_code == 2
    assert result.output.strip() == (f"{spec}:{line}:{col}: data.csv.target: {tmp_path / 'houses.csv'} has no column "
                                     "'prise' (columns: rooms, area, age, price) (did you mean 'price'?)")
    spec = write_spec(tmp_path, target="rooms", outputs=6)
    result = runner.invoke(cli, ["validate", "--data", str(spec)])
    assert result.exit_code == 2 and result.output.strip().endswith("use CrossEntropyLoss)")
    spec = write_spec(tmp_path)
    result = runner.invoke(cli, ["validate", "--data", str(spec)])
    assert (result.exit_code, result.output.strip()) == (0, f"{spec}: ok")
    assert not (tmp_path / "runs").exists()


def test_the_parts_hold_the_split_rows_in_file_order(tmp_path):
    from specnn.compiler import compile_spec
    from specnn.runtime.data.prepare import load_splits

    rows = ["i,a,b,y"] + [f"{i},{i % 7},{(i * 3) % 11},{i % 2}" for i in range(200_000)]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    spec = write_spec(tmp_path, path="rows.csv", target="y", loss="CrossEntropyLoss", outputs=2,
                      extra="  test_split: 0.1\n")
    spec = load_spec(spec)
    splits = load_splits(spec, compile_spec(spec).inputs, (2,))
    train_at, val_at, test_at = split_indices(200_000, 0.2, 0.1, 1)
    for part, at in ((splits.train, train_at), (splits.validation, val_at), (splits.test, test_at)):
        (x,) = part.features.values()
        np.testing.assert_array_equal(x[:, 0], at.astype(np.float32))
        np.testing.assert_array_equal(part.targets, at % 2)


def test_explicit_validation_and_test_files_are_read_like_the_training_file(tmp_path):
    write_houses(tmp_path)
    rows = (tmp_path / "houses.csv").read_text().splitlines()
    (tmp_path / "train.csv").write_text("\n".join(rows[:201]) + "\n")
    (tmp_path / "val.csv").write_text("\n".join([rows[0], *rows[201:261]]) + "\n")
    (tmp_path / "test.csv").write_text("\n".join([rows[0], *rows[261:]]) + "\n")
    spec = write_spec(tmp_path, path="train.csv", epochs=2,
                      extra="  validation_path: val.csv\n  test_path: test.csv\n  preprocess: {scale: standard}\n")
    run = train(load_spec(spec), tmp_path / "run", quiet=True)
    assert run.meta["samples"] == {"train": 200, "validation": 60, "test": 40}
    assert json.loads((run.path / "test.json").read_text())["samples"] == 40
    assert evaluate(run.path)["samples"] == 60
    (tmp_path / "val.csv").write_text("rooms,area,age,price\n1,2,3,abc\n")
    with pytest.raises(DataError) as info:
        train(load_spec(spec), tmp_path / "run2", quiet=True)
    assert str(info.value).startswith(f"{tmp_path / 'val.csv'}: row 2, column 'price': 'abc' is not a number")


def test_a_file_the_process_may_not_read_is_a_clean_error_even_as_root(tmp_path, monkeypatch):
    write_houses(tmp_path)
    spec = write_spec(tmp_path)
    real_stat = Path.stat

    def refused(self, *args, **kwargs):
        if self.name == "houses.csv":
            raise PermissionError(13, "Permission denied")
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refused)
    result = CliRunner().invoke(cli, ["train", str(spec), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.strip() == f"{tmp_path / 'houses.csv'}: cannot read the file: Permission denied"
    assert not (tmp_path / "run").exists()
