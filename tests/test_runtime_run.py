"""Run directories: what training writes, and loading it back (or refusing to, naming the file)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from specnn.runtime.files import write_atomic
from specnn.runtime.runs.run import load_run
from specnn.launch import train
from specnn.errors import RunError
from specnn.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short iris run, shared by this module's tests (copy it before changing it)."""
    spec = load_spec(EXAMPLES / "iris.yaml")
    spec = spec.model_copy(update={"export": [], "train": spec.train.model_copy(update={"epochs": 3})})
    return train(spec, tmp_path_factory.mktemp("runs") / "iris", quiet=True)


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(trained.path, target)
    return target


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def some_inputs() -> torch.Tensor:
    return torch.randn(9, 4, generator=torch.Generator().manual_seed(0))


def test_run_directory_holds_the_resolved_spec_model_metrics_weights_and_meta(trained):
    folder = trained.path
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "manifest.json", "meta.json", "metrics.csv", "metrics.jsonl", "model.py",
                                                          "preprocess.json", "spec.yaml", "weights.pt"]
    resolved = load_spec(folder / "spec.yaml")
    assert resolved.model.layers[0].args.in_features == 4  # inferred, now written out
    assert Path(resolved.data.args.path) == (EXAMPLES / "data" / "iris.csv").resolve()
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(r) for r in records] == [["epoch", "lr", "seconds", "train_accuracy", "train_loss", "val_accuracy", "val_loss"]] * 3
    state = torch.load(folder / "weights.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in trained.model.state_dict().items())
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert meta["task"] == "classification"
    assert meta["inputs"] == [{"name": "x", "shape": [4], "dtype": "float32"}]
    assert meta["output"]["shape"] == [3]
    assert meta["versions"]["torch"] == torch.__version__
    assert not any(p.name.startswith(".") for p in folder.iterdir())  # no temporary files left


def test_default_run_folder_is_runs_slash_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(EXAMPLES / "iris.yaml")
    spec = spec.model_copy(update={"export": [], "train": spec.train.model_copy(update={"epochs": 1})})
    run = train(spec, quiet=True)
    assert run.path == Path("runs") / "iris-mlp"
    assert (tmp_path / "runs" / "iris-mlp" / "weights.pt").is_file()


def test_load_run_gives_the_trained_model_in_eval_mode(trained):
    loaded = load_run(trained.path)
    assert not loaded.model.training
    assert loaded.classes == ["setosa", "versicolor", "virginica"]
    assert loaded.meta["task"] == "classification"
    with torch.inference_mode():
        assert torch.equal(loaded.model(some_inputs()), trained.model(some_inputs()))


def test_model_py_from_the_run_folder_loads_weights_pt_and_gives_the_same_outputs(trained):
    module_spec = importlib.util.spec_from_file_location("iris_run_model", trained.path / "model.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    model = module.IrisMlp()
    model.load_state_dict(torch.load(trained.path / "weights.pt", weights_only=True))
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(some_inputs()), trained.model(some_inputs()))


def test_corrupt_weights_are_a_run_error_naming_the_file_and_nothing_changes(run_copy):
    (run_copy / "weights.pt").write_bytes(b"not a torch file")
    before = snapshot(run_copy)
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    [problem] = info.value.problems
    assert problem.file == str(run_copy / "weights.pt")
    assert str(info.value).startswith(f"{run_copy / 'weights.pt'}: cannot load the weights: ")
    assert snapshot(run_copy) == before


def test_weights_for_another_model_are_a_run_error(run_copy):
    state = torch.load(run_copy / "weights.pt", weights_only=True)
    state["fc1.weight"] = torch.zeros(5, 4)
    del state["fc2.bias"]
    state["extra"] = torch.zeros(1)
    torch.save(state, run_copy / "weights.pt")
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    assert str(info.value) == (
        f"{run_copy / 'weights.pt'}: the weights do not fit the model in spec.yaml: missing fc2.bias; "
        "unexpected extra; fc1.weight is [5, 4], the model needs [10, 4]"
    )


def test_a_pickled_object_instead_of_a_state_dict_is_refused(run_copy):
    torch.save([torch.zeros(1)], run_copy / "weights.pt")
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    assert str(info.value) == f"{run_copy / 'weights.pt'}: expected a state_dict, got a list"


def test_metadata_without_what_readers_need_is_corrupt(run_copy):
    (run_copy / "meta.json").write_text('{"classes": null}', encoding="utf-8")
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    assert str(info.value) == f"{run_copy / 'meta.json'}: the run's metadata lacks task, samples"


def test_missing_files_are_each_named(run_copy):
    (run_copy / "weights.pt").unlink()
    (run_copy / "meta.json").unlink()
    before = snapshot(run_copy)
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    hint = "(a run folder holds spec.yaml, weights.pt, meta.json)"
    assert str(info.value).splitlines() == [
        f"{run_copy / 'weights.pt'}: missing run file {hint}",
        f"{run_copy / 'meta.json'}: missing run file {hint}",
    ]
    assert snapshot(run_copy) == before


def test_corrupt_meta_is_a_run_error(run_copy):
    (run_copy / "meta.json").write_text("{not json")
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    assert str(info.value).startswith(f"{run_copy / 'meta.json'}: cannot read the run's metadata: ")


def test_a_broken_spec_in_the_run_is_a_located_run_error(run_copy):
    text = (run_copy / "spec.yaml").read_text().replace("out_features: 10", "out_features: -1")
    (run_copy / "spec.yaml").write_text(text)
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    assert all(p.file == str(run_copy / "spec.yaml") and p.line for p in info.value.problems)


def test_a_folder_that_does_not_exist(tmp_path):
    with pytest.raises(RunError) as info:
        load_run(tmp_path / "nope")
    assert str(info.value) == f"{tmp_path / 'nope'}: not a run folder: it does not exist (train a spec first)"
    assert not (tmp_path / "nope").exists()


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    write_atomic(target, "old")
    write_atomic(target, b"new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]
