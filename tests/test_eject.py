"""specnn eject: the ejected project trains to weights equal to specnn's, bit for bit, on the CPU.

Every example (two epochs) and four specs that between them turn on each ``train:`` feature
(tests/eject/*.yaml) are trained by specnn and by the ejected ``train.py``; the weights, the
epochs trained and the logged losses must be equal. The ejected files import no specnn and pass
pyflakes (ruff's F rules).
"""

from __future__ import annotations

import importlib.util
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import specnn
from specnn.cli import cli
from specnn.runtime.runs.eject import eject

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FEATURES = ROOT / "tests" / "eject"


def write_table(folder: Path) -> None:
    """A 60-row CSV with two numeric and two categorical feature columns and a 3-class label."""
    rng = np.random.default_rng(0)
    rows = ["a,b,color,size,label"]
    for _ in range(60):
        a, b = rng.normal(size=2)
        color, size = rng.choice(["red", "green", "blue"]), rng.choice(["S", "M", "L"])
        label = ["no", "yes", "maybe"][int(a + (color == "red") > 0.3) + int(b > 0.8)]
        rows.append(f"{a:.4f},{b:.4f},{color},{size},{label}")
    (folder / "table.csv").write_text("\n".join(rows) + "\n")


def write_points(folder: Path) -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(90, 5)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(np.int64)
    np.savez(folder / "points.npz", features=features, labels=labels)


def spec_copy(source: Path, folder: Path, epochs: int | None = None) -> Path:
    """``source`` written into ``folder`` (data files it reads beside it), no exports, maybe fewer epochs."""
    document = yaml.safe_load(source.read_text())
    if epochs is not None:
        document["train"]["epochs"] = epochs
    document["export"] = []
    csv = document["data"].get("csv")
    if csv and (source.parent / csv["path"]).is_file():
        csv["path"] = str((source.parent / csv["path"]).resolve())
    write_table(folder)
    write_points(folder)
    copy = folder / source.name
    copy.write_text(yaml.safe_dump(document, sort_keys=False))
    return copy


def run_ejected(project: Path) -> None:
    """``python train.py`` in this process (torch is imported already), with specnn unimportable."""
    saved = {name: sys.modules.pop(name, None) for name in ("data", "model")}
    sys.path.insert(0, str(project))
    blocked = {name: sys.modules[name] for name in list(sys.modules) if name.split(".")[0] == "specnn"}
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # `import specnn` raises ImportError
    try:
        runpy.run_path(str(project / "train.py"), run_name="__main__")
    finally:
        sys.modules.update(blocked)
        sys.path.remove(str(project))
        for name, module in saved.items():
            sys.modules.pop(name, None)
            if module is not None:
                sys.modules[name] = module


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_training(run: Path, project: Path) -> None:
    ours, theirs = torch.load(run / "weights.pt"), torch.load(project / "weights.pt")
    assert list(ours) == list(theirs)
    unequal = [name for name in ours if not torch.equal(ours[name], theirs[name])]
    assert not unequal, f"weights differ: {unequal}"
    specnn_log, ejected_log = records(run / "metrics.jsonl"), records(project / "metrics.jsonl")
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    # every class metric and loss is equal; regression metrics are summed in another order
    exact = lambda rs: [{k: v for k, v in r.items() if not k.endswith(("_mse", "_mae", "_r2"))} for r in strip(rs)]  # noqa: E731
    assert exact(specnn_log) == exact(ejected_log)
    for ours_record, their_record in zip(strip(specnn_log), strip(ejected_log)):
        assert ours_record == pytest.approx(their_record, rel=1e-12)


def assert_clean(project: Path) -> None:
    for path in project.glob("*.py"):
        text = path.read_text()
        assert "import specnn" not in text and "from specnn" not in text, path
    if importlib.util.find_spec("ruff") is not None:  # in the dev extra
        # pyflakes (no unused names), and pycodestyle within 100 columns for the files eject writes itself
        result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F,E,W",
                                 "--line-length", "100", "--per-file-ignores", "model.py:E501", str(project)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def train_both(spec_file: Path, folder: Path) -> tuple[Path, Path]:
    run = specnn.train(specnn.load_spec(spec_file), out=folder / "run", quiet=True)
    project = eject(spec_file, folder / "ejected").path
    run_ejected(project)
    return run.path, project


# Examples eject refuses, each with a located error (test_examples_eject_refuses_are_located).
NOT_EJECTED = {"two_heads.yaml": "loss: specnn eject cannot write a loss per output (a model with several outputs) yet"}


@pytest.mark.slow
@pytest.mark.parametrize("example", [p for p in sorted(EXAMPLES.glob("*.yaml")) if p.name not in NOT_EJECTED],
                         ids=lambda p: p.stem)
def test_every_example_ejects_to_the_same_weights(example, tmp_path):
    run, project = train_both(spec_copy(example, tmp_path, epochs=2), tmp_path)
    assert_same_training(run, project)
    assert_clean(project)


@pytest.fixture
def restore_determinism():
    """train.deterministic switches torch process-wide: switch it back for the other tests."""
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("name", ["features_a", "features_b", "features_c", "features_d"])
def test_every_train_feature_ejects_to_the_same_weights(name, tmp_path, restore_determinism):
    spec_file = spec_copy(FEATURES / f"{name}.yaml", tmp_path)
    run, project = train_both(spec_file, tmp_path)
    assert_same_training(run, project)
    assert_clean(project)
    if name == "features_a":  # early stopping stopped both at the same epoch
        assert len(records(run / "metrics.jsonl")) < yaml.safe_load(spec_file.read_text())["train"]["epochs"]
        assert json.loads((project / "confusion_matrix.json").read_text())["classes"] == ["maybe", "no", "yes"]
        assert json.loads((project / "preprocess.json").read_text())["scale"] == \
            json.loads((run / "preprocess.json").read_text())["scale"]
    if name in ("features_b", "features_c"):  # the test split, measured once with the kept weights
        specnn_test = json.loads((run / "test.json").read_text())["metrics"]
        expected = {f"test_{k}": v for k, v in specnn_test.items() if not isinstance(v, list)}
        assert json.loads((project / "test.json").read_text()) == pytest.approx(expected, rel=1e-12)
    if name == "features_c":
        assert "torch.use_deterministic_algorithms(True)" in (project / "train.py").read_text()
        assert json.loads((run / "manifest.json").read_text())["deterministic"]["use_deterministic_algorithms"]


def test_ejected_files_hold_only_the_features_the_spec_uses(tmp_path):
    iris = eject(EXAMPLES / "iris.yaml", tmp_path / "iris").path
    train = (iris / "train.py").read_text()
    for unused in ("ACCUMULATE", "clip_grad", "autocast", "scheduler", "warmup", "PATIENCE", "GradScaler"):
        assert unused not in train
    assert "scale(" not in (iris / "data.py").read_text()
    features = eject(spec_copy(FEATURES / "features_a.yaml", tmp_path), tmp_path / "a").path
    train = (features / "train.py").read_text()
    for used in ("ACCUMULATE = 3", "clip_grad_norm_(model.parameters(), max_norm=0.5)", "torch.bfloat16",
                 "CosineAnnealingLR", "LinearLR", "PATIENCE = 1", "label_smoothing=0.1"):
        assert used in train


def test_cli_ejects_a_run_whose_project_trains_and_predicts_standalone(tmp_path, cli_runner):
    spec_file = spec_copy(EXAMPLES / "iris.yaml", tmp_path, epochs=2)
    run = tmp_path / "run"
    assert cli_runner.invoke(cli, ["train", str(spec_file), "--out", str(run), "-q"]).exit_code == 0
    result = cli_runner.invoke(cli, ["eject", str(run), "-o", str(tmp_path / "project")])
    assert result.exit_code == 0, result.output
    project = tmp_path / "project"
    assert "wrote" in result.output and (project / "weights.pt").is_file()  # copied from the run
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    rows = ROOT / "examples" / "data" / "iris.csv"
    predicted = subprocess.run([sys.executable, "predict.py", str(rows)], cwd=project, env=env,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    ours = specnn.predict(run, rows)
    assert predicted == ["prediction", *[str(label) for label in ours.labels]]
    again = cli_runner.invoke(cli, ["eject", str(run), "-o", str(project)])
    assert again.exit_code == 2 and "already holds an ejected project" in again.output


def test_data_features_eject_cannot_write_are_located_errors(tmp_path, cli_runner):
    document = yaml.safe_load(spec_copy(EXAMPLES / "iris.yaml", tmp_path).read_text())
    document["data"]["preprocess"] = {"missing": "drop"}
    document["data"]["loader"] = {"in_memory": False}
    spec_file = tmp_path / "unsupported.yaml"
    spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
    result = cli_runner.invoke(cli, ["eject", str(spec_file), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "data.preprocess.missing: specnn eject cannot write missing-value handling yet" in result.output
    assert "data.loader.in_memory: specnn eject cannot write streamed data yet" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(NOT_EJECTED))
def test_examples_eject_refuses_are_located(name, tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["eject", str(EXAMPLES / name), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{EXAMPLES / name}:" in result.output and NOT_EJECTED[name] in result.output
    assert not (tmp_path / "out").exists()
