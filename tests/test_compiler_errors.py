"""Compile-time problems: every one reported, with its message, JSON path, line and column."""

from __future__ import annotations

import pytest

from specnn.compiler import compile_spec
from specnn.errors import SpecError
from specnn.spec.loader import load_spec_text

HEAD = """\
specnn: 1
name: t
data: {csv: {path: d.csv, target: y}}
loss: {CrossEntropyLoss: }
optimizer: {Adam: {lr: 0.01}}
model:
"""


def problems(model_yaml: str) -> list[tuple[str, str, tuple, int, int]]:
    """Compile HEAD + the model section; return (code, formatted, path, line, col) per problem."""
    spec = load_spec_text(HEAD + model_yaml, file="net.yaml")
    with pytest.raises(SpecError) as info:
        compile_spec(spec)
    return [(p.code, p.format(), p.path, p.line, p.col) for p in info.value.problems]


def test_conv2d_fed_a_vector():
    found = problems("""\
  input: [4]
  layers:
    - Conv2d: {out_channels: 6, kernel_size: 3}
""")
    assert found == [(
        "shape",
        "net.yaml:9:7: model.layers[0].Conv2d: Conv2d needs a per-sample input of shape "
        "[channels, height, width], got [4] (declare the input with a channel dimension, or add an Unflatten layer)",
        ("model", "layers", 0, "Conv2d"), 9, 7,
    )]


def test_linear_after_conv2d_without_flatten():
    found = problems("""\
  input: [1, 28, 28]
  layers:
    - Conv2d: {out_channels: 16, kernel_size: 5}
    - ReLU:
    - MaxPool2d: {kernel_size: 2}
    - Linear: {out_features: 10}
""")
    assert found == [(
        "shape",
        "net.yaml:12:7: model.layers[3].Linear: Linear got a 3-d per-sample input [16, 12, 12] "
        "but acts on the last dimension only (add a Flatten layer before this Linear)",
        ("model", "layers", 3, "Linear"), 12, 7,
    )]


def test_in_features_given_but_wrong_and_later_problems_reported_too():
    found = problems("""\
  input: [4]
  layers:
    - Linear: {in_features: 5, out_features: 8}
    - ReLU:
    - Linear: {out_features: 3}
      from: hiden
    - Conv2d: {out_channels: 2, kernel_size: 1}
""")
    assert found == [
        ("shape",
         "net.yaml:9:7: model.layers[0].Linear: Linear: in_features=5 but the input has 4 "
         "(remove in_features (it is inferred) or set it to 4)",
         ("model", "layers", 0, "Linear"), 9, 7),
        # a warning goes with the errors: the broken `from` leaves the ReLU's output unused
        ("unused",
         "net.yaml:10:7: model.layers[1].ReLU: warning: the output of ReLU 'relu1' is never used (feed it to a "
         "later node with 'from', or list it in 'outputs')",
         ("model", "layers", 1, "ReLU"), 10, 7),
        ("unknown-name",
         "net.yaml:12:7: model.layers[2].from: 'from' names 'hiden' but no input or earlier node has that name "
         "(known names: x)",
         ("model", "layers", 2, "from"), 12, 7),
    ]


def test_names_duplicate_reserved_and_unknown_outputs():
    found = problems("""\
  input: [4]
  layers:
    - Linear: {out_features: 8}
      name: hidden
    - ReLU:
      name: hidden
    - Linear: {out_features: 3}
      name: eval
  outputs: [hiden]
""")
    assert [(code, text) for code, text, *_ in found] == [
        ("duplicate-name", "net.yaml:12:7: model.layers[1].name: name 'hidden' is already used by an earlier node or input"),
        ("unused", "net.yaml:13:7: model.layers[2].Linear: warning: the output of Linear 'fc1' is never used "
                   "(feed it to a later node with 'from', or list it in 'outputs')"),
        ("name", "net.yaml:14:7: model.layers[2].name: name 'eval' is reserved in a generated nn.Module "
                 "(choose another name, e.g. 'eval_layer')"),
        ("unknown-name", "net.yaml:15:13: model.outputs[0]: output 'hiden' is not an input or a named node "
                         "(did you mean 'hidden'?)"),
    ]


def test_integer_input_into_a_float_layer():
    found = problems("""\
  inputs:
    tokens: {shape: [12], dtype: int64}
  layers:
    - Linear: {out_features: 3}
""")
    assert found == [(
        "dtype",
        "net.yaml:10:7: model.layers[0].Linear: Linear needs floating-point input, but 'tokens' is int64 "
        "(an int64 input (token ids) needs an Embedding layer first)",
        ("model", "layers", 0, "Linear"), 10, 7,
    )]


def test_a_node_after_a_failed_one_is_not_reported_again():
    found = problems("""\
  input: [4]
  layers:
    - Conv2d: {out_channels: 6, kernel_size: 3}
    - Linear: {out_features: 3}
""")
    assert [path for _, _, path, _, _ in found] == [("model", "layers", 0, "Conv2d")]


def test_unused_nodes_are_warnings_and_the_resolved_spec_keeps_from():
    spec = load_spec_text(HEAD + """\
  input: [4]
  layers:
    - Linear: {out_features: 8}
      name: hidden
    - Linear: {out_features: 2}
      name: dead
    - Linear: {out_features: 3}
      from: hidden
lint: {ignore: [S105]}  # hidden -> dead is two stacked Linears; this test is about 'unused'
""", file="net.yaml")
    compiled = compile_spec(spec)
    assert [w.format() for w in compiled.warnings] == [
        "net.yaml:11:7: model.layers[1].Linear: warning: the output of Linear 'dead' is never used "
        "(feed it to a later node with 'from', or list it in 'outputs')",
    ]
    assert compiled.resolved_spec()["model"]["layers"][2] == {
        "Linear": {"in_features": 8, "out_features": 3}, "from": "hidden",
    }


def test_a_cycle_through_from_is_an_error_naming_the_nodes_and_line():
    found = problems("""\
  inputs:
    a: {shape: [5]}
  layers:
    - concat: {dim: 0}
      name: fa
      from: [a, fb]
    - Linear: {out_features: 8}
      name: fb
      from: fa
    - ReLU:
    - Linear: {out_features: 3}
""")
    assert [(code, text) for code, text, *_ in found] == [(
        "cycle",
        "net.yaml:12:7: model.layers[0].from: 'from' names 'fb', which reads this node: "
        "the cycle fa -> fb -> fa (a node reads only model inputs and earlier nodes: break the cycle)",
    )]


def test_a_cycle_through_unnamed_nodes_lists_them_by_position():
    found = problems("""\
  input: [4]
  layers:
    - Linear: {out_features: 8}
      name: fa
      from: fb
    - ReLU:
    - Linear: {out_features: 8}
      name: fb
""")
    assert [(code, text) for code, text, *_ in found] == [(
        "cycle",
        "net.yaml:11:7: model.layers[0].from: 'from' names 'fb', which reads this node: "
        "the cycle fa -> fb -> layers[1] -> fa (a node reads only model inputs and earlier nodes: break the cycle)",
    )]


def test_reading_a_later_node_or_itself_is_an_error():
    found = problems("""\
  input: [4]
  layers:
    - Linear: {out_features: 8}
      name: first
      from: [x, later]
    - Linear: {out_features: 8}
      name: loop
      from: loop
    - Linear: {out_features: 3}
      name: later
      from: x
  outputs: [first, later]
lint: {ignore: [S105]}
""")
    assert [(code, text) for code, text, *_ in found] == [
        ("order", "net.yaml:11:7: model.layers[0].from: 'from' names 'later', which comes later "
                  "(model.layers[2]) (move this node after 'later': a node reads only model inputs and earlier nodes)"),
        ("cycle", "net.yaml:14:7: model.layers[1].from: 'from' names 'loop', the node itself "
                  "(a node reads only model inputs and earlier nodes: break the cycle)"),
    ]


def test_an_unused_model_input_is_an_error_naming_the_input_and_line():
    found = problems("""\
  inputs:
    a: {shape: [5]}
    b: {shape: [7]}
  layers:
    - Linear: {out_features: 3}
      from: a
""")
    assert [(code, text, line) for code, text, _, line, _ in found] == [(
        "unused",
        "net.yaml:9:5: model.inputs.b: input 'b' is never used (feed it to a node with 'from', "
        "list it in 'outputs', or remove it from 'inputs')",
        9,
    )]
