"""A write the system refuses while training (a full disk, a read-only folder, a file size limit) is
a clean error: exit 2, no traceback, the file and the reason named, the last good checkpoint intact
and named with the command that resumes it; a new run without a checkpoint leaves nothing behind."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import time
from pathlib import Path

import pytest
import torch

from specnn.cli import cli
from specnn.runtime.train import checkpoint as checkpoint_module
from specnn.runtime.train.run_folder import remove_stale_temp_files

SPEC = """\
specnn: 1
name: disk
seed: 0
model:
  input: [4]
  layers:
    - Linear: {out_features: 3}
data:
  synthetic: {shape: [4], classes: 3, samples: 24}
loss:
  CrossEntropyLoss:
optimizer:
  SGD: {lr: 0.1}
train:
  epochs: EPOCHS
  batch_size: 8
  device: cpu
"""
FULL = (errno.ENOSPC, "No space left on device")


def _spec(folder: Path, epochs: int = 4) -> Path:
    path = folder / f"disk{epochs}.yaml"
    path.write_text(SPEC.replace("EPOCHS", str(epochs)))
    return path


def _train(cli_runner, spec: Path, *args: str):
    return cli_runner.invoke(cli, ["train", str(spec), "-q", *args])


def _contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _epoch_of(last: Path) -> int:
    return checkpoint_module.load_checkpoint(last)["epoch"]  # loads: the file is whole


@contextlib.contextmanager
def _file_size_limit(size: int):
    """``ulimit -f``: the kernel refuses to grow any file of this process past ``size`` bytes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _refuse_torch_save(monkeypatch, after: int, error: Exception) -> None:
    """``torch.save`` of checkpoints works ``after`` times, then fails as it does on a full disk."""
    calls = {"n": 0}
    real = torch.save

    def save(obj, file, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= after:
            return real(obj, file, *args, **kwargs)
        file.write(b"PK\x03\x04 half a zip")
        raise error

    monkeypatch.setattr(checkpoint_module.torch, "save", save)


def _torch_full_disk() -> RuntimeError:
    # what torch raises when its zip writer's write() fails with ENOSPC: the OSError is its context
    try:
        raise OSError(*FULL)
    except OSError:
        try:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        except RuntimeError as error:
            return error


# ---------------------------------------------------------------------------------------------
# a file size limit


@pytest.mark.slow  # 3-10 s: ~280 epochs, a checkpoint each, to outgrow the limit
def test_a_file_size_limit_below_the_metrics_file_keeps_the_last_checkpoint_and_resumes(cli_runner, tmp_path):
    assert _train(cli_runner, _spec(tmp_path, epochs=1), "--out", str(tmp_path / "one")).exit_code == 0
    limit = (tmp_path / "one" / "checkpoints" / "last.pt").stat().st_size + 4_000  # a checkpoint (~24 kB) fits
    spec, out = _spec(tmp_path, epochs=limit // 100), tmp_path / "run"  # metrics.jsonl (~150 B an epoch) does not
    with _file_size_limit(limit):
        result = _train(cli_runner, spec, "--out", str(out))
    assert result.exit_code == 2, result.stderr
    last = out / "checkpoints" / "last.pt"
    epoch = _epoch_of(last)
    assert 0 < epoch < limit // 100
    assert result.stderr == (
        f"{out / 'metrics.jsonl'}: cannot write: File too large; the last good checkpoint {last} (epoch {epoch}) "
        f"is intact (raise the file size limit with ulimit -f, then resume with: specnn train {spec} --resume "
        f"{out})\n")
    assert not [p for p in out.rglob(".*") if p.name != ".specnn-claim"] and not (out / ".specnn-claim").exists()
    resumed = _train(cli_runner, spec, "--resume", str(out))
    assert resumed.exit_code == 0, resumed.output
    assert [int(line.split(",")[0]) for line in (out / "metrics.csv").read_text().splitlines()[1:]] == \
        list(range(1, limit // 100 + 1))


def test_a_file_size_limit_below_the_first_checkpoint_leaves_no_folder(cli_runner, tmp_path):
    spec = _spec(tmp_path)
    with _file_size_limit(4_000):
        result = _train(cli_runner, spec, "--out", str(tmp_path / "new" / "run"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"{tmp_path / 'new' / 'run' / 'checkpoints' / 'last.pt'}: cannot write checkpoint: File too large; the run "
        "had no checkpoint yet, so nothing was kept (raise the file size limit with ulimit -f, then train again)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.name]  # neither run/ nor new/


# ---------------------------------------------------------------------------------------------
# a full disk during torch.save


def test_a_full_disk_during_torch_save_names_the_intact_checkpoint(cli_runner, tmp_path, monkeypatch):
    spec, out = _spec(tmp_path), tmp_path / "run"
    _refuse_torch_save(monkeypatch, after=2, error=_torch_full_disk())  # epochs 1 and 2 are saved
    result = _train(cli_runner, spec, "--out", str(out))
    last = out / "checkpoints" / "last.pt"
    assert result.exit_code == 2
    assert result.stderr == (
        f"{last}: cannot write checkpoint: No space left on device; the last good checkpoint {last} (epoch 2) is "
        f"intact (free some disk space, then resume with: specnn train {spec} --resume {out})\n")
    assert _epoch_of(last) == 2
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]  # no half-written temporary
    monkeypatch.undo()
    assert _train(cli_runner, spec, "--resume", str(out)).exit_code == 0
    assert _epoch_of(last) == 4


def test_torchs_write_failure_without_a_reason_is_still_a_clean_error(cli_runner, tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    error = RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    _refuse_torch_save(monkeypatch, after=0, error=error)
    result = _train(cli_runner, spec, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"{tmp_path / 'run' / 'checkpoints' / 'last.pt'}: cannot write checkpoint: PytorchStreamWriter failed "
        "writing file data/0: file write failed; the run had no checkpoint yet, so nothing was kept (make room for "
        "the run's files, then train again)\n")
    assert not (tmp_path / "run").exists()


def test_a_full_disk_while_writing_the_final_weights_keeps_the_finished_training(cli_runner, tmp_path, monkeypatch):
    from specnn.runtime import files

    spec, out = _spec(tmp_path), tmp_path / "run"
    real = files.write_atomic

    def full_for_weights(path, data):
        if Path(path).name == "weights.pt":
            raise files.cannot_write(path, OSError(*FULL))
        return real(path, data)

    monkeypatch.setattr(files, "write_atomic", full_for_weights)
    result = _train(cli_runner, spec, "--out", str(out))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{out / 'weights.pt'}: cannot write: No space left on device; the last good "
                                    f"checkpoint {out / 'checkpoints' / 'last.pt'} (epoch 4) is intact")
    monkeypatch.undo()
    resumed = _train(cli_runner, spec, "--resume", str(out))  # nothing left to train: it writes what was missing
    assert resumed.exit_code == 0, resumed.output
    assert (out / "weights.pt").is_file() and (out / "meta.json").is_file()


def test_a_full_disk_never_hides_behind_the_error_of_closing_the_log(tmp_path):
    from specnn.errors import RunError
    from specnn.runtime.train.logs import EpochLogs

    logs = EpochLogs(tmp_path)
    logs.write({"epoch": 1, "train_loss": 0.5})
    with _file_size_limit((tmp_path / "metrics.jsonl").stat().st_size + 10):
        with pytest.raises(RunError) as caught:
            logs.write({"epoch": 2, "train_loss": 0.25})
        logs.close(failing=True)  # what fit does while that error is on its way out: quiet
    assert str(caught.value) == (f"{tmp_path / 'metrics.jsonl'}: cannot write: File too large "
                                 "(raise the file size limit with ulimit -f)")
    assert (tmp_path / "metrics.jsonl").read_text().splitlines()[0] == '{"epoch": 1, "train_loss": 0.5}'


def test_an_export_onto_a_full_disk_is_a_clean_error(cli_runner, tmp_path, monkeypatch):
    from specnn.runtime import files

    out = tmp_path / "run"
    assert _train(cli_runner, _spec(tmp_path), "--out", str(out)).exit_code == 0

    def full(source, target):
        raise OSError(*FULL)

    monkeypatch.setattr(files.os, "replace", full)
    result = cli_runner.invoke(cli, ["export", str(out), "--format", "state_dict"])
    assert result.exit_code == 2
    assert result.stderr == f"{out / 'model.pt'}: cannot write: No space left on device (free some disk space)\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------
# a folder that cannot be written (root ignores permission bits: the refusal is simulated)


def _refuse_writes_under(monkeypatch, folder: Path, error: tuple = (errno.EACCES, "Permission denied")) -> None:
    """Creating a file or folder under ``folder`` fails as it does in a read-only folder."""
    real_open, real_mkdir = os.open, Path.mkdir

    def refused(path) -> bool:
        return Path(path) == folder or folder in Path(path).parents

    def guarded_open(path, flags, *args, **kwargs):
        if refused(path) and flags & os.O_CREAT:
            raise PermissionError(*error, str(path))
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(self, *args, **kwargs):
        if refused(self) and not self.is_dir():
            raise PermissionError(*error, str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(Path, "mkdir", guarded_mkdir)


def test_a_run_folder_whose_parent_is_read_only_is_a_clean_error(cli_runner, tmp_path, monkeypatch):
    spec, parent = _spec(tmp_path), tmp_path / "readonly"
    parent.mkdir()
    _refuse_writes_under(monkeypatch, parent)
    result = _train(cli_runner, spec, "--out", str(parent / "run"))
    assert result.exit_code == 2
    assert result.stderr == (f"{parent / 'run'}: cannot create the run folder: Permission denied "
                             "(make the folder writable)\n")
    assert list(parent.iterdir()) == []


def test_a_read_only_run_folder_refuses_a_resume_before_anything_changes(cli_runner, tmp_path, monkeypatch):
    spec, out = _spec(tmp_path), tmp_path / "run"
    assert _train(cli_runner, spec, "--out", str(out)).exit_code == 0
    before = _contents(out)
    _refuse_writes_under(monkeypatch, out)
    result = _train(cli_runner, _spec(tmp_path, epochs=6), "--resume", str(out))
    assert result.exit_code == 2
    assert result.stderr == (f"{out}: cannot write in the run folder: Permission denied "
                             "(make the folder writable)\n")
    assert _contents(out) == before


def test_overwriting_a_run_whose_files_cannot_be_removed_is_a_clean_error(cli_runner, tmp_path, monkeypatch):
    spec, out = _spec(tmp_path), tmp_path / "run"
    assert _train(cli_runner, spec, "--out", str(out)).exit_code == 0
    before = _contents(out)
    real = Path.unlink

    def guarded_unlink(self, *args, **kwargs):
        if self == out / "spec.yaml":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", guarded_unlink)
    result = _train(cli_runner, spec, "--out", str(out), "--overwrite")
    assert result.exit_code == 2
    assert result.stderr == (f"{out / 'spec.yaml'}: cannot remove the old run's file: Permission denied "
                             "(make the folder writable)\n")
    assert _contents(out) == before


def test_a_resumed_run_that_cannot_write_keeps_everything(cli_runner, tmp_path, monkeypatch):
    from specnn.runtime import files

    spec, out = _spec(tmp_path), tmp_path / "run"
    assert _train(cli_runner, spec, "--out", str(out)).exit_code == 0
    before = _contents(out)
    real = files.replace_atomically

    def read_only(path, write, what=""):
        if Path(path).name == "metrics.jsonl":
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        return real(path, write, what)

    monkeypatch.setattr(files, "replace_atomically", read_only)
    longer = _spec(tmp_path, epochs=6)
    result = _train(cli_runner, longer, "--resume", str(out))
    assert result.exit_code == 2
    assert result.stderr == (
        f"{out / 'metrics.jsonl'}: cannot write: Read-only file system; the last good checkpoint "
        f"{out / 'checkpoints' / 'last.pt'} (epoch 4) is intact (choose a folder on a writable file system, then "
        f"resume with: specnn train {longer} --resume {out})\n")
    after = _contents(out)
    # the resuming spec's spec.yaml and model.py and the manifest's session record change; the run's files do not
    assert {k: v for k, v in after.items() if k not in ("spec.yaml", "model.py", "manifest.json")} == \
        {k: v for k, v in before.items() if k not in ("spec.yaml", "model.py", "manifest.json")}


# ---------------------------------------------------------------------------------------------
# temporary files a killed writer left


def _temp_file(folder: Path, name: str, age: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"half a file")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_start_in_a_folder_removes_what_a_killed_writer_left(cli_runner, tmp_path):
    spec, out = _spec(tmp_path), tmp_path / "run"
    assert _train(cli_runner, spec, "--out", str(out)).exit_code == 0
    dead, alive = _dead_pid(), os.getppid()
    left = [_temp_file(out / "checkpoints", f".last.pt.{dead}.0badc0de.tmp"),  # kill -9 during torch.save: just now
            _temp_file(out, f".weights.pt.{dead}.12345678.tmp"),
            _temp_file(out, f".model.onnx.{dead}.abcdef01.onnx"),
            _temp_file(out, f".model.onnx.{dead}.abcdef01.onnx.data"),
            _temp_file(out / "checkpoints", f".best.pt.{alive}.00000000.tmp", age=3600)]  # old: whoever it was is done
    kept = [_temp_file(out / "checkpoints", f".best.pt.{alive}.11111111.tmp"),  # a live writer may be at work on it
            _temp_file(out, "notes.tmp", age=3600)]  # not a specnn temporary name
    assert _train(cli_runner, _spec(tmp_path, epochs=5), "--resume", str(out)).exit_code == 0
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in kept)


def test_stale_temporaries_are_found_by_the_names_the_writers_use(tmp_path):
    from specnn.runtime.files import temporary_sibling

    dead = _dead_pid()
    written = [temporary_sibling(tmp_path / "last.pt"), temporary_sibling(tmp_path / "model.onnx", ".onnx")]
    for path in written:  # as this process names them, renamed to a dead writer's pid
        _temp_file(tmp_path, path.name.replace(f".{os.getpid()}.", f".{dead}."))
    assert len(remove_stale_temp_files(tmp_path)) == 2
    assert list(tmp_path.iterdir()) == []
