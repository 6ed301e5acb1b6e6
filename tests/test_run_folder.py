"""Run folders: no run overwrites another by accident (default -2/-3 folders, --out errors,
--overwrite clears the old run, a bare --resume finds the newest run, torchrun ranks agree)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import specnn
from specnn.cli import cli
from specnn.runtime.train import distributed as D
from specnn.runtime.train.run_folder import (
    choose_run_folder, decide_run_folder, next_free_folder, remove_stale_temp_files,
)
from specnn.errors import Problem, RunError

ROOT = Path(__file__).resolve().parent.parent


def _iris(tmp_path: Path, epochs: int = 2, export: str = "[]") -> Path:
    text = (ROOT / "examples" / "iris.yaml").read_text()
    text = text.replace("epochs: 60", f"epochs: {epochs}").replace("export: [state_dict, onnx]", f"export: {export}")
    text = text.replace("path: data/iris.csv", f"path: {ROOT / 'examples' / 'data' / 'iris.csv'}")
    path = tmp_path / f"iris{epochs}.yaml"
    path.write_text(text)
    return path


def _weights(folder: Path) -> dict:
    return torch.load(folder / "weights.pt", weights_only=True)


def _make_run(folder: Path, marker: str = "meta.json") -> Path:
    (folder / marker).parent.mkdir(parents=True, exist_ok=True)
    (folder / marker).write_text("{}")
    return folder


class _Spec:
    name = "iris-mlp"


# ---------------------------------------------------------------------------------------------
# the default folder


def test_a_second_run_of_a_spec_goes_to_the_next_free_folder_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = specnn.load_spec(_iris(tmp_path))
    first = specnn.train(spec, quiet=True)
    before = _weights(first.path)
    lines: list[str] = []
    second = specnn.train(specnn.load_spec(_iris(tmp_path, epochs=3)), echo=lines.append, progress=False)
    assert first.path == Path("runs/iris-mlp") and second.path == Path("runs/iris-mlp-2")
    assert lines[0] == f"{Path('runs/iris-mlp')} already holds a run: this run goes to {Path('runs/iris-mlp-2')}"
    after = _weights(first.path)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the first run is untouched
    assert len((first.path / "metrics.jsonl").read_text().splitlines()) == 2
    assert len((second.path / "metrics.jsonl").read_text().splitlines()) == 3


def test_next_free_folder_skips_every_folder_that_holds_a_run(tmp_path):
    base = tmp_path / "runs" / "x"
    assert next_free_folder(base) == base
    _make_run(base)
    _make_run(base.with_name("x-2"), "checkpoints/last.pt")
    base.with_name("x-3").mkdir()  # a folder without a run (a crash before the first checkpoint) is reused
    assert next_free_folder(base) == base.with_name("x-3")


def test_the_cli_prints_which_folder_it_used(cli_runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = str(_iris(tmp_path))
    assert cli_runner.invoke(cli, ["train", spec, "-q"]).exit_code == 0
    result = cli_runner.invoke(cli, ["train", spec, "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"run saved to {Path('runs/iris-mlp-2')}"


# ---------------------------------------------------------------------------------------------
# an explicit --out


def test_an_out_folder_that_holds_a_run_is_an_error_and_nothing_changes(tmp_path):
    out = tmp_path / "run"
    spec = specnn.load_spec(_iris(tmp_path))
    specnn.train(spec, out, quiet=True)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RunError) as caught:
        specnn.train(spec, out, quiet=True)
    assert caught.value.problems == [Problem(
        "run-exists", "this folder already holds a run; training into it would overwrite it", file=str(out),
        hint="continue it with --resume, replace it with --overwrite, or choose a new --out")]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_the_cli_refuses_an_occupied_out_with_exit_2(cli_runner, tmp_path):
    out = _make_run(tmp_path / "old")
    result = cli_runner.invoke(cli, ["train", str(_iris(tmp_path)), "--out", str(out), "-q"])
    assert result.exit_code == 2
    assert result.output == (f"{out}: this folder already holds a run; training into it would overwrite it "
                             "(continue it with --resume, replace it with --overwrite, or choose a new --out)\n")
    assert sorted(p.name for p in out.iterdir()) == ["meta.json"]


def test_overwrite_removes_the_old_runs_exports_checkpoints_and_curves(cli_runner, tmp_path):
    out = tmp_path / "run"
    old = _iris(tmp_path, epochs=2, export="[safetensors]")
    assert cli_runner.invoke(cli, ["train", str(old), "--out", str(out), "-q"]).exit_code == 0
    assert cli_runner.invoke(cli, ["plot", str(out)]).exit_code == 0
    (out / "notes.txt").write_text("mine")  # not a run file: it stays
    assert {"model.safetensors", "curves.png", "checkpoints"} <= {p.name for p in out.iterdir()}
    (out / "checkpoints" / "from-the-old-run.pt").write_bytes(b"old")
    result = cli_runner.invoke(cli, ["train", str(_iris(tmp_path, epochs=3)), "--out", str(out), "--overwrite", "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "manifest.json", "meta.json", "metrics.csv", "metrics.jsonl", "model.py", "notes.txt", "preprocess.json",
        "spec.yaml", "weights.pt"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert (out / "notes.txt").read_text() == "mine"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_overwrite_is_forwarded_to_torchrun_workers():
    from specnn.launch import worker_args

    typed = ["train", "s.yaml", "--out", "o", "--nproc", "2", "--overwrite"]
    assert worker_args(typed) == ["train", "s.yaml", "--out", "o", "--overwrite"]


# ---------------------------------------------------------------------------------------------
# a bare --resume


def test_a_bare_resume_picks_the_newest_run_with_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = Path("runs")
    for name, age in (("iris-mlp", 30), ("iris-mlp-2", 10), ("iris-mlp-3", 20), ("iris-mlp-old", 0)):
        last = _make_run(runs / name, "checkpoints/last.pt") / "checkpoints" / "last.pt"
        os.utime(last, (1_000_000 - age, 1_000_000 - age))
    _make_run(runs / "iris-mlp-4")  # newer, but no checkpoint to resume from
    assert decide_run_folder(_Spec(), None, True).path == runs / "iris-mlp-2"


def test_a_bare_resume_without_any_checkpoint_names_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert decide_run_folder(_Spec(), None, True).path == Path("runs/iris-mlp")


def test_a_bare_resume_from_the_cli_continues_the_newest_run(cli_runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_runner.invoke(cli, ["train", str(_iris(tmp_path, epochs=2)), "-q"]).exit_code == 0
    assert cli_runner.invoke(cli, ["train", str(_iris(tmp_path, epochs=2)), "-q"]).exit_code == 0
    result = cli_runner.invoke(cli, ["train", str(_iris(tmp_path, epochs=3)), "--resume", "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"run saved to {Path('runs/iris-mlp-2')}"
    assert len(Path("runs/iris-mlp-2/metrics.jsonl").read_text().splitlines()) == 3
    assert len(Path("runs/iris-mlp/metrics.jsonl").read_text().splitlines()) == 2
    assert not Path("runs/iris-mlp-3").exists()


# ---------------------------------------------------------------------------------------------
# torchrun: rank 0 decides for every rank


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _choose_as_rank(rank: int, port: int, folder: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # Each rank looks at its own working folder: only rank 0's holds runs/iris-mlp and runs/taken.
    os.chdir(Path(folder) / f"rank{rank}")
    with D.distributed_session(torch.device("cpu")) as dist:
        default = choose_run_folder(_Spec(), None, False, False, dist)
        try:
            choose_run_folder(_Spec(), "taken", False, False, dist)
            refused = None
        except RunError as error:
            refused = [p.format() for p in error.problems]
    torch.save({"default": str(default.path), "note": default.note, "refused": refused},
               Path(folder) / f"rank{rank}.pt")


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_every_rank_uses_the_folder_rank_0_chose(tmp_path):
    _make_run(tmp_path / "rank0" / "runs" / "iris-mlp")
    _make_run(tmp_path / "rank0" / "taken")
    (tmp_path / "rank1").mkdir()
    mp.spawn(_choose_as_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert results[0] == results[1]
    assert results[0]["default"] == str(Path("runs/iris-mlp-2"))
    assert results[0]["refused"] == ["taken: this folder already holds a run; training into it would overwrite it "
                                     "(continue it with --resume, replace it with --overwrite, or choose a new --out)"]


# ---------------------------------------------------------------------------------------------
# temporary checkpoint files a hard kill left behind


def _temp_file(folder: Path, name: str, age: float) -> Path:
    path = folder / name
    path.write_bytes(b"half a checkpoint")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_a_resumed_run_removes_stale_checkpoint_temp_files(tmp_path):
    out = tmp_path / "run"
    specnn.train(specnn.load_spec(_iris(tmp_path, epochs=2)), out, quiet=True)
    checkpoints = out / "checkpoints"
    stale = _temp_file(checkpoints, ".last.pt.4242.0badc0de.tmp", age=3600)
    fresh = _temp_file(checkpoints, f".best.pt.{os.getppid()}.1234abcd.tmp", age=0)  # a live writer may be at work
    specnn.train(specnn.load_spec(_iris(tmp_path, epochs=3)), out, quiet=True, resume=True)
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in checkpoints.iterdir()) == [fresh.name, "best.pt", "last.pt"]


def test_only_old_hidden_tmp_files_are_removed(tmp_path):
    old = _temp_file(tmp_path, ".last.pt.1.00000000.tmp", age=120)
    kept = [_temp_file(tmp_path, f".last.pt.{os.getpid()}.00000000.tmp", age=10), _temp_file(tmp_path, "notes.tmp", age=120),
            _temp_file(tmp_path, "last.pt", age=120)]
    assert remove_stale_temp_files(tmp_path, older_than=60) == [old]
    assert all(p.exists() for p in kept)
    assert remove_stale_temp_files(tmp_path / "missing") == []


# ---------------------------------------------------------------------------------------------
# Ctrl-C during start-up: exit 130, one line, and no half-written folder


def _ctrl_c_before_the_first_epoch(monkeypatch) -> None:
    """Press Ctrl-C once spec.yaml, model.py and the metrics files are written, before any step."""
    from specnn.runtime.train import loop

    def pressed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "Progress", pressed)


def _contents(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ctrl_c_during_start_up_exits_130_and_removes_the_folder_it_created(cli_runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _iris(tmp_path)
    _ctrl_c_before_the_first_epoch(monkeypatch)
    for args in (["--out", "new/run"], []):  # a new --out (and its parent); the default runs/iris-mlp
        result = cli_runner.invoke(cli, ["train", str(spec), *args])
        assert result.exit_code == 130, result.output
        assert result.stderr == "interrupted before training started; nothing was saved\n"
        assert result.stdout == ""
        assert sorted(p.name for p in tmp_path.iterdir()) == [spec.name]


def test_ctrl_c_during_start_up_in_an_existing_folder_takes_back_only_this_runs_files(cli_runner, tmp_path,
                                                                                      monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _ctrl_c_before_the_first_epoch(monkeypatch)
    result = cli_runner.invoke(cli, ["train", str(_iris(tmp_path)), "--out", str(out)])
    assert result.exit_code == 130
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_ctrl_c_while_a_resumed_run_starts_keeps_the_run_as_it_was(cli_runner, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert cli_runner.invoke(cli, ["train", str(_iris(tmp_path, epochs=2)), "--out", str(out)]).exit_code == 0
    before = _contents(out)
    _ctrl_c_before_the_first_epoch(monkeypatch)
    result = cli_runner.invoke(cli, ["train", str(_iris(tmp_path, epochs=3)), "--resume", str(out)])
    assert result.exit_code == 130
    assert result.stderr == "interrupted before training started; nothing was saved\n"
    after = _contents(out)
    # the resuming spec's spec.yaml and model.py replace the old ones (they name the spec file); the rest is as it was
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if k.name not in ("spec.yaml", "model.py")} == \
        {k: v for k, v in before.items() if k.name not in ("spec.yaml", "model.py")}


def test_ctrl_c_while_the_spec_is_read_exits_130_without_clicks_aborted(cli_runner, tmp_path, monkeypatch):
    from specnn.spec import loader

    def pressed(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(loader, "load_spec", pressed)
    result = cli_runner.invoke(cli, ["train", str(_iris(tmp_path))])
    assert (result.exit_code, result.output) == (130, "interrupted before training started; nothing was saved\n")


def test_taking_back_a_run_removes_its_files_and_the_folders_it_created_only(tmp_path):
    from specnn.runtime.train.run_folder import note_folder, remove_what_this_run_wrote

    new = note_folder(tmp_path / "a" / "b" / "run")
    (tmp_path / "a" / "b" / "run").mkdir(parents=True)
    (tmp_path / "a" / "b" / "run" / "spec.yaml").write_text("x")
    (tmp_path / "a" / "other").mkdir()  # made meanwhile by someone else: a/ stays
    remove_what_this_run_wrote(new)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/other"]

    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "model.py").write_text("kept")
    before = note_folder(old)
    for name in ("spec.yaml", "model.py", "metrics.jsonl", "notes.txt"):
        (old / name).write_text("new")
    (old / "tensorboard").mkdir()
    remove_what_this_run_wrote(before)
    assert sorted(p.name for p in old.iterdir()) == ["checkpoints", "model.py", "notes.txt"]
