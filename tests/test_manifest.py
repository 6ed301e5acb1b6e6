"""manifest.json in every run, and the commands that read it: specnn runs, show and diff."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import specnn
from specnn.cli import cli
from specnn.errors import RunError
from specnn.runtime.train.loop import TrainingInterrupted
from specnn.runtime.train.manifest import recording

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "examples" / "iris.yaml"
IRIS_CSV = ROOT / "examples" / "data" / "iris.csv"


def iris_spec(folder: Path, name: str = "iris.yaml", **train) -> Path:
    """Iris with 2 epochs (or ``train`` overrides), reading ``folder/iris.csv``, no exports."""
    document = yaml.safe_load(IRIS.read_text())
    document["train"].update({"epochs": 2, **train})
    document["data"]["csv"]["path"] = "iris.csv"
    document["export"] = []
    if not (folder / "iris.csv").exists():
        shutil.copy(IRIS_CSV, folder / "iris.csv")
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_records_what_made_it(tmp_path):
    spec_file = iris_spec(tmp_path)
    run = specnn.train(specnn.load_spec(spec_file), out=tmp_path / "run", quiet=True).path
    written = manifest(run)
    assert written["spec"]["sha256"] == sha256(spec_file)
    assert len(written["spec"]["resolved_sha256"]) == 64
    assert written["data"] == [{"path": str((tmp_path / "iris.csv").resolve()), "sha256": sha256(IRIS_CSV),
                                "bytes": IRIS_CSV.stat().st_size}]
    assert written["seed"] == 0 and written["status"] == "finished"
    assert set(written["versions"]) >= {"python", "torch", "numpy", "specnn"}
    assert written["device"]["type"] == "cpu" and written["device"]["threads"] == torch.get_num_threads()
    assert written["deterministic"]["requested"] is False
    (session,) = written["sessions"]
    assert session["command"] == sys.argv and session["status"] == "finished" and session["from_epoch"] == 0
    assert session["started"] <= session["ended"]


def test_the_spec_repositorys_commit_and_dirty_flag_are_recorded(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    spec_file = iris_spec(tmp_path)
    git = lambda *args: subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,  # noqa: E731
                                       text=True).stdout.strip()
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "start")
    git("add", "iris.yaml", "iris.csv")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "spec")
    clean = specnn.train(specnn.load_spec(spec_file), out=tmp_path / "clean", quiet=True).path
    assert manifest(clean)["git"] == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    spec_file.write_text(spec_file.read_text().replace("lr: 0.01", "lr: 0.02"))
    dirty = specnn.train(specnn.load_spec(spec_file), out=tmp_path / "dirty", quiet=True).path
    assert manifest(dirty)["git"]["dirty"] is True


def test_a_resumed_run_adds_a_session(tmp_path):
    first = iris_spec(tmp_path, "first.yaml", epochs=2)
    specnn.train(specnn.load_spec(first), out=tmp_path / "run", quiet=True)
    longer = iris_spec(tmp_path, "longer.yaml", epochs=3)
    specnn.train(specnn.load_spec(longer), out=tmp_path / "run", resume=True, quiet=True)
    sessions = manifest(tmp_path / "run")["sessions"]
    assert [(s["from_epoch"], s["status"]) for s in sessions] == [(0, "finished"), (2, "finished")]


def test_a_failed_run_says_so(tmp_path):
    spec_file = iris_spec(tmp_path)
    document = yaml.safe_load(spec_file.read_text())
    document["optimizer"] = {"SGD": {"lr": 1.0e30}}
    spec_file.write_text(yaml.safe_dump(document))
    with pytest.raises(RunError):
        specnn.train(specnn.load_spec(spec_file), out=tmp_path / "run", quiet=True)
    assert manifest(tmp_path / "run")["status"] == "failed"


def test_ctrl_c_records_an_interrupted_session_and_other_ranks_write_nothing(tmp_path):
    spec = specnn.load_spec(iris_spec(tmp_path))
    compiled = specnn.compile_spec(spec)
    with pytest.raises(KeyboardInterrupt), recording(spec, compiled, tmp_path, torch.device("cpu"),
                                                     resumed=False, epoch=0):
        assert manifest(tmp_path)["status"] == "running"
        raise TrainingInterrupted("interrupted: saved last.pt (epoch 1); resume with: ...")
    assert manifest(tmp_path)["sessions"][-1]["status"] == "interrupted"
    (tmp_path / "rank1").mkdir()
    with recording(spec, compiled, tmp_path / "rank1", torch.device("cpu"), resumed=False, epoch=0, main=False):
        pass
    assert not (tmp_path / "rank1" / "manifest.json").exists()


@pytest.fixture
def four_runs(tmp_path):
    """runs/base, runs/seed (another seed), runs/data (another iris.csv), runs/spec (another lr)."""
    runs = tmp_path / "runs"
    train = lambda spec_file, name: specnn.train(specnn.load_spec(spec_file), out=runs / name, quiet=True)  # noqa: E731
    train(iris_spec(tmp_path, "base.yaml"), "base")
    document = yaml.safe_load(iris_spec(tmp_path, "seed.yaml").read_text())
    document["seed"] = 7
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    train(tmp_path / "seed.yaml", "seed")
    other = tmp_path / "other"
    other.mkdir()
    rows = IRIS_CSV.read_text().splitlines()
    (other / "iris.csv").write_text("\n".join(rows[:1] + rows[1:][::-1]) + "\n")  # same rows, reversed
    train(iris_spec(other, "base.yaml"), "data")
    train(iris_spec(tmp_path, "spec.yaml", batch_size=8), "spec")
    return runs


def test_diff_shows_what_differs_between_runs(four_runs, cli_runner):
    seed = cli_runner.invoke(cli, ["diff", str(four_runs / "base"), str(four_runs / "seed")])
    assert seed.exit_code == 0, seed.output
    assert "spec: differs" in seed.output and "-seed: 0" in seed.output and "+seed: 7" in seed.output
    assert "data files: same content (iris.csv)" in seed.output and "versions: same" in seed.output

    data = cli_runner.invoke(cli, ["diff", str(four_runs / "base"), str(four_runs / "data")]).output
    assert "data files: differ" in data and "iris.csv: A sha256 " in data
    assert f"-    path: {(four_runs.parent / 'iris.csv').resolve()}" in data  # the resolved spec's path changed

    spec = cli_runner.invoke(cli, ["diff", str(four_runs / "base"), str(four_runs / "spec")]).output
    assert "-  batch_size: 16" in spec and "+  batch_size: 8" in spec
    assert "final values" in spec and "val_loss" in spec

    same = cli_runner.invoke(cli, ["diff", str(four_runs / "base"), str(four_runs / "base")]).output
    assert "spec: same (sha256 " in same


def test_runs_lists_every_run_and_show_prints_the_manifest(four_runs, cli_runner):
    (four_runs / "broken").mkdir()  # not a run: left out
    table = cli_runner.invoke(cli, ["runs", str(four_runs)])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["run", "name", "started", "spec", "epochs", "best", "status"]
    assert sorted(Path(line.split()[0]).name for line in lines[1:]) == ["base", "data", "seed", "spec"]
    assert all(" 2 " in line and "val_loss" in line and line.endswith("finished") for line in lines[1:])
    base = manifest(four_runs / "base")
    assert base["spec"]["resolved_sha256"][:12] in table.output

    shown = cli_runner.invoke(cli, ["show", str(four_runs / "base")])
    assert shown.exit_code == 0, shown.output
    assert base["spec"]["sha256"] in shown.output and base["data"][0]["sha256"] in shown.output
    assert "final (epoch 2)" in shown.output and "best           val_loss" in shown.output
    as_json = json.loads(cli_runner.invoke(cli, ["show", str(four_runs / "base"), "--json"]).output)
    assert as_json["manifest"] == base and as_json["final"]["epoch"] == 2


def test_a_run_without_a_manifest_still_lists_by_its_files(four_runs, cli_runner):
    (four_runs / "base" / "manifest.json").unlink()
    (four_runs / "seed" / "manifest.json").unlink()
    (four_runs / "seed" / "weights.pt").unlink()
    output = cli_runner.invoke(cli, ["runs", str(four_runs)]).output
    status = {Path(line.split()[0]).name: line.split()[-1] for line in output.splitlines()[1:]}
    assert status["base"] == "finished" and status["seed"] == "interrupted"
    assert "manifest       none" in cli_runner.invoke(cli, ["show", str(four_runs / "base")]).output


def test_deterministic_switches_torch_and_is_recorded(tmp_path):
    try:
        run = specnn.train(specnn.load_spec(iris_spec(tmp_path, deterministic=True)), out=tmp_path / "run",
                           quiet=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    recorded = manifest(run.path)["deterministic"]
    assert recorded["requested"] is True and recorded["use_deterministic_algorithms"] is True
    assert recorded["cudnn_deterministic"] is True and recorded["cudnn_benchmark"] is False
