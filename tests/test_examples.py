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
TRAINED = ["digits_cnn.yaml", "lstm_sequences.yaml", "two_input_graph.yaml", "text_transformer.yaml"]


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
