"""--checkpoint best|last: evaluate, predict and export a checkpoint's weights instead of weights.pt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import specnn
from specnn.cli import cli
from specnn.errors import RunError
from specnn.runtime.runs.run import load_run
from specnn.runtime.train.checkpoint import load_checkpoint

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IRIS_CSV = EXAMPLES / "data" / "iris.csv"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoints")
    text = (EXAMPLES / "iris.yaml").read_text().replace("path: data/iris.csv", f"path: {IRIS_CSV}")
    text = text.replace("epochs: 60", "epochs: 4").replace("export: [state_dict, onnx]", "export: []")
    (folder / "iris.yaml").write_text(text + "\n")
    specnn.train(specnn.load_spec(folder / "iris.yaml"), out=folder / "run", quiet=True)
    return folder / "run"


def same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_load_run_takes_a_checkpoints_weights_and_says_which(run_dir):
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    run = load_run(run_dir, "last")
    assert same(run.model.state_dict(), last["model"])
    assert (run.meta["checkpoint"], run.meta["checkpoint_epoch"]) == ("last", 4)
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert same(load_run(run_dir, "best").model.state_dict(), best["model"])
    assert "checkpoint" not in load_run(run_dir).meta


def test_cli_evaluate_predict_and_export_take_the_checkpoint(run_dir, cli_runner, tmp_path):
    best_epoch = load_checkpoint(run_dir / "checkpoints" / "best.pt")["epoch"]
    result = cli_runner.invoke(cli, ["evaluate", str(run_dir), "--checkpoint", "best", "--json"])
    assert result.exit_code == 0, result.output
    assert f"using checkpoints/best.pt (epoch {best_epoch})" in result.output
    result = cli_runner.invoke(cli, ["predict", str(run_dir), str(IRIS_CSV), "--checkpoint", "last",
                                     "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.csv").read_text() == specnn.predict(load_run(run_dir, "last"), IRIS_CSV).to_csv()
    result = cli_runner.invoke(cli, ["export", str(run_dir), "--format", "state_dict", "--checkpoint", "last"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"exported state_dict to {run_dir / 'model-last.pt'}"
    exported = torch.load(run_dir / "model-last.pt", weights_only=True)
    assert same(exported, load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])


def test_a_missing_checkpoint_is_a_run_error_naming_the_file(run_dir, tmp_path, cli_runner):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "checkpoints" / "best.pt").unlink()
    with pytest.raises(RunError) as info:
        load_run(copy, "best")
    assert str(info.value) == (f"{copy / 'checkpoints' / 'best.pt'}: checkpoint not found (a run keeps best.pt and "
                               "last.pt only when it wrote checkpoints)")
    result = cli_runner.invoke(cli, ["predict", str(copy), str(IRIS_CSV), "--checkpoint", "best"])
    assert result.exit_code == 2
