"""Building: the generated module against hand-written PyTorch, model.py on disk, tracebacks."""

from __future__ import annotations

import importlib.util
import traceback

import pytest
import torch
from torch import nn

from specnn.compiler import build_model, compile_spec, write_model_py
from specnn.compiler.build import source_filename
from specnn.spec.models import Spec

LENET_LAYERS = [
    {"Conv2d": {"out_channels": 6, "kernel_size": 5, "padding": 2}},
    {"ReLU": None},
    {"MaxPool2d": {"kernel_size": 2}},
    {"Conv2d": {"out_channels": 16, "kernel_size": 5}},
    {"ReLU": None},
    {"MaxPool2d": {"kernel_size": 2}},
    {"Flatten": None},
    {"Linear": {"out_features": 120}},
    {"ReLU": None},
    {"Linear": {"out_features": 84}},
    {"ReLU": None},
    {"Linear": {"out_features": 10}},
]


def spec_of(model: dict, name: str = "lenet") -> Spec:
    return Spec.model_validate({
        "name": name,
        "model": model,
        "data": {"csv": {"path": "d.csv", "target": "y"}},
        "loss": {"CrossEntropyLoss": None},
        "optimizer": {"Adam": {"lr": 0.01}},
    })


class HandLeNet(nn.Module):
    """What a person writes for the same network."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


@pytest.fixture(scope="module")
def lenet():
    return compile_spec(spec_of({"input": [1, 28, 28], "layers": LENET_LAYERS}))


def test_lenet_infers_input_dependent_arguments(lenet):
    resolved = [(n.name, n.args.model_dump(include={"in_channels", "in_features"}), n.shape) for n in lenet.graph.nodes]
    assert resolved == [
        ("conv1", {"in_channels": 1}, (6, 28, 28)),
        ("relu1", {}, (6, 28, 28)),
        ("pool1", {}, (6, 14, 14)),
        ("conv2", {"in_channels": 6}, (16, 10, 10)),
        ("relu2", {}, (16, 10, 10)),
        ("pool2", {}, (16, 5, 5)),
        ("flatten", {}, (400,)),
        ("fc1", {"in_features": 400}, (120,)),
        ("relu3", {}, (120,)),
        ("fc2", {"in_features": 120}, (84,)),
        ("relu4", {}, (84,)),
        ("fc3", {"in_features": 84}, (10,)),
    ]
    assert lenet.outputs == {"fc3": (10,)}


def test_lenet_matches_torch_shape_parameters_and_outputs(lenet):
    model, hand = build_model(lenet), HandLeNet()
    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        getattr(model, name).load_state_dict(getattr(hand, name).state_dict())
    x = torch.randn(3, 1, 28, 28)
    out = model(x)
    assert out.shape == (3, *lenet.outputs["fc3"])
    assert torch.equal(out, hand(x))
    assert lenet.parameter_count() == sum(p.numel() for p in hand.parameters()) == 61706
    out.sum().backward()
    hand(x).sum().backward()
    assert torch.equal(model.fc1.weight.grad, hand.fc1.weight.grad)


def test_written_model_py_is_the_same_module(lenet, tmp_path):
    path = write_model_py(lenet, tmp_path / "run")
    assert path == tmp_path / "run" / "model.py"
    module_spec = importlib.util.spec_from_file_location("written_lenet", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    written, built = module.Lenet(), build_model(lenet)
    assert list(written.state_dict()) == list(built.state_dict())
    written.load_state_dict(built.state_dict())
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(written(x), built(x))


def test_resolved_spec_fills_inferred_arguments(lenet):
    resolved = lenet.resolved_spec()
    assert resolved["specnn"] == 1
    assert resolved["model"]["layers"][:2] == [
        {"Conv2d": {"in_channels": 1, "out_channels": 6, "kernel_size": 5, "padding": 2}},
        {"ReLU": {}},
    ]
    assert resolved["model"]["layers"][7] == {"Linear": {"in_features": 400, "out_features": 120}}
    assert resolved["optimizer"] == {"Adam": {"lr": 0.01}}
    # The resolved spec is itself a valid spec that compiles to the same source.
    assert compile_spec(Spec.model_validate(resolved)).source == lenet.source


def test_traceback_inside_forward_shows_the_generated_line(lenet):
    model = build_model(lenet)
    with pytest.raises(RuntimeError) as info:
        model(torch.randn(2, 3, 28, 28))  # three channels where one is declared
    generated = [f for f in traceback.extract_tb(info.tb) if f.filename == source_filename(lenet)]
    # The line text comes from linecache: the source was registered under the fake file name.
    assert [(f.name, f.lineno, f.line) for f in generated] == [
        ("forward", lenet.forward_lines["conv1"], "x = self.conv1(x)  # (N, 6, 28, 28)"),
    ]


def test_build_model_accepts_a_spec_and_builds_fresh_modules():
    spec = spec_of({"input": [4], "layers": [{"Linear": {"out_features": 2}}]}, name="tiny")
    first, second = build_model(spec), build_model(spec)
    assert type(first).__name__ == "Tiny" and first is not second
    assert first.training


def test_a_thousand_nodes_compile_with_unique_names():
    layers = [{"Linear": {"out_features": 8}}, {"ReLU": None}] * 500
    compiled = compile_spec(spec_of({"input": [8], "layers": layers}, name="deep"))
    names = [n.name for n in compiled.graph.nodes]
    assert len(set(names)) == 1000 and names[-2:] == ["fc500", "relu500"]
    assert compiled.forward_lines["relu500"] == compiled.source.count("\n") - 1


def test_a_layer_torch_cannot_build_is_a_located_problem_not_a_traceback():
    from specnn.errors import SpecError
    from specnn.spec.loader import load_spec_text

    spec = load_spec_text(
        "name: huge\n"
        "model:\n"
        "  input: [4]\n"
        "  layers:\n"
        "    - Linear: {out_features: 10}\n"
        "    - ReLU:\n"
        "    - Linear: {out_features: 99999999999999999999}\n"
        "data: {synthetic: {shape: [4]}}\n"
        "loss: {MSELoss: }\n"
        "optimizer: {SGD: }\n",
        file="huge.yaml",
    )
    with pytest.raises(SpecError) as raised:
        build_model(spec)
    (problem,) = raised.value.problems
    # The parameter budget refuses it before torch is asked (torch failed with "empty(): argument 'size'").
    assert problem.format().startswith(
        "huge.yaml:7:7: model.layers[2].Linear: the model has 1,100,000,000,000,000,000,039 parameters"
    )
    assert problem.code == "budget"
