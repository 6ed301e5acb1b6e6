"""Model summary: parameter counts equal hand-written PyTorch modules'; the table; ``specnn inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from specnn.cli import cli
from specnn.compiler import build_model, compile_spec
from specnn.compiler.summary import format_table, summarize
from specnn.spec.loader import load_spec, load_spec_text

TAIL = """\
data: {synthetic: {shape: [4]}}
loss: {CrossEntropyLoss: }
optimizer: {Adam: {lr: 0.01}}
"""


def summary_of(model_yaml: str):
    compiled = compile_spec(load_spec_text("name: t\nmodel:\n" + model_yaml + TAIL))
    return compiled, summarize(compiled)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def assert_counts(model_yaml: str, reference: nn.Module) -> dict[str, int]:
    """The summary's total equals the reference's and the compiled model's; rows add up to it."""
    compiled, summary = summary_of(model_yaml)
    assert summary.total_params == count(reference) == count(build_model(compiled))
    assert sum(row.params for row in summary.rows) == summary.total_params
    return {row.name: row.params for row in summary.rows if row.params}


LENET5 = """\
  input: [1, 28, 28]
  layers:
    - Conv2d: {out_channels: 6, kernel_size: 5, padding: 2}
    - Tanh:
    - AvgPool2d: {kernel_size: 2}
    - Conv2d: {out_channels: 16, kernel_size: 5}
    - Tanh:
    - AvgPool2d: {kernel_size: 2}
    - Flatten:
    - Linear: {out_features: 120}
    - Tanh:
    - Linear: {out_features: 84}
    - Tanh:
    - Linear: {out_features: 10}
"""


def test_lenet5_matches_hand_written():
    reference = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )
    assert assert_counts(LENET5, reference) == {
        "conv1": 156, "conv2": 2416, "fc1": 48120, "fc2": 10164, "fc3": 850,
    }


RESNET_BASIC_BLOCK = """\
  input: [16, 8, 8]
  layers:
    - Conv2d: {out_channels: 16, kernel_size: 3, padding: 1, bias: false}
    - BatchNorm2d:
    - ReLU:
    - Conv2d: {out_channels: 16, kernel_size: 3, padding: 1, bias: false}
    - BatchNorm2d:
      name: residual
    - add:
      from: [residual, x]
    - ReLU:
"""


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock without downsampling, written out."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


def test_resnet_basic_block_matches_hand_written():
    counts = assert_counts(RESNET_BASIC_BLOCK, BasicBlock(16))
    assert counts == {"conv1": 2304, "bn1": 32, "conv2": 2304, "residual": 32}


LSTM_CLASSIFIER = """\
  input: [20, 8]
  layers:
    - LSTM: {hidden_size: 32, num_layers: 2, bidirectional: true, output: last}
    - Linear: {out_features: 5}
"""


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 32, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def test_lstm_classifier_matches_hand_written():
    assert assert_counts(LSTM_CLASSIFIER, LSTMClassifier()) == {"lstm1": 35840, "fc1": 325}


def test_rows_shapes_and_totals():
    _, summary = summary_of(RESNET_BASIC_BLOCK)
    assert [(row.name, row.type, row.shape, row.inputs) for row in summary.rows] == [
        ("x", "input", [16, 8, 8], []),
        ("conv1", "Conv2d", [16, 8, 8], ["x"]),
        ("bn1", "BatchNorm2d", [16, 8, 8], ["conv1"]),
        ("relu1", "ReLU", [16, 8, 8], ["bn1"]),
        ("conv2", "Conv2d", [16, 8, 8], ["relu1"]),
        ("residual", "BatchNorm2d", [16, 8, 8], ["conv2"]),
        ("add1", "add", [16, 8, 8], ["residual", "x"]),
        ("relu2", "ReLU", [16, 8, 8], ["add1"]),
    ]
    assert (summary.total_params, summary.trainable_params, summary.size_mb) == (4672, 4672, 4672 * 4 / 1e6)


def test_frozen_parameters_are_not_trainable():
    compiled, _ = summary_of(LSTM_CLASSIFIER)
    model = build_model(compiled)
    model.lstm1.requires_grad_(False)
    summary = summarize(compiled, model)
    assert (summary.total_params, summary.trainable_params, summary.non_trainable_params) == (36165, 325, 35840)


IRIS_TABLE = """\
Model: IrisMlp
=====================================
Layer (type)   Output shape   Param #
-------------------------------------
x (input)      [4]                  0
fc1 (Linear)   [10]                50
relu1 (ReLU)   [10]                 0
fc2 (Linear)   [3]                 33
=====================================
Total params: 83
Trainable params: 83
Non-trainable params: 0
Size (float32): 0.00 MB (332 bytes)"""


def test_iris_table(iris_spec):
    assert format_table(summarize(compile_spec(load_spec(iris_spec)))) == IRIS_TABLE


def test_a_graph_table_shows_connections():
    _, summary = summary_of(RESNET_BASIC_BLOCK)
    lines = format_table(summary).splitlines()
    assert lines[2].split() == ["Layer", "(type)", "Output", "shape", "Param", "#", "Connected", "to"]
    assert lines[10] == "add1 (add)               [16, 8, 8]           0   residual, x"


def test_inspect_prints_the_table(cli_runner, iris_spec):
    result = cli_runner.invoke(cli, ["inspect", str(iris_spec)])
    budget = ("training memory: at least 1.33 kB (weights, gradients, Adam state); "
              "budget: 1,000,000,000 parameters (0.00% used)")
    assert (result.exit_code, result.stdout) == (0, IRIS_TABLE + "\n" + budget + "\n")


def test_inspect_json(cli_runner, iris_spec):
    result = cli_runner.invoke(cli, ["inspect", str(iris_spec), "--json"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["layers"][1] == {
        "name": "fc1", "type": "Linear", "shape": [10], "dtype": "float32", "params": 50, "trainable": 50,
        "inputs": ["x"], "repeat": 1,
    }
    assert {k: v for k, v in document.items() if k != "layers"} == {
        "class_name": "IrisMlp", "outputs": ["fc2"], "total_params": 83, "trainable_params": 83,
        "non_trainable_params": 0, "size_mb": 0.000332, "max_parameters": 1_000_000_000,
    }


def test_inspect_a_broken_spec_exits_2(cli_runner, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nmodel:\n  input: [4]\n  layers:\n    - Conv2d: {out_channels: 2, kernel_size: 3}\n" + TAIL)
    result = cli_runner.invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:5:7: model.layers[0].Conv2d: Conv2d needs a per-sample input")



def test_every_example_rows_add_up_to_the_built_models_count():
    from conftest import EXAMPLES

    for path in sorted(EXAMPLES.glob("*.yaml")):
        compiled = compile_spec(load_spec(path))
        summary = summarize(compiled)
        built = count(build_model(compiled))
        assert (sum(row.params for row in summary.rows), summary.total_params) == (built, built), path.name


RESNET_BLOCKS = Path(__file__).resolve().parent.parent / "examples" / "resnet_blocks.yaml"


def test_a_repeated_block_shows_its_count_in_the_table(cli_runner):
    result = cli_runner.invoke(cli, ["inspect", str(RESNET_BLOCKS)])
    assert result.exit_code == 0
    rows = result.stdout.splitlines()[4:11]
    assert rows[3] == "layer1 (ResidualBlock x2)   [8, 16, 16]      2,368"
    assert rows[1] == "conv1 (Conv2d)              [8, 16, 16]        224"


def test_a_repeated_block_has_its_count_in_the_json(cli_runner):
    result = cli_runner.invoke(cli, ["inspect", str(RESNET_BLOCKS), "--json"])
    assert result.exit_code == 0
    layers = {row["name"]: row for row in json.loads(result.stdout)["layers"]}
    assert (layers["layer1"]["type"], layers["layer1"]["repeat"]) == ("ResidualBlock", 2)
    assert {row["repeat"] for name, row in layers.items() if name != "layer1"} == {1}
