"""Every example validates and compiles; the data-source examples train an epoch from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from specnn.cli import cli
from specnn.compiler import build_model, compile_spec
from specnn.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ALL_EXAMPLES = sorted(EXAMPLES.glob("*.yaml"))
# Examples whose data needs no file: each trains one epoch through `specnn train` below.
TRAINED = ["digits_cnn.yaml", "lstm_sequences.yaml", "two_input_graph.yaml", "text_transformer.yaml", "text_cnn.yaml",
           "attention_pooling.yaml"]


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_and_compiles(example, cli_runner):
    result = cli_runner.invoke(cli, ["validate", str(example)])
    assert result.exit_code == 0, result.output
    compiled = compile_spec(load_spec(example))
    model = build_model(compiled)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_the_trained_examples_exist():
    assert {p.name for p in ALL_EXAMPLES} >= set(TRAINED)


def one_epoch_copy(example: Path, folder: Path) -> Path:
    """The example with one epoch and no exports (ONNX export is tested on its own), elsewhere.

    The examples trained here read no data files, so the copy needs nothing next to it.
    """
    document = yaml.safe_load(example.read_text())
    document.setdefault("train", {})["epochs"] = 1
    document["export"] = []
    copy = folder / example.name
    copy.write_text(yaml.safe_dump(document, sort_keys=False))
    return copy


@pytest.mark.parametrize("name", TRAINED)
def test_example_trains_one_epoch_from_the_cli(name, tmp_path, cli_runner):
    spec = one_epoch_copy(EXAMPLES / name, tmp_path)
    out = tmp_path / "run"
    result = cli_runner.invoke(cli, ["train", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "epoch  1/1  train_loss " in result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    meta = json.loads((out / "meta.json").read_text())
    compiled = compile_spec(load_spec(EXAMPLES / name))
    assert [i["name"] for i in meta["inputs"]] == list(compiled.inputs)


def example_inputs(compiled, batch: int = 3) -> list:
    """A batch for each model input: token ids in [0, 2) for int64 inputs, else random floats."""
    import torch

    torch.manual_seed(0)
    made = []
    for tensor_type in compiled.inputs.values():
        shape = (batch, *tensor_type.shape)
        if tensor_type.dtype == "int64":
            made.append(torch.randint(0, 2, shape))
        else:
            made.append(torch.randn(shape))
    return made


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda p: p.name)
def test_compiled_model_py_needs_only_torch_and_is_the_in_memory_model(example, tmp_path, cli_runner):
    import ast
    import importlib.util

    import torch

    result = cli_runner.invoke(cli, ["compile", str(example), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "model.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == {"torch"}
    compiled = compile_spec(load_spec(example))
    module_spec = importlib.util.spec_from_file_location(f"written_{example.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    written, built = getattr(module, compiled.class_name)(), build_model(compiled)
    assert list(written.state_dict()) == list(built.state_dict())
    written.load_state_dict(built.state_dict())
    written.eval(), built.eval()
    inputs = example_inputs(compiled)
    with torch.no_grad():
        ours, theirs = written(*inputs), built(*inputs)
    several = isinstance(ours, tuple)  # a model with several outputs returns one tensor per output
    assert several == (len(compiled.outputs) > 1)
    for a, b in zip(ours if several else (ours,), theirs if several else (theirs,)):
        assert torch.equal(a, b)
