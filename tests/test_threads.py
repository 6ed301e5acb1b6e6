"""train.threads / --threads: one thread for small models on the CPU, restored afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import specnn
from specnn.cli import cli
from specnn.runtime.train.threads import SMALL_MODEL, choose_threads

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CPU = torch.device("cpu")


@pytest.mark.parametrize("setting, device, parameters, environ, chosen", [
    ("auto", CPU, 83, {}, 1),                                   # iris: one thread
    ("auto", CPU, SMALL_MODEL, {}, None),                       # a big model keeps torch's default
    ("auto", CPU, 83, {"OMP_NUM_THREADS": "3"}, None),          # the user's environment wins
    ("auto", torch.device("cuda"), 83, {}, None),               # the GPU does the work
    (4, CPU, 83, {"OMP_NUM_THREADS": "3"}, 4),                  # an explicit count is set
])
def test_choose_threads(setting, device, parameters, environ, chosen):
    assert choose_threads(setting, device, parameters, environ) == chosen


def iris(tmp_path: Path, threads: str = "auto") -> Path:
    text = (EXAMPLES / "iris.yaml").read_text().replace("path: data/iris.csv", f"path: {EXAMPLES / 'data/iris.csv'}")
    text = text.replace("epochs: 60", "epochs: 2").replace("export: [state_dict, onnx]", "export: []")
    text = text.replace("  device: auto", f"  device: cpu\n  threads: {threads}")
    (tmp_path / "iris.yaml").write_text(text)
    return tmp_path / "iris.yaml"


def test_training_uses_the_chosen_threads_and_restores_torchs(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        specnn.train(specnn.load_spec(iris(tmp_path)), out=tmp_path / "auto", echo=lambda _: seen.append(
            torch.get_num_threads()))
        assert seen and set(seen) == {1}  # auto: iris has 83 parameters
        assert torch.get_num_threads() == 2
        seen.clear()
        specnn.train(specnn.load_spec(iris(tmp_path, "3")), out=tmp_path / "three", echo=lambda _: seen.append(
            torch.get_num_threads()))
        assert set(seen) == {3} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cli_threads_overrides_the_spec(tmp_path, cli_runner, monkeypatch):
    seen = []
    import specnn.launch as launch

    original = launch.train

    def spy(*args, **kwargs):
        seen.append(kwargs.get("threads"))
        return original(*args, **kwargs)

    monkeypatch.setattr(launch, "train", spy)
    result = cli_runner.invoke(cli, ["train", str(iris(tmp_path)), "--out", str(tmp_path / "run"), "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert seen == [2]
