"""Reading spec text: YAML 1.2 values, JSON positions, duplicate keys, files, and the public API."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest

from specnn.errors import Problem, SpecError
from specnn.spec.json_reader import read_json
from specnn.spec.loader import check_file, load_spec, load_spec_text
from specnn.spec.yaml_reader import read_yaml

VALID = textwrap.dedent(
    """\
    name: tiny
    model:
      input: [4]
      layers:
        - Linear: {out_features: 8}
        - ReLU:
        - Linear:
            out_features: 2
    data: {synthetic: {shape: [4]}}
    loss: {CrossEntropyLoss: }
    optimizer:
      SGD: {lr: 1e-3, momentum: .9, nesterov: TRUE}
    """
)


def errors_of(call) -> list[str]:
    with pytest.raises(SpecError) as raised:
        call()
    return [p.format() for p in raised.value.problems]


# ---------------------------------------------------------------------------------------------
# YAML values


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 0.001), ("1E5", 100000.0), (".5", 0.5), ("-2e-4", -0.0002), ("+3", 3), ("0x10", 16),
        ("0o17", 15), ("2.", 2.0), (".inf", math.inf), ("-.Inf", -math.inf),
        ("true", True), ("False", False), ("TRUE", True),
        ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("Off", "Off"),
        ("null", None), ("~", None), ("", None), ("'1e-3'", "1e-3"), ('"true"', "true"),
        ("!!str 3", "3"), ("!!float 1", 1.0), ("1_000", "1_000"),
    ],
)
def test_yaml_scalars_follow_the_yaml_1_2_core_schema(text, value):
    data = read_yaml(f"v: {text}\n").data["v"]
    assert data == value and type(data) is type(value)


def test_yaml_nan_is_a_float():
    assert math.isnan(read_yaml("v: .nan").data["v"])


def test_yaml_positions_of_values_and_keys_are_one_based():
    doc = read_yaml(VALID, "s.yaml")
    assert doc.values[("optimizer", "SGD", "momentum")] == (12, 29)
    assert doc.keys[("optimizer", "SGD", "momentum")] == (12, 19)
    assert doc.keys[("model", "layers", 2, "Linear")] == (7, 7)
    assert doc.values[("model", "layers", 2, "Linear", "out_features")] == (8, 23)
    assert doc.values[("model", "layers", 1)] == (6, 7)
    assert doc.values[()] == (1, 1)


def test_yaml_duplicate_key_is_a_problem_at_the_second_key():
    doc = read_yaml("train:\n  epochs: 3\n  epochs: 4\n", "d.yaml")
    assert doc.data == {"train": {"epochs": 3}}
    assert doc.problems == [
        Problem("duplicate-key", "duplicate key 'epochs'", ("train", "epochs"), file="d.yaml", line=3, col=3,
                hint="first given at line 2")
    ]


def test_yaml_anchors_aliases_and_merge_keys():
    doc = read_yaml("base: &b {lr: 0.1, eps: 1e-8}\ncopy: *b\nmerged:\n  <<: *b\n  lr: 0.5\n")
    assert doc.data["copy"] == {"lr": 0.1, "eps": 1e-8}
    assert doc.data["merged"] == {"lr": 0.5, "eps": 1e-8}


@pytest.mark.parametrize(
    "text, line",
    [
        ("a: !!python/object:os.system x\n", "f.yaml:1:4: unsupported tag '!!python/object:os.system'"),
        ("a: !custom 1\n", "f.yaml:1:4: unsupported tag '!custom'"),
        ("a: !!int x\n", "f.yaml:1:4: 'x' is not a valid !!int"),
        ("a: &x [*x]\n", "f.yaml:1:4: an alias refers to a node that contains it (recursive anchor)"),
        ("a: [1, 2\n", "f.yaml:2:1: invalid YAML: did not find expected ',' or ']'"
                       " (while parsing a flow sequence at line 1)"),
        ("a: b: c\n", "f.yaml:1:5: invalid YAML: mapping values are not allowed in this context"),
    ],
)
def test_yaml_errors_are_one_located_problem(text, line):
    with pytest.raises(SpecError) as raised:
        read_yaml(text, "f.yaml")
    assert [p.format() for p in raised.value.problems] == [line]
    assert raised.value.problems[0].code == "syntax"


# ---------------------------------------------------------------------------------------------
# JSON


def test_json_values_and_positions():
    doc = read_json('{\n  "a": [1, 2.5, -1e-3, true, null, "x\\u00e9"],\n  "b": {"c": {}}\n}', "j.json")
    assert doc.data == {"a": [1, 2.5, -0.001, True, None, "x\u00e9"], "b": {"c": {}}}
    assert type(doc.data["a"][0]) is int
    assert doc.values[("a", 2)] == (2, 17)
    assert doc.keys[("b", "c")] == (3, 9)
    assert doc.values[("b", "c")] == (3, 14)


def test_json_duplicate_key_is_a_problem_at_the_second_key():
    doc = read_json('{"lr": 1,\n "lr": 2}', "j.json")
    assert doc.data == {"lr": 1}
    assert [p.format() for p in doc.problems] == ["j.json:2:2: lr: duplicate key 'lr' (first given at line 1)"]


@pytest.mark.parametrize(
    "text, line",
    [
        ('{"a": 1,}', "j.json:1:9: invalid JSON: expected a key in double quotes"),
        ('{"a" 1}', "j.json:1:6: invalid JSON: expected ':' after a key, found '1'"),
        ('{"a": [1 2]}', "j.json:1:10: invalid JSON: expected ']' or ',' after a value in a list, found '2'"),
        ('{"a": "x', "j.json:1:7: invalid JSON: unterminated string"),
        ("{}\n{}", "j.json:2:1: invalid JSON: extra data after the document"),
        ("", "j.json:1:1: invalid JSON: expected a value, found the end of the file"),
    ],
)
def test_json_syntax_errors_are_one_located_problem(text, line):
    with pytest.raises(SpecError) as raised:
        read_json(text, "j.json")
    assert [p.format() for p in raised.value.problems] == [line]


@pytest.mark.parametrize("fmt, text", [("json", "[" * 5000 + "]" * 5000), ("yaml", "[" * 5000 + "]" * 5000)])
def test_absurd_nesting_is_a_problem_not_a_crash(fmt, text):
    with pytest.raises(SpecError) as raised:
        load_spec_text(text, file="deep", format=fmt)
    # Located inside the deep part (libyaml, which scans ahead of the composer, may meet its own
    # limit of 1000 levels first).
    problem, = raised.value.problems
    assert problem.message == "nested too deeply (more than 64 levels of lists and mappings)"
    assert problem.line == 1 and problem.col >= 65


# ---------------------------------------------------------------------------------------------
# The public API


def test_load_spec_text_builds_the_spec_and_keeps_locations():
    spec = load_spec_text(VALID, file="v.yaml")
    assert spec.optimizer.kind == "SGD"
    assert spec.optimizer.args.lr == 0.001 and spec.optimizer.args.momentum == 0.9
    assert spec.optimizer.args.nesterov is True
    assert spec.file == "v.yaml"
    assert spec.locate(("model", "layers", 2, "Linear")) == ("v.yaml", 7, 7)
    assert spec.locate(("model", "layers", 2, "Linear", "out_features")) == ("v.yaml", 8, 9)
    assert spec.locate(("model", "layers", 1)) == ("v.yaml", 6, 7)
    # A path the document does not hold (a default) falls back to its nearest located parent.
    assert spec.locate(("train", "epochs")) == ("v.yaml", 1, 1)


def test_load_spec_reads_the_example_and_sets_the_file(iris_spec):
    spec = load_spec(iris_spec)
    assert spec.file == str(iris_spec)
    assert spec.base_dir == iris_spec.parent
    assert spec.data.kind == "csv" and spec.export == ["state_dict", "onnx"]


def test_load_spec_reads_json_by_extension(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(
        '{"name": "tiny", "model": {"input": [4], "layers": [{"Linear": {"out_features": 2}}]},\n'
        ' "data": {"synthetic": {}}, "loss": {"MSELoss": null}, "optimizer": {"Adam": {"lr": 0.01}}}'
    )
    spec = load_spec(path)
    assert spec.loss.kind == "MSELoss" and spec.optimizer.args.lr == 0.01
    assert spec.locate(("data", "synthetic")) == (str(path), 2, 11)


def test_a_boolean_given_as_yes_gets_a_hint():
    text = VALID.replace("nesterov: TRUE", "nesterov: yes")
    assert errors_of(lambda: load_spec_text(text, file="s.yaml")) == [
        "s.yaml:12:43: optimizer.SGD.nesterov: expected a boolean, got string 'yes' (write true or false)"
    ]


def test_model_rules_are_checked_after_the_schema():
    two_types = VALID.replace("    - ReLU:\n", "    - ReLU:\n      Tanh:\n")
    assert errors_of(lambda: load_spec_text(two_types, file="s.yaml")) == [
        "s.yaml:6:7: model.layers[1]: needs exactly one layer type key, got ReLU, Tanh",
    ]
    no_input = VALID.replace("  input: [4]\n", "")
    assert errors_of(lambda: load_spec_text(no_input, file="s.yaml")) == [
        "s.yaml:2:1: model: give exactly one of 'input' (one tensor) or 'inputs' (named tensors)",
    ]
    no_layer_type = VALID.replace("    - ReLU:\n", "    - name: act\n")
    assert errors_of(lambda: load_spec_text(no_layer_type, file="s.yaml")) == [
        "s.yaml:6:7: model.layers[1]: needs exactly one layer type key, got none",
    ]


def test_a_missing_argument_of_a_null_layer_is_located_at_the_layer():
    text = VALID.replace("    - Linear:\n        out_features: 2\n", "    - Linear:\n")
    assert errors_of(lambda: load_spec_text(text, file="s.yaml")) == [
        "s.yaml:7:7: model.layers[2].Linear: missing required key 'out_features'"
    ]


def test_a_layer_with_no_arguments_refuses_one():
    text = VALID.replace("    - ReLU:\n", "    - ReLU: {inplace: true}\n")
    assert errors_of(lambda: load_spec_text(text, file="s.yaml")) == [
        "s.yaml:6:14: model.layers[1].ReLU.inplace: unknown argument 'inplace' "
        "(specnn writes no in-place layers: one could overwrite a tensor another node still reads)"
    ]


@pytest.mark.parametrize(
    "old, new, line",
    [
        ("SGD: {lr: 1e-3,", "SGD: {learning_rate: 1e-3,",
         "s.yaml:12:9: optimizer.SGD.learning_rate: unknown argument 'learning_rate' "
         "(it takes: lr, momentum, dampening, weight_decay, nesterov)"),
        ("    - ReLU:\n", "    - GELU: {mode: tanh}\n",
         "s.yaml:6:14: model.layers[1].GELU.mode: unknown argument 'mode' (it takes: approximate)"),
        ("    - ReLU:\n", "    - Tanh: {dim: 1}\n",
         "s.yaml:6:14: model.layers[1].Tanh.dim: unknown argument 'dim' (it takes no arguments)"),
        ("name: tiny", "name: tiny\nepochs: 3",
         "s.yaml:2:1: epochs: unknown key 'epochs' (known keys: specnn, name, seed, model, data, loss, "
         "optimizer, train, export, lint, sweep)"),
    ],
)
def test_an_unknown_key_too_far_from_any_lists_what_is_accepted(old, new, line):
    assert old in VALID
    assert errors_of(lambda: load_spec_text(VALID.replace(old, new), file="s.yaml")) == [line]


def test_a_misspelt_common_key_in_a_node_is_an_unknown_key():
    text = VALID.replace("    - ReLU:\n", "    - ReLU:\n      nmae: act\n")
    assert errors_of(lambda: load_spec_text(text, file="s.yaml")) == [
        "s.yaml:7:7: model.layers[1].nmae: unknown key 'nmae' (did you mean 'name'?)"
    ]


@pytest.mark.parametrize(
    "old, new, line",
    [
        ("    - ReLU:\n", "    - ReLU\n", "s.yaml:6:7: model.layers[1]: expected a mapping, got string 'ReLU' (write 'ReLU:' with a colon)"),
        ("input: [4]", "input: 4", "s.yaml:3:10: model.input: expected a list, got integer 4 (write a list: [4])"),
        ("input: [4]", "input: [4.5]", "s.yaml:3:11: model.input[0]: expected an integer, got number 4.5"),
        ("{CrossEntropyLoss: }", "{CrossEntropyLoss: 3}", "s.yaml:10:26: loss.CrossEntropyLoss: expected a mapping, got integer 3"),
        ("    - ReLU:\n", "    - ReLU:\n      from: 3\n", "s.yaml:7:13: model.layers[1].from: expected a string or a list, got integer 3"),
        ("data: {synthetic: {shape: [4]}}", "data: {synthetic: {shape: [4]}, npz: {path: x.npz}}",
         "s.yaml:9:1: data: needs exactly one data source key, got npz, synthetic"),
        ("name: tiny", "name: tiny\nspecnn: 2", "s.yaml:2:9: specnn: must be 1, got 2"),
        ("name: tiny", "name: tiny\ntrain: {lr: 3}", "s.yaml:2:9: train.lr: unknown key 'lr' (known keys: epochs, batch_size, device, shuffle, metrics, "
         "scheduler, clip_grad, accumulate, precision, compile, deterministic, early_stopping, checkpoint, tensorboard, distributed, "
         "max_parameters, threads)"),
        ("input: [4]", "inputs: {x: {shape: [4], dtype: float16}}",
         "s.yaml:3:35: model.inputs.x.dtype: must be 'float32', 'float64' or 'int64', got 'float16' (did you mean 'float64'?)"),
    ],
)
def test_type_and_value_messages(old, new, line):
    assert old in VALID
    assert errors_of(lambda: load_spec_text(VALID.replace(old, new), file="s.yaml")) == [line]


def test_a_document_that_is_not_a_mapping():
    assert errors_of(lambda: load_spec_text("- a\n- b\n", file="s.yaml")) == ["s.yaml:1:1: expected a mapping, got a list"]
    assert errors_of(lambda: load_spec_text("# only a comment\n", file="s.yaml")) == ["s.yaml:1:1: the spec is empty"]


@pytest.mark.parametrize(
    "name, setup, message, where",
    [
        ("missing.yaml", None, "no such file", {}),
        ("folder.yaml", "mkdir", "is a folder, not a spec file", {}),
        ("latin1.yaml", b"a: 1\nname: caf\xe9\n", "is not UTF-8 text (byte 0xe9)",
         dict(line=2, col=10, hint="save it as UTF-8")),
        ("spec.toml", b"name = 'x'\n", "cannot tell the format of '{path}': name it .yaml, .yml or .json", {}),
    ],
)
def test_unreadable_files_are_one_problem_naming_the_file(tmp_path, name, setup, message, where):
    path = tmp_path / name
    if setup == "mkdir":
        path.mkdir()
    elif setup is not None:
        path.write_bytes(setup)
    expected = [Problem("file", message.format(path=path), file=str(path), **where)]
    assert check_file(path) == expected
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert raised.value.problems == expected


def test_check_file_returns_nothing_for_a_valid_spec(iris_spec):
    assert check_file(iris_spec) == []


def test_checking_a_spec_does_not_import_torch(iris_spec):
    code = textwrap.dedent(
        f"""
        import sys
        from specnn.spec.loader import check_file, load_spec
        from specnn.spec.schema import json_schema
        load_spec({str(iris_spec)!r})
        assert check_file({str(iris_spec)!r}) == []
        json_schema()
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
