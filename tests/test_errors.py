"""The error record: one helper places a problem at the spec value it is about; one module words it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

from specnn.errors import DataError, Problem, RunError, SpecError, ToolError, locate, spec_problem
from specnn.errors.texts import EXTRAS, expected, install_hint, needs_extra, suggest
from specnn.spec.loader import load_spec_text

SPEC = textwrap.dedent(
    """\
    name: tiny
    model:
      input: [4]
      layers:
        - Linear: {out_features: 2}
    data: {synthetic: {shape: [4]}}
    loss: {CrossEntropyLoss: }
    optimizer:
      Adam:
        lr: 0.1
    train: {epochs: 3}
    """
)


@pytest.fixture(scope="module")
def spec():
    return load_spec_text(SPEC, file="tiny.yaml")


def test_spec_problem_places_a_mapping_entry_at_its_key(spec):
    problem = spec_problem(spec, ("optimizer", "Adam", "lr"), "too large for Adam", code="lr", hint="try 1e-3")
    assert problem == Problem("lr", "too large for Adam", ("optimizer", "Adam", "lr"), file="tiny.yaml", line=10,
                              col=5, hint="try 1e-3")
    assert problem.format() == "tiny.yaml:10:5: optimizer.Adam.lr: too large for Adam (try 1e-3)"


def test_spec_problem_can_place_a_wrong_value_at_the_value(spec):
    problem = spec_problem(spec, ("train", "epochs"), "must be even", code="value", key=False)
    assert problem.format() == "tiny.yaml:11:17: train.epochs: must be even"


def test_a_value_left_to_its_default_is_placed_at_its_nearest_written_parent(spec):
    assert spec_problem(spec, ("train", "batch_size"), "too big", code="v").format() == \
        "tiny.yaml:11:1: train.batch_size: too big"
    assert spec_problem(spec, ("lint", "ignore"), "unknown code", code="v").format() == \
        "tiny.yaml:1:1: lint.ignore: unknown code"


def test_a_spec_built_in_code_gives_unlocated_problems(spec):
    built = type(spec).model_validate(yaml.safe_load(SPEC))
    assert spec_problem(built, ("loss",), "no loss", code="loss").format() == "loss: no loss"
    assert spec_problem(None, ("loss",), "no loss", code="loss", severity="warning").format() == \
        "loss: warning: no loss"


def test_locate_places_problems_found_before_the_file_was_known(spec):
    found = [Problem("shape", "too wide", ("model", "layers", 0, "Linear")), Problem("data", "empty", ("data",))]
    assert [p.format() for p in locate(spec, found)] == [
        "tiny.yaml:5:7: model.layers[0].Linear: too wide",
        "tiny.yaml:6:1: data: empty",
    ]
    assert locate(None, found) == found
    in_a_data_file = Problem("data", "row 3: missing value", file="iris.csv")
    assert locate(spec, [in_a_data_file]) == [in_a_data_file]


def test_exit_status_says_whose_fault_it_is():
    assert [cls.exit_code for cls in (SpecError, DataError, RunError, ToolError)] == [2, 2, 2, 1]
    assert issubclass(ToolError, SpecError)  # `except SpecError` still sees every reported problem


# ---------------------------------------------------------------------------------------------
# the recurring words


@pytest.mark.parametrize(("word", "choices", "options", "hint"), [
    ("Linaer", ["Linear", "Conv2d"], {}, "did you mean 'Linear'?"),
    ("linear", ["Linear"], {}, "did you mean 'Linear'?"),
    ("chanels", ["channels"], {"prefix": "$"}, "did you mean '$channels'?"),
    ("zzz", ["fc1", "out"], {"listing": "known names"}, "known names: fc1, out"),
    ("zzz", ["fc1", "out"], {}, None),
    ("zzz", [], {"listing": "known names", "empty": "give the node a 'name' first"}, "give the node a 'name' first"),
    ("zzz", [], {"listing": "known names"}, None),
])
def test_suggest(word, choices, options, hint):
    assert suggest(word, choices, **options) == hint


@pytest.mark.parametrize(("wanted", "value", "text"), [
    ("an integer", "3", "expected an integer, got string '3'"),
    ("a JSON object", [1], "expected a JSON object, got a list"),
    ("a boolean", None, "expected a boolean, got null"),
    ("a state_dict", (1, 2), "expected a state_dict, got a list"),
    ("a state_dict", object(), "expected a state_dict, got an object"),
])
def test_expected(wanted, value, text):
    assert expected(wanted, value) == text


def test_needs_extra_names_the_missing_packages_and_the_install_command():
    assert needs_extra("ONNX export", "onnx") == (
        "ONNX export needs onnx, onnxscript and onnxruntime, which are not installed", 'pip install "specnn[onnx]"')
    assert needs_extra("ONNX export", "onnx", missing=["onnxruntime"]) == (
        "ONNX export needs onnxruntime, which is not installed", 'pip install "specnn[onnx]"')
    with pytest.raises(KeyError, match="no extra named 'onx'"):
        install_hint("onx")


def test_the_extras_table_is_pyproject():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["project"]["optional-dependencies"]
    names = {extra: tuple(_name(req) for req in reqs) for extra, reqs in declared.items()}
    assert set(EXTRAS) == set(declared) - {"dev", "onnxruntime"}  # onnxruntime: the onnx extra's earlier name
    assert names["onnxruntime"] == names["onnx"]
    for extra, packages in EXTRAS.items():
        assert names[extra] == packages, extra
        assert set(packages) <= {_name(req) for req in declared["dev"]}, f"dev lacks {extra}"


def _name(requirement: str) -> str:
    return requirement.split(">")[0].split("=")[0].split("[")[0].strip()


def test_plain_pytest_runs_the_docstring_examples():
    # README's test command is a bare `pytest`: it must collect specnn/'s doctests (these among them).
    root = Path(__file__).parents[1]
    assert "specnn" in tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"][
        "ini_options"]["testpaths"]
    listed = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider",
                             "specnn/errors/texts.py"], cwd=root, capture_output=True, text=True)
    assert "specnn/errors/texts.py::specnn.errors.texts.suggest" in listed.stdout.splitlines(), listed.stdout
