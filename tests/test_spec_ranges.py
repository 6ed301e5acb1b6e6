"""Values that once passed validate and crashed training: each is a located problem before any work.

Ranges live in the schema (editors see them); what needs the model or the data is checked as soon
as that is known, before a file of the run is written.
"""

from __future__ import annotations

import keyword
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specnn.compiler import compile_spec
from specnn.compiler.names import MODULE_MEMBERS, RESERVED
from specnn.errors import SpecError
from specnn.spec.loader import load_spec_text

SPEC = textwrap.dedent(
    """\
    name: tiny
    seed: 0
    model: {input: [4], layers: [{Linear: {out_features: 3}}]}
    data: {synthetic: {shape: [4], classes: 3, samples: 20}}
    loss: {CrossEntropyLoss: }
    optimizer: {Adam: {lr: 1e-3}}
    train: {epochs: 1}
    """
)


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as raised:
        compile_spec(load_spec_text(text, file="s.yaml"))
    return [p.format() for p in raised.value.problems]


@pytest.mark.parametrize("old, new, expected", [
    ("seed: 0", "seed: -1", "s.yaml:2:7: seed: must be >= 0, got -1"),
    ("seed: 0", "seed: 4294967296", "s.yaml:2:7: seed: must be <= 4294967295, got 4294967296"),
    ("lr: 1e-3", "lr: .inf", "Input should be a finite number"),
    ("lr: 1e-3", "lr: 1e400", "Input should be a finite number"),
    ("{Adam: {lr: 1e-3}}", "{Adam: {lr: 1e-3, betas: [0.9, 1.0]}}", "must be < 1, got 1"),
    ("{Adam: {lr: 1e-3}}", "{Adam: {lr: 1e-3, betas: [.nan, 0.9]}}", "Input should be a finite number"),
    ("{Adam: {lr: 1e-3}}", "{SGD: {lr: 0.1, nesterov: true}}",
     "nesterov needs momentum > 0 and dampening 0, got momentum 0.0, dampening 0.0"),
    ("{CrossEntropyLoss: }", "{CrossEntropyLoss: {ignore_index: 1e30}}", "must be <= 9223372036854775807"),
    ("samples: 20", "samples: 20, seed: -5", "must be >= 0, got -5"),
])
def test_values_torch_would_refuse_are_located_problems(old, new, expected):
    assert old in SPEC
    [message] = problems(SPEC.replace(old, new))
    assert message.startswith("s.yaml:") and expected in message


@pytest.mark.parametrize("name, why", [
    ("class", "it is a Python keyword"), ("None", "it is a Python keyword"),
    ("nn", "generated code uses that name"), ("F", "generated code uses that name"),
    ("list", "it would shadow the builtin list"),
])
def test_a_class_name_that_would_break_the_generated_code_is_refused(name, why):
    [message] = problems(SPEC.replace("model: {", f"model: {{class_name: {name}, "))
    assert message.startswith("s.yaml:3:9: model.class_name: ") and why in message


def test_a_spec_name_that_is_a_keyword_still_gives_a_valid_class():
    spec = load_spec_text(SPEC.replace("name: tiny", "name: none"))
    assert spec.class_name == "NoneModel"


BAD_NODE_NAMES = sorted(RESERVED | {"_modules", "training", "forward"} | {"lambda", "def"})


@pytest.mark.parametrize("name", BAD_NODE_NAMES)
def test_a_node_name_that_would_break_the_generated_module_is_refused(name):
    [message] = problems(SPEC.replace("{Linear: {out_features: 3}}", f"{{Linear: {{out_features: 3}}, name: {name}}}"))
    assert message.startswith("s.yaml:3:") and "name" in message


identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and not keyword.issoftkeyword(n))


@settings(max_examples=25, deadline=None)
@given(class_name=identifiers, names=st.lists(identifiers, min_size=2, max_size=2, unique=True))
def test_generated_code_imports_and_runs_for_any_accepted_names(tmp_path_factory, class_name, names):
    text = SPEC.replace("model: {input: [4], layers: [{Linear: {out_features: 3}}]}", (
        f"model: {{class_name: {class_name}, input: [4], layers: [{{Linear: {{out_features: 3}}, name: {names[0]}}},"
        f" {{ReLU: , name: {names[1]}}}]}}"))
    try:
        compiled = compile_spec(load_spec_text(text))
    except SpecError:
        return  # refused with located problems: the other tests check their wording
    folder = tmp_path_factory.mktemp("generated")
    (folder / "model.py").write_text(compiled.source)
    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop("model", None)
        import model  # noqa: PLC0415 - the generated file itself
        import torch
        assert getattr(model, class_name)()(torch.zeros(2, 4)).shape == (2, 3)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("model", None)
    assert names[0] not in MODULE_MEMBERS


BIG = SPEC.replace("model: {input: [4], layers: [{Linear: {out_features: 3}}]}",
                   "model: {input: [100000], layers: [{Linear: {out_features: 100000}}, {ReLU: }, "
                   "{Linear: {out_features: 3}}]}").replace("shape: [4]", "shape: [100000]")


def test_a_model_over_the_parameter_budget_is_refused_at_its_largest_layer():
    [message] = problems(BIG)
    assert message == (
        "s.yaml:3:36: model.layers[0].Linear: the model has 10,000,400,003 parameters, more than "
        "train.max_parameters = 1,000,000,000 (training needs at least 160 GB); largest: fc1 (Linear) "
        "10,000,100,000, fc2 (Linear) 300,003 (make the largest layers smaller, or raise "
        "train.max_parameters (or --max-parameters))")


def test_the_budget_is_raised_by_the_spec_or_the_command_line(tmp_path, cli_runner):
    from specnn.cli import cli

    raised = BIG.replace("train: {epochs: 1}", "train: {epochs: 1, max_parameters: 2e10}")
    assert compile_spec(load_spec_text(raised)).graph.parameter_count() == 10_000_400_003
    path = tmp_path / "big.yaml"
    path.write_text(BIG)
    assert cli_runner.invoke(cli, ["validate", str(path)]).exit_code == 2
    result = cli_runner.invoke(cli, ["inspect", "--max-parameters", "20000000000", str(path)])
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == ("training memory: at least 160 GB (weights, gradients, Adam state); "
                                              "budget: 20,000,000,000 parameters (50.00% used)")


@pytest.mark.parametrize("old, new", [("lr: 1e-3", "lr: 1.5e98"), ("{Adam: {lr: 1e-3}}", "{Adam: {lr: 1e-3, eps: 1e39}}")])
def test_numbers_past_float32_are_refused_where_torch_would_overflow(old, new):
    [message] = problems(SPEC.replace(old, new))
    assert message.startswith("s.yaml:6:") and "must be within float32's range (magnitude at most 3.4e38), got " in message
