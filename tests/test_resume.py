"""Exact resume: stopped at an epoch boundary or by Ctrl-C, a run ends bitwise where an unbroken one does."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import pytest
import torch

from specnn.runtime.train.loop import TrainingInterrupted
from specnn.launch import train
from specnn.errors import RunError, SpecError
from specnn.spec.loader import load_spec

SPEC = """\
    specnn: 1
    name: resume
    seed: 5
    model:
      input: [6]
      layers:
        - Linear: {out_features: 16}
        - ReLU:
        - Dropout: {p: 0.3}
        - Linear: {out_features: 3}
    data:
      synthetic: {task: classification, samples: 120, shape: [6], classes: 3}
      validation_split: 0.25
    loss:
      CrossEntropyLoss:
    optimizer:
      SGD: {lr: 0.1, momentum: 0.9}
    train:
      epochs: EPOCHS
      batch_size: 16
      device: cpu
      scheduler: {StepLR: {step_size: 1, gamma: 0.7}, warmup: {steps: 3}}
"""


def spec_file(tmp_path: Path, epochs: int, extra: str = "") -> Path:
    path = tmp_path / f"spec{epochs}.yaml"
    path.write_text(textwrap.dedent(SPEC).replace("EPOCHS", str(epochs)) + extra)
    return path


def states_equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_stopped_after_epoch_2_and_resumed_to_4_is_bitwise_the_uninterrupted_run(tmp_path):
    whole = train(load_spec(spec_file(tmp_path, 4)), tmp_path / "whole", quiet=True)
    train(load_spec(spec_file(tmp_path, 2)), tmp_path / "split", quiet=True)
    resumed = train(load_spec(spec_file(tmp_path, 4)), tmp_path / "split", quiet=True, resume=True)
    assert states_equal(whole.model.state_dict(), resumed.model.state_dict())
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert lines == (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines() or len(lines) == 4
    assert [line.split(",")[0] for line in (tmp_path / "split" / "metrics.csv").read_text().splitlines()] == \
        ["epoch", "1", "2", "3", "4"]


def interrupt_at(monkeypatch, at_step: int, how: str) -> None:
    """Make optimizer step number ``at_step`` (1-based, whole run) press Ctrl-C (signal) or raise KeyboardInterrupt."""
    real_step, count = torch.optim.SGD.step, {"n": 0}

    def step(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == at_step:
            if how == "raise":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)  # the handler sets a flag; this step still completes
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)


@pytest.mark.parametrize("how, at_step", [("signal", 13), ("raise", 13), ("signal", 6)])
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume_and_the_resumed_run_is_bitwise_equal(
        tmp_path, monkeypatch, how, at_step):
    whole = train(load_spec(spec_file(tmp_path, 3)), tmp_path / "whole", quiet=True)
    path = spec_file(tmp_path, 3)
    with monkeypatch.context() as patch:
        interrupt_at(patch, at_step, how)
        with pytest.raises(TrainingInterrupted) as caught:
            train(load_spec(path), tmp_path / "cut", quiet=True)
    assert f"resume with: specnn train {path} --resume {tmp_path / 'cut'}" in caught.value.message
    if how == "signal":  # 6 batches per epoch: step 13 is epoch 3, batch 1; step 6 is the last of epoch 1
        where = "epoch 3, batch 1" if at_step == 13 else "epoch 1, batch 6"
        assert f"saved {tmp_path / 'cut' / 'checkpoints' / 'last.pt'}" in caught.value.message
        assert where in caught.value.message
    else:
        assert "the last checkpoint is" in caught.value.message
    resumed = train(load_spec(path), tmp_path / "cut", quiet=True, resume=True)
    assert states_equal(whole.model.state_dict(), resumed.model.state_dict())


def test_a_checkpoint_from_another_spec_or_a_corrupt_one_is_a_run_error_and_nothing_changes(tmp_path):
    train(load_spec(spec_file(tmp_path, 1)), tmp_path / "run", quiet=True)
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    text = textwrap.dedent(SPEC).replace("EPOCHS", "2").replace("out_features: 16", "out_features: 8")
    (tmp_path / "other.yaml").write_text(text)
    with pytest.raises(RunError) as caught:
        train(load_spec(tmp_path / "other.yaml"), tmp_path / "run", quiet=True, resume=True)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert str(caught.value) == (f"{last}: checkpoint was written for a different spec: model changed "
                                 "(resume with the spec the run was started with, or start a new run)")
    last.write_bytes(last.read_bytes()[:300])
    before[last] = last.read_bytes()
    with pytest.raises(RunError, match="checkpoint is truncated or corrupt"):
        train(load_spec(spec_file(tmp_path, 2)), tmp_path / "run", quiet=True, resume=True)
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == before


STEP_SCHEDULE = "scheduler: {StepLR: {step_size: 1, gamma: 0.7}, warmup: {steps: 3}}"
RUN_LENGTH_SCHEDULES = {
    "CosineAnnealingLR": "scheduler: {CosineAnnealingLR: {eta_min: 0.001}, warmup: {epochs: 1}}",
    "OneCycleLR": "scheduler: {OneCycleLR: {max_lr: 0.2}}",
}


def scheduled_spec(tmp_path: Path, epochs: int, schedule: str) -> Path:
    path = tmp_path / f"scheduled{epochs}.yaml"
    path.write_text(textwrap.dedent(SPEC).replace("EPOCHS", str(epochs)).replace(STEP_SCHEDULE, schedule))
    assert schedule in path.read_text()
    return path


def files_of(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", sorted(RUN_LENGTH_SCHEDULES))
def test_resuming_a_schedule_fixed_to_the_run_length_with_other_epochs_is_a_located_error(tmp_path, kind):
    train(load_spec(scheduled_spec(tmp_path, 3, RUN_LENGTH_SCHEDULES[kind])), tmp_path / "run", quiet=True)
    before = files_of(tmp_path / "run")
    longer = scheduled_spec(tmp_path, 5, RUN_LENGTH_SCHEDULES[kind])
    line = longer.read_text().splitlines().index("  epochs: 5") + 1
    with pytest.raises(SpecError) as caught:
        train(load_spec(longer), tmp_path / "run", quiet=True, resume=True)
    assert str(caught.value) == (
        f"{longer}:{line}:3: train.epochs: the run started with epochs: 3 and its {kind} schedule was fixed to "
        "that length (resume with epochs: 3, or start a new run)")
    assert files_of(tmp_path / "run") == before


def test_a_schedule_whose_length_the_spec_gives_resumes_with_more_epochs(tmp_path):
    fixed = "scheduler: {CosineAnnealingLR: {T_max: 4}}"
    whole = train(load_spec(scheduled_spec(tmp_path, 4, fixed)), tmp_path / "whole", quiet=True)
    train(load_spec(scheduled_spec(tmp_path, 2, fixed)), tmp_path / "split", quiet=True)
    resumed = train(load_spec(scheduled_spec(tmp_path, 4, fixed)), tmp_path / "split", quiet=True, resume=True)
    assert states_equal(whole.model.state_dict(), resumed.model.state_dict())


def test_a_schedule_fixed_to_the_run_length_resumes_with_the_same_epochs_bitwise(tmp_path, monkeypatch):
    path = scheduled_spec(tmp_path, 3, RUN_LENGTH_SCHEDULES["CosineAnnealingLR"])
    whole = train(load_spec(path), tmp_path / "whole", quiet=True)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 13, "signal")  # epoch 3, batch 1
        with pytest.raises(TrainingInterrupted):
            train(load_spec(path), tmp_path / "cut", quiet=True)
    resumed = train(load_spec(path), tmp_path / "cut", quiet=True, resume=True)
    assert states_equal(whole.model.state_dict(), resumed.model.state_dict())


def test_a_one_cycle_length_changed_by_the_batch_size_is_located_at_the_scheduler(tmp_path):
    train(load_spec(scheduled_spec(tmp_path, 3, RUN_LENGTH_SCHEDULES["OneCycleLR"])), tmp_path / "run", quiet=True)
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(scheduled_spec(tmp_path, 3, RUN_LENGTH_SCHEDULES["OneCycleLR"]).read_text()
                       .replace("batch_size: 16", "batch_size: 8"))
    line = smaller.read_text().splitlines().index("  " + RUN_LENGTH_SCHEDULES["OneCycleLR"]) + 1
    with pytest.raises(SpecError) as caught:
        train(load_spec(smaller), tmp_path / "run", quiet=True, resume=True)
    # 90 training rows: 6 batches of 16 per epoch, then 12 of 8
    assert str(caught.value) == (
        f"{smaller}:{line}:15: train.scheduler.OneCycleLR: the run's OneCycleLR schedule was fixed to 18 batches; "
        "this spec makes it 36 batches (resume with the epochs, batch_size, accumulate, warmup and data the run "
        "started with, or start a new run)")


def test_resuming_a_run_whose_metrics_log_was_deleted_or_lacks_epochs_is_a_run_error_and_nothing_changes(tmp_path):
    run = tmp_path / "run"
    train(load_spec(spec_file(tmp_path, 2)), run, quiet=True)
    log = run / "metrics.jsonl"
    complete = log.read_text()
    for damage, problem in (
        (lambda: log.unlink(), "the run is incomplete without this file (its checkpoint is at epoch 2)"),
        (lambda: log.write_text(complete.splitlines()[1] + "\n"),
         "the run is incomplete: epoch 1 is missing from this file (its checkpoint is at epoch 2)"),
        (lambda: log.write_text("not json\n" + complete), "line 1 is not a JSON record"),
    ):
        damage()
        before = files_of(run)
        with pytest.raises(RunError) as caught:
            train(load_spec(spec_file(tmp_path, 4)), run, quiet=True, resume=True)
        assert str(caught.value) == f"{log}: cannot resume: {problem} (restore the file from a backup, or start a new run)"
        assert files_of(run) == before


def test_a_torn_last_metrics_line_left_by_a_crash_is_dropped_on_resume(tmp_path):
    whole = train(load_spec(spec_file(tmp_path, 4)), tmp_path / "whole", quiet=True)
    train(load_spec(spec_file(tmp_path, 2)), tmp_path / "split", quiet=True)
    with (tmp_path / "split" / "metrics.jsonl").open("a") as log:
        log.write('{"epoch": 3, "lr": 0.0')  # killed while appending epoch 3's record
    resumed = train(load_spec(spec_file(tmp_path, 4)), tmp_path / "split", quiet=True, resume=True)
    assert states_equal(whole.model.state_dict(), resumed.model.state_dict())
    records = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in records] == [1, 2, 3, 4]


def test_resuming_a_finished_run_says_there_is_nothing_to_do_and_how_to_continue(tmp_path, cli_runner):
    from specnn.cli import cli

    spec = spec_file(tmp_path, 2)
    train(load_spec(spec), tmp_path / "run", quiet=True)
    weights = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    result = cli_runner.invoke(cli, ["train", str(spec), "--out", str(tmp_path / "run"), "--resume"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"nothing to train: the run in {tmp_path / 'run'} has trained all 2 epochs of train.epochs; to train longer, "
        "raise train.epochs in the spec and resume again",
        f"run saved to {tmp_path / 'run'}",
    ]
    assert [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert states_equal(torch.load(tmp_path / "run" / "weights.pt", weights_only=True), weights)
