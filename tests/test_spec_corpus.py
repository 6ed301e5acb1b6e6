"""The broken-spec corpus: every file in tests/broken/ with the exact lines a user sees.

Each entry lists the rendered problems as ``LINE:COL: path: message (hint)``; the test prefixes the
file name. Schema and model problems come from ``check_file``/``load_spec``; the two shape entries
are the compiler's, checked through ``specnn validate`` by their location and message start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from specnn.errors import SpecError
from specnn.spec.loader import check_file, load_spec

BROKEN = Path(__file__).resolve().parent / "broken"

CORPUS: dict[str, list[str]] = {
    "yaml_syntax.yaml": [
        "5:3: invalid YAML: could not find expected ':' (while scanning a simple key)",
    ],
    "json_syntax.json": [
        "5:48: invalid JSON: expected a value, found ']'",
    ],
    "unknown_top_key.yaml": [
        "13:1: trian: unknown key 'trian' (did you mean 'train'?)",
    ],
    "misspelt_layer.yaml": [
        "8:7: model.layers[2].Linaer: unknown layer type 'Linaer' (did you mean 'Linear'?)",
    ],
    "misspelt_argument.yaml": [
        # Only the unknown argument: "missing out_features" would repeat the same mistake.
        "9:9: model.layers[2].Linear.out_feature: unknown argument 'out_feature' (did you mean 'out_features'?)",
    ],
    "argument_at_layer_indent.yaml": [
        "7:7: model.layers[0].out_features: 'out_features' is an argument of Linear but is written at the layer's "
        "own indent (nest it under the layer: '- Linear: {out_features: 10}', or indent it further than 'Linear:')",
        "10:7: model.layers[2].out_channels: 'out_channels' is an argument of Conv1d but is written at the layer's "
        "own indent (nest it under the layer: '- Conv1d: {out_channels: 3}', or indent it further than 'Conv1d:')",
        "11:7: model.layers[2].kernel_size: 'kernel_size' is an argument of Conv1d but is written at the layer's "
        "own indent (nest it under the layer: '- Conv1d: {kernel_size: [3]}', or indent it further than 'Conv1d:')",
    ],
    "wrong_type.yaml": [
        "14:11: train.epochs: expected an integer, got string '3' (remove the quotes)",
        "15:12: train.shuffle: expected a boolean, got string 'yes' (write true or false)",
    ],
    "negative_size.yaml": [
        "6:30: model.layers[0].Linear.out_features: must be > 0, got -3",
    ],
    "duplicate_key.yaml": [
        "14:5: optimizer.Adam.lr: duplicate key 'lr' (first given at line 13)",
    ],
    "missing_section.yaml": [
        "2:1: missing required key 'optimizer'",
        "8:3: data.csv: missing required key 'target'",
    ],
    "unknown_loss.yaml": [
        "10:3: loss.CrossEntropy: unknown loss 'CrossEntropy' (did you mean 'CrossEntropyLoss'?)",
    ],
    "unknown_optimizer.yaml": [
        "12:3: optimizer.Adamw: unknown optimizer 'Adamw' (did you mean 'AdamW'?)",
    ],
    "unknown_export.yaml": [
        "13:22: export[1]: must be 'state_dict', 'safetensors' or 'onnx', got 'onx' (did you mean 'onnx'?)",
    ],
    "two_layer_types.yaml": [
        "6:7: model.layers[0]: needs exactly one layer type key, got Linear, ReLU",
    ],
    "input_and_inputs.yaml": [
        "3:1: model: give exactly one of 'input' (one tensor) or 'inputs' (named tensors)",
    ],
    "many_problems.yaml": [
        "2:7: name: must be a run name (letters, digits, '.', '_' and '-', starting with a letter or digit),"
        " got 'iris mlp'",
        "4:14: model.input[1]: must be > 0, got 0",
        "6:40: model.layers[0].Linear.bias: expected a boolean, got string 'on' (write true or false)",
        "7:20: model.layers[1].Dropout.p: must be <= 1, got 1.5",
        "8:46: model.layers[2].Conv2d.kernel_size: expected an integer or a list, got string '3' (remove the quotes)",
        "11:3: data.validation_splt: unknown key 'validation_splt' (did you mean 'validation_split'?)",
        "13:33: loss.CrossEntropyLoss.reduction: must be 'mean', 'sum' or 'none', got 'avg'",
        "15:13: optimizer.SGD.lr: must be > 0, got 0",
        "15:26: optimizer.SGD.momentum: must be >= 0, got -0.9",
        "17:11: train.device: must be auto, cpu, mps, cuda or cuda:N, got 'gpu'",
    ],
    "json_unknown_key.json": [
        "6:39: model.layers[0].nmae: unknown key 'nmae' (did you mean 'name'?)",
        "11:39: optimizer.Adam.lr: duplicate key 'lr' (first given at line 11)",
        "12:23: train.epochs: must be > 0, got 0",
    ],
}

# Valid for the schema; the compiler's shape inference reports them: (location, message start).
SHAPE_CORPUS: dict[str, tuple[str, str]] = {
    "linear_after_conv.yaml": ("8:7: model.layers[2].Linear: ", "Linear got a 3-d per-sample input [8, 26, 26]"),
    "conv_on_vector.yaml": (
        "6:7: model.layers[0].Conv2d: ",
        "Conv2d needs a per-sample input of shape [channels, height, width], got [4]",
    ),
}


def expected_lines(name: str) -> list[str]:
    return [f"{BROKEN / name}:{line}" for line in CORPUS[name]]


def test_the_corpus_table_covers_every_broken_file():
    assert set(CORPUS) | set(SHAPE_CORPUS) == {p.name for p in BROKEN.iterdir()}
    assert len(CORPUS) + len(SHAPE_CORPUS) >= 15
    assert sum(name.endswith(".json") for name in CORPUS) >= 2


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_check_file_reports_every_problem_in_order(name):
    problems = check_file(BROKEN / name)
    assert [p.format() for p in problems] == expected_lines(name)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_load_spec_raises_the_same_problems(name):
    with pytest.raises(SpecError) as raised:
        load_spec(BROKEN / name)
    assert str(raised.value).splitlines() == expected_lines(name)


@pytest.mark.parametrize("name", sorted(SHAPE_CORPUS))
def test_shape_entries_pass_the_schema(name):
    assert check_file(BROKEN / name) == []


def _validate(name: str):
    from click.testing import CliRunner

    from specnn.cli import cli

    return CliRunner().invoke(cli, ["validate", str(BROKEN / name)])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_cli_validate_prints_one_problem_per_line_and_exits_2(name):
    result = _validate(name)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == expected_lines(name)


@pytest.mark.parametrize("name", sorted(SHAPE_CORPUS))
def test_cli_validate_reports_shape_mismatches_at_the_node(name):
    location, message_start = SHAPE_CORPUS[name]
    result = _validate(name)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith(f"{BROKEN / name}:{location}{message_start}")
