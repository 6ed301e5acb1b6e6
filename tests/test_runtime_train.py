"""The training loop: iris learns, runs repeat bit for bit, bad data and devices are located."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import torch

from specnn.launch import train
from specnn.runtime.train.logs import format_epoch
from specnn.errors import DataError, SpecError
from specnn.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EPOCH_LINE = re.compile(
    r"^epoch +\d+/60  train_loss \d+\.\d{4}  train_accuracy [01]\.\d{3}  val_loss \d+\.\d{4}  val_accuracy [01]\.\d{3}"
    r"  lr 0\.01  \(\d+\.\d\ds\)$"
)


def iris(**train_settings):
    spec = load_spec(EXAMPLES / "iris.yaml")
    update = {"export": []}
    if train_settings:
        update["train"] = spec.train.model_copy(update=train_settings)
    return spec.model_copy(update=update)


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


SYNTHETIC = """\
    specnn: 1
    name: synth
    seed: 3
    model:
      input: [6]
      layers:
        - Linear: {out_features: 16}
        - ReLU:
        - Linear: {out_features: OUT}
    data:
      synthetic: {task: TASK, samples: 200, shape: [6], classes: 2, outputs: OUT}
      validation_split: 0.25
    loss:
      LOSS:
    optimizer:
      Adam: {lr: 0.01}
    train:
      epochs: 15
      batch_size: 32
      device: cpu
"""


def synthetic(tmp_path: Path, task: str, loss: str, out: int) -> object:
    text = SYNTHETIC.replace("TASK", task).replace("LOSS", loss).replace("OUT", str(out))
    return load_spec(write_spec(tmp_path, text))


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_iris_reaches_090_validation_accuracy_with_one_line_per_epoch(tmp_path):
    lines: list[str] = []
    run = train(iris(), tmp_path / "run", echo=lines.append)
    assert len(lines) == 60
    assert all(EPOCH_LINE.match(line) for line in lines), lines[:2]
    assert lines[0].startswith("epoch   1/60  train_loss ")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 61))
    assert records[-1]["val_accuracy"] >= 0.9
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert run.classes == ["setosa", "versicolor", "virginica"]
    assert not run.model.training


def test_quiet_prints_nothing(tmp_path):
    lines: list[str] = []
    train(iris(epochs=2), tmp_path / "run", quiet=True, echo=lines.append)
    assert lines == []


def test_one_seed_gives_bitwise_identical_weights_another_seed_does_not(tmp_path):
    first = train(iris(epochs=5), tmp_path / "a", quiet=True).model.state_dict()
    second = train(iris(epochs=5), tmp_path / "b", quiet=True).model.state_dict()
    other = train(iris(epochs=5).model_copy(update={"seed": 1}), tmp_path / "c", quiet=True).model.state_dict()
    assert list(first) == list(second)
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["fc1.weight"], other["fc1.weight"])


def test_regression_reports_loss_without_accuracy(tmp_path):
    lines: list[str] = []
    run = train(synthetic(tmp_path, "regression", "MSELoss", 2), tmp_path / "run", echo=lines.append)
    assert "val_accuracy" not in lines[-1] and "val_loss" in lines[-1]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert run.meta["task"] == "regression" and run.classes is None


def test_binary_logits_with_one_output_train_on_float_targets(tmp_path):
    run = train(synthetic(tmp_path, "classification", "BCEWithLogitsLoss", 1), tmp_path / "run", quiet=True)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val_accuracy"] >= 0.9
    assert run.meta["output"]["shape"] == [1]


def test_features_that_do_not_fit_the_model_input_are_located_at_model_input(tmp_path):
    spec_file = write_spec(tmp_path, SYNTHETIC.replace("shape: [6]", "shape: [5]").replace("TASK", "classification")
                           .replace("LOSS", "CrossEntropyLoss").replace("OUT", "2"))
    with pytest.raises(DataError) as info:
        train(load_spec(spec_file), tmp_path / "run", quiet=True)
    assert str(info.value) == (
        f"{spec_file}:5:3: model.input: the data has [5] features per sample but the model input is [6]"
    )
    assert not (tmp_path / "run").exists()


def test_a_missing_gpu_is_located_at_train_device_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec_file = write_spec(tmp_path, SYNTHETIC.replace("device: cpu", "device: cuda").replace("TASK", "classification")
                           .replace("LOSS", "CrossEntropyLoss").replace("OUT", "2"))
    with pytest.raises(SpecError) as info:
        train(load_spec(spec_file), tmp_path / "run", quiet=True)
    assert str(info.value) == (
        f"{spec_file}:20:3: train.device: device 'cuda' is not available: torch sees no CUDA GPU "
        "(use device: auto or cpu)"
    )
    assert not (tmp_path / "run").exists()


def test_epoch_line_format():
    record = {"epoch": 12, "lr": 0.001, "train_loss": 0.41234, "val_loss": 0.39871, "val_accuracy": 0.93333,
              "seconds": 0.0213}
    assert format_epoch(record, 60) == "epoch  12/60  train_loss 0.4123  val_loss 0.3987  val_accuracy 0.933  lr 0.001  (0.02s)"
    assert format_epoch({"epoch": 3, "train_loss": 1.0, "seconds": 1.5}, 100) == "epoch    3/100  train_loss 1.0000  (1.50s)"


def test_without_a_validation_split_only_the_training_loss_is_reported(tmp_path):
    text = SYNTHETIC.replace("validation_split: 0.25", "validation_split: 0").replace("TASK", "classification")
    lines: list[str] = []
    spec = load_spec(write_spec(tmp_path, text.replace("LOSS", "CrossEntropyLoss").replace("OUT", "2")))
    run = train(spec, tmp_path / "run", echo=lines.append)
    assert re.fullmatch(r"epoch  15/15  train_loss \d\.\d{4}  train_accuracy [01]\.\d{3}  lr 0\.01  \(\d+\.\d\ds\)", lines[-1])
    assert run.meta["samples"] == {"train": 200, "validation": 0}


def test_a_missing_data_file_is_named_and_nothing_is_written(tmp_path):
    text = SYNTHETIC.replace("synthetic: {task: TASK, samples: 200, shape: [6], classes: 2, outputs: OUT}",
                             "csv: {path: missing.csv, target: label}")
    spec = load_spec(write_spec(tmp_path, text.replace("LOSS", "CrossEntropyLoss").replace("OUT", "2")))
    with pytest.raises(DataError) as info:
        train(spec, tmp_path / "run", quiet=True)
    assert str(info.value) == f"{tmp_path / 'missing.csv'}: data file not found"
    assert not (tmp_path / "run").exists()


def test_a_diverged_sigmoid_gives_bce_a_nan_loss_that_training_reports_not_torchs_range_error():
    from specnn.runtime.train.losses import DivergedBCELoss

    loss_fn = DivergedBCELoss()
    output = torch.tensor([[0.5], [float("nan")]], requires_grad=True)
    loss = loss_fn(output, torch.tensor([[1.0], [0.0]]))
    assert torch.isnan(loss)
    loss.backward()  # the loop steps on: its epoch check stops the run with "the training loss is nan"
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        loss_fn(torch.tensor([[1.5]]), torch.tensor([[1.0]]))  # a finite value out of range stays torch's error
