"""Lints: each code's full message (code, node, path, line, hint), its silencing, and its exit code."""

from __future__ import annotations

import numpy as np
import pytest

from specnn.catalog.lints import LINTS
from specnn.cli import cli
from specnn.compiler import compile_spec
from specnn.compiler.lints import RULES, check_output_classes, count_classes
from specnn.errors import SpecError
from specnn.spec.loader import load_spec_text


def spec_text(loss: str, model: str, ignore: str = "") -> str:
    """A spec whose model section starts on line 6 (its first layer is on line 9)."""
    lint = f"lint: {{ignore: [{ignore}]}}\n" if ignore else ""
    return f"""\
specnn: 1
name: t
data: {{csv: {{path: d.csv, target: y}}}}
loss: {{{loss}: }}
optimizer: {{Adam: {{lr: 0.01}}}}
model:
{model}{lint}"""


def lint_lines(loss: str, model: str, ignore: str = "") -> list[str]:
    """Every lint problem (error or warning) of a spec, formatted, in document order."""
    spec = load_spec_text(spec_text(loss, model, ignore), file="net.yaml")
    try:
        problems = compile_spec(spec).warnings
    except SpecError as error:
        problems = error.problems
    return [p.format() for p in problems if p.code in LINTS]


MLP_SOFTMAX = """\
  input: [4]
  layers:
    - Linear: {out_features: 8}
    - ReLU:
    - Linear: {out_features: 3}
    - Softmax: {dim: -1}
"""

MLP_SIGMOID = """\
  input: [4]
  layers:
    - Linear: {out_features: 8}
    - ReLU:
    - Linear: {out_features: 1}
    - Sigmoid:
"""

MLP_LOGITS = """\
  input: [4]
  layers:
    - Linear: {out_features: 8}
    - ReLU:
    - Linear: {out_features: 3}
"""

STACKED = """\
  input: [4]
  layers:
    - Linear: {out_features: 8}
    - Dropout: {p: 0.5}
    - Linear: {out_features: 3}
"""

TRAILING_DROPOUT = """\
  input: [4]
  layers:
    - Linear: {out_features: 8}
    - ReLU:
    - Linear: {out_features: 3}
    - Dropout: {p: 0.5}
"""

CHANNELS_LAST = """\
  input: [28, 28, 1]
  layers:
    - Conv2d: {out_channels: 6, kernel_size: 1}
    - ReLU:
    - Flatten:
    - Linear: {out_features: 10}
"""

# (code, loss, model, the full rendered lint line)
CASES = [
    ("S101", "CrossEntropyLoss", MLP_SOFTMAX,
     "net.yaml:12:7: model.layers[3].Softmax: [S101] Softmax 'softmax' produces the model output, but "
     "CrossEntropyLoss applies LogSoftmax itself (remove it: CrossEntropyLoss takes raw scores (logits))"),
    ("S102", "BCEWithLogitsLoss", MLP_SIGMOID,
     "net.yaml:12:7: model.layers[3].Sigmoid: [S102] Sigmoid 'sigmoid' produces the model output, but "
     "BCEWithLogitsLoss applies a sigmoid itself (remove it: BCEWithLogitsLoss takes raw scores (logits), "
     "or use BCELoss)"),
    ("S103", "BCELoss", MLP_LOGITS,
     "net.yaml:11:7: model.layers[2].Linear: [S103] BCELoss needs probabilities in [0, 1], but the model "
     "output comes from Linear 'fc2', not a Sigmoid (add '- Sigmoid:' as the last layer, or use "
     "BCEWithLogitsLoss without one (numerically safer))"),
    ("S104", "NLLLoss", MLP_LOGITS,
     "net.yaml:11:7: model.layers[2].Linear: [S104] NLLLoss needs log-probabilities, but the model output "
     "comes from Linear 'fc2', not a LogSoftmax (add '- LogSoftmax: {dim: -1}' as the last layer, or use "
     "CrossEntropyLoss without one)"),
    ("S105", "CrossEntropyLoss", STACKED,
     "net.yaml:11:7: model.layers[2].Linear: warning: [S105] Linear 'fc2' follows Linear 'fc1' with no "
     "nonlinearity between them: together they are one linear map (add an activation such as '- ReLU:' "
     "between them, or remove one)"),
    ("S106", "CrossEntropyLoss", TRAILING_DROPOUT,
     "net.yaml:12:7: model.layers[3].Dropout: warning: [S106] Dropout 'dropout1' is the last layer: it drops "
     "model outputs during training (move it before the last Linear layer, or remove it)"),
    ("S107", "CrossEntropyLoss", CHANNELS_LAST,
     "net.yaml:9:7: model.layers[0].Conv2d: warning: [S107] Conv2d 'conv1' reads input 'x' of shape "
     "[28, 28, 1], whose channel dimension looks last; Conv2d takes [channels, height, width] (if the data "
     "is [height, width, channels], add '- Permute: {dims: [2, 0, 1]}' before it to make it [1, 28, 28])"),
]


@pytest.mark.parametrize("code, loss, model, line", CASES, ids=[c[0] for c in CASES])
def test_lint_message(code, loss, model, line):
    assert lint_lines(loss, model) == [line]


@pytest.mark.parametrize("code, loss, model, line", CASES, ids=[c[0] for c in CASES])
def test_ignore_silences_the_lint(code, loss, model, line):
    assert lint_lines(loss, model, ignore=code) == []
    compile_spec(load_spec_text(spec_text(loss, model, ignore=code)))  # no SpecError


@pytest.mark.parametrize("code, loss, model, line", CASES, ids=[c[0] for c in CASES])
def test_specnn_validate(code, loss, model, line, tmp_path, cli_runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.yaml").write_text(spec_text(loss, model))
    result = cli_runner.invoke(cli, ["validate", "net.yaml"])
    if LINTS[code].severity == "error":
        assert (result.exit_code, result.stdout) == (2, "")
        assert line in result.stderr.splitlines()
    else:
        assert (result.exit_code, result.stdout, result.stderr) == (0, "net.yaml: ok\n", line + "\n")


def test_log_softmax_with_cross_entropy_suggests_nll_loss():
    model = MLP_LOGITS + "    - LogSoftmax: {dim: -1}\n"
    assert lint_lines("CrossEntropyLoss", model) == [
        "net.yaml:12:7: model.layers[3].LogSoftmax: [S101] LogSoftmax 'logsoftmax' produces the model output, "
        "but CrossEntropyLoss applies LogSoftmax itself (remove it, or use NLLLoss, which expects "
        "log-probabilities: CrossEntropyLoss takes raw scores (logits))"
    ]


def test_the_right_final_activation_is_clean():
    assert lint_lines("BCELoss", MLP_SIGMOID) == []
    assert lint_lines("NLLLoss", MLP_LOGITS + "    - LogSoftmax: {dim: -1}\n") == []
    assert lint_lines("CrossEntropyLoss", MLP_LOGITS) == []
    assert lint_lines("MSELoss", MLP_SOFTMAX) == []


def test_last_layer_is_the_output_node_not_the_last_in_the_list():
    # The Softmax is listed last but feeds nothing the model returns; 'logits' is the output.
    model = """\
  input: [4]
  layers:
    - Linear: {out_features: 3}
      name: logits
    - Softmax: {dim: -1}
      name: probabilities
  outputs: [logits]
"""
    assert lint_lines("CrossEntropyLoss", model) == []
    assert lint_lines("NLLLoss", model) == [
        "net.yaml:9:7: model.layers[0].Linear: [S104] NLLLoss needs log-probabilities, but the model output "
        "comes from Linear 'logits', not a LogSoftmax (add '- LogSoftmax: {dim: -1}' as the last layer, or use "
        "CrossEntropyLoss without one)"
    ]


def test_a_softmax_before_a_flatten_is_still_the_last_layer():
    model = """\
  input: [3]
  layers:
    - Softmax: {dim: -1}
    - Flatten:
"""
    assert [line.split(": [")[1][:4] for line in lint_lines("CrossEntropyLoss", model)] == ["S101"]


def test_a_norm_or_activation_between_linears_is_not_stacking():
    for between in ("    - ReLU:\n", "    - LayerNorm:\n", "    - Tanh:\n"):
        model = f"  input: [4]\n  layers:\n    - Linear: {{out_features: 8}}\n{between}    - Linear: {{out_features: 3}}\n"
        assert lint_lines("CrossEntropyLoss", model) == [], between


def test_stacked_linears_through_a_flatten_are_found():
    model = """\
  input: [2, 4]
  layers:
    - Linear: {out_features: 8}
    - Flatten:
    - Linear: {out_features: 3}
"""
    assert [line[:40] for line in lint_lines("CrossEntropyLoss", model)] == ["net.yaml:11:7: model.layers[2].Linear: w"]


def test_channels_first_input_is_clean():
    model = CHANNELS_LAST.replace("[28, 28, 1]", "[1, 28, 28]")
    assert lint_lines("CrossEntropyLoss", model) == []


CHANNELS_LAST_SHAPE_ERROR = CHANNELS_LAST.replace("[28, 28, 1]", "[32, 32, 3]").replace("kernel_size: 1", "kernel_size: 5")


def test_channels_last_hint_comes_with_a_shape_error():
    # [32, 32, 3] with a 5x5 kernel fails shape inference (width 3 < 5); the lint still runs, and
    # its warning (the likely cause) is reported next to the error, still as a warning.
    spec = load_spec_text(spec_text("CrossEntropyLoss", CHANNELS_LAST_SHAPE_ERROR), file="net.yaml")
    with pytest.raises(SpecError) as info:
        compile_spec(spec)
    assert [(p.code, p.severity) for p in info.value.problems] == [("shape", "error"), ("S107", "warning")]
    assert info.value.problems[1].format() == (
        "net.yaml:9:7: model.layers[0].Conv2d: warning: [S107] Conv2d 'conv1' reads input 'x' of shape "
        "[32, 32, 3], whose channel dimension looks last; Conv2d takes [channels, height, width] (if the data "
        "is [height, width, channels], add '- Permute: {dims: [2, 0, 1]}' before it to make it [3, 32, 32])")


def test_validate_prints_the_warning_with_the_error_and_exits_2(tmp_path, cli_runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.yaml").write_text(spec_text("CrossEntropyLoss", CHANNELS_LAST_SHAPE_ERROR))
    result = cli_runner.invoke(cli, ["validate", "net.yaml"])
    assert (result.exit_code, result.stdout) == (2, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("net.yaml:9:7: model.layers[0].Conv2d: ") and "warning" not in lines[0]
    assert lines[1].startswith("net.yaml:9:7: model.layers[0].Conv2d: warning: [S107] Conv2d 'conv1' reads input")


def test_every_lint_code_has_a_rule():
    # S108 is checked once data is read (check_output_classes), the others by RULES at compile time.
    assert {c[0] for c in CASES} | {"S108"} == set(LINTS)
    assert len(RULES) == 4


# ---------------------------------------------------------------------------------------------
# S108: known once the data is read


def compiled_mlp(ignore: str = ""):
    return compile_spec(load_spec_text(spec_text("CrossEntropyLoss", MLP_LOGITS, ignore), file="net.yaml"))


def test_output_classes_mismatch():
    problems = check_output_classes(compiled_mlp(), 10)
    assert [p.format() for p in problems] == [
        "net.yaml:11:7: model.layers[2].Linear: [S108] Linear 'fc2' gives 3 outputs per sample, but the data "
        "has 10 classes (set out_features: 10)"
    ]
    assert problems[0].severity == "error"


def test_output_classes_match_unknown_or_ignored():
    assert check_output_classes(compiled_mlp(), 3) == []
    assert check_output_classes(compiled_mlp(), None) == []
    assert check_output_classes(compiled_mlp(ignore="S108"), 10) == []


def test_output_classes_only_for_class_index_losses():
    compiled = compile_spec(load_spec_text(spec_text("MSELoss", MLP_LOGITS)))
    assert check_output_classes(compiled, 10) == []


def test_count_classes():
    assert count_classes(np.array([0, 1, 4]), None) == 5
    assert count_classes(np.array([1, 0]), ["setosa", "versicolor", "virginica"]) == 3
    assert count_classes(np.array([0.5, 2.0]), None) is None
    assert count_classes(np.array([-1, 2]), None) is None
    assert count_classes(np.array([[0, 1]]), None) is None


def test_training_stops_at_s108_once_the_data_is_read(iris_spec, tmp_path):
    from specnn.launch import train

    text = iris_spec.read_text().replace("out_features: 3}", "out_features: 4}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "iris.csv").write_bytes((iris_spec.parent / "data" / "iris.csv").read_bytes())
    (tmp_path / "iris.yaml").write_text(text)
    from specnn.spec.loader import load_spec

    with pytest.raises(SpecError) as info:
        train(load_spec(tmp_path / "iris.yaml"), out=tmp_path / "run", quiet=True)
    assert [p.format() for p in info.value.problems] == [
        f"{tmp_path / 'iris.yaml'}:11:7: model.layers[2].Linear: [S108] Linear 'fc2' gives 4 outputs per sample, "
        "but the data has 3 classes (set out_features: 3)"
    ]
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# inside block bodies: S105 and S107 run over every block instance

BLOCKS = """\
  input: [28, 28, 1]
  blocks:
    Stem:
      layers:
        - Conv2d: {out_channels: 4, kernel_size: 1}
        - Flatten:
    Head:
      params: {width: 8}
      layers:
        - Linear: {out_features: $width}
        - Dropout: {p: 0.1}
        - Linear: {out_features: 3}
  layers:
    - block: Stem
    - block: Head
      repeat: 2
      params: {width: 16}
"""


def test_lints_look_inside_blocks_at_the_definition_naming_the_use():
    assert lint_lines("CrossEntropyLoss", BLOCKS) == [
        "net.yaml:11:11: model.blocks.Stem.layers[0].Conv2d: warning: [S107] in block Stem used as 'block1' "
        "(model.layers[0]): Conv2d 'conv1' reads input 'x' of shape [28, 28, 1], whose channel dimension looks "
        "last; Conv2d takes [channels, height, width] (if the data is [height, width, channels], add "
        "'- Permute: {dims: [2, 0, 1]}' before it to make it [1, 28, 28])",
        # repeat: 2 gives two instances with the same problem: reported once
        "net.yaml:18:11: model.blocks.Head.layers[2].Linear: warning: [S105] in block Head used as 'layer1' "
        "(model.layers[1]): Linear 'fc2' follows Linear 'fc1' with no nonlinearity between them: together they "
        "are one linear map (add an activation such as '- ReLU:' between them, or remove one)",
    ]
    assert lint_lines("CrossEntropyLoss", BLOCKS, ignore="S105, S107") == []


def test_a_block_inside_a_block_is_linted_and_each_use_is_named():
    model = BLOCKS.replace("""    Head:
      params""", """    Outer:
      layers:
        - block: Head
          params: {width: 4}
    Head:
      params""").replace("    - block: Head\n      repeat: 2\n      params: {width: 16}\n", "    - block: Outer\n")
    assert [line.split(": [S105] ")[1].split(": Linear")[0] for line in lint_lines("CrossEntropyLoss", model)
            if "[S105]" in line] == ["in block Outer used as 'block2' (model.layers[1]): in block Head used as "
                                     "'block1' (model.blocks.Outer.layers[0])"]


def test_a_block_ending_in_dropout_or_softmax_is_not_the_model_output():
    model = """\
  input: [4]
  blocks:
    Hidden:
      layers:
        - Linear: {out_features: 8}
        - Softmax: {dim: -1}
        - Dropout: {p: 0.1}
  layers:
    - block: Hidden
    - Linear: {out_features: 3}
"""
    assert lint_lines("CrossEntropyLoss", model) == []


FEATURE_MAP_BLOCK = """\
  input: [3, 16, 16]
  blocks:
    ConvBlock:
      layers:
        - Conv2d: {out_channels: 32, kernel_size: 3, padding: 1}
        - ReLU:
  layers:
    - Conv2d: {out_channels: 32, kernel_size: 4, stride: 4}
    - block: ConvBlock
    - Flatten:
    - Linear: {out_features: 3}
"""


def test_channels_last_judges_only_a_model_input_not_a_feature_map_inside_a_block():
    # The block's input is a [32, 4, 4] feature map (32 channels of 4x4), not an image.
    assert lint_lines("CrossEntropyLoss", FEATURE_MAP_BLOCK) == []
    # The same block fed the model input [16, 16, 3] directly is warned, naming the use.
    direct = FEATURE_MAP_BLOCK.replace("[3, 16, 16]", "[16, 16, 3]").replace(
        "    - Conv2d: {out_channels: 32, kernel_size: 4, stride: 4}\n", "")
    assert [line.split("[S107] ")[1][:64] for line in lint_lines("CrossEntropyLoss", direct)] == [
        "in block ConvBlock used as 'block1' (model.layers[0]): Conv2d 'c"]
