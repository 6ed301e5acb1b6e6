"""Each train: feature does what it says: schedules, clipping, accumulation, precision, early stopping,
best checkpoints, NaN detection, metric files, and the check-time rules."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from specnn.runtime.train.checkpoint import load_checkpoint
from specnn.launch import train
from specnn.errors import RunError, SpecError, ToolError
from specnn.spec.loader import load_spec

BASE = """\
    specnn: 1
    name: feat
    seed: 2
    model:
      input: [5]
      layers:
        - Linear: {out_features: 12}
        - Tanh:
        - Linear: {out_features: 3}
    data:
      synthetic: {task: classification, samples: 96, shape: [5], classes: 3}
      validation_split: 0.25
    loss:
      CrossEntropyLoss:
    optimizer:
      SGD: {lr: 0.1}
    train:
      epochs: 4
      batch_size: 8
      device: cpu
"""


def make_spec(tmp_path: Path, train_extra: str = "", **replace: str):
    text = textwrap.dedent(BASE)
    for old, new in replace.items():
        text = text.replace(old, new)
    text += textwrap.indent(textwrap.dedent(train_extra), "  ")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return load_spec(path)


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_step_schedule_after_a_warmup_is_recorded_epoch_by_epoch(tmp_path):
    spec = make_spec(tmp_path, "scheduler: {StepLR: {step_size: 1, gamma: 0.5}, warmup: {epochs: 1, start_factor: 0.5}}\n")
    train(spec, tmp_path / "run", quiet=True)
    # epoch 1 starts the ramp at 0.05; the StepLR's first epoch uses 0.1, then halves each epoch
    assert [r["lr"] for r in records(tmp_path / "run")] == pytest.approx([0.05, 0.1, 0.05, 0.025])


def test_a_warmup_that_leaves_no_one_cycle_is_located_in_the_spec(tmp_path):
    spec = make_spec(tmp_path, "scheduler: {OneCycleLR: {max_lr: 1.0}, warmup: {epochs: 4}}\n")
    with pytest.raises(SpecError) as caught:
        train(spec, tmp_path / "run", quiet=True)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.col, problem.path) == (
        str(tmp_path / "spec.yaml"), 21, 42, ("train", "scheduler", "warmup"))
    assert not (tmp_path / "run").exists()


def test_clipping_by_norm_bounds_every_gradient_norm(tmp_path, monkeypatch):
    norms = []
    real_step = torch.optim.SGD.step

    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return real_step(self, closure)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    train(make_spec(tmp_path, "clip_grad: {norm: 0.01}\n"), tmp_path / "clipped", quiet=True)
    assert len(norms) == 36 and max(norms) <= 0.01 * (1 + 1e-5)
    norms.clear()
    train(make_spec(tmp_path), tmp_path / "free", quiet=True)
    assert max(norms) > 0.01


def test_accumulating_4_batches_of_8_equals_batches_of_32(tmp_path):
    small = train(make_spec(tmp_path, "accumulate: 4\nshuffle: false\n"), tmp_path / "a", quiet=True)
    big = train(make_spec(tmp_path, "shuffle: false\n", **{"batch_size: 8": "batch_size: 32"}), tmp_path / "b",
                quiet=True)
    for name, tensor in big.model.state_dict().items():
        torch.testing.assert_close(small.model.state_dict()[name], tensor, rtol=1e-5, atol=1e-6)
    assert load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["global_step"] == 4 * 3


def test_bf16_autocast_trains_on_the_cpu(tmp_path):
    run = train(make_spec(tmp_path, "precision: bf16\n", **{"lr: 0.1": "lr: 0.5"}), tmp_path / "run", quiet=True)
    losses = [r["train_loss"] for r in records(tmp_path / "run")]
    assert losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in run.model.parameters())


def test_fp16_on_the_cpu_is_a_located_spec_error_before_any_file(tmp_path):
    with pytest.raises(SpecError) as caught:
        make_spec(tmp_path, "precision: fp16\n")
    assert str(caught.value) == (f"{tmp_path / 'spec.yaml'}:21:3: train.precision: fp16 mixed precision needs a "
                                 "CUDA device, not 'cpu' (use bf16 on the CPU, or device: cuda)")


def test_early_stopping_stops_when_the_monitored_value_stalls_and_best_pt_holds_the_best_epoch(tmp_path, monkeypatch):
    # A crafted validation loss: best at epoch 2, then worse for `patience` (2) epochs: stop after epoch 4.
    crafted = iter([0.9, 0.5, 0.7, 0.8, 0.4, 0.3])
    from specnn.runtime.train import loop

    real_evaluate = loop.evaluate

    def evaluate(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        result["val_loss"] = next(crafted)
        return result

    monkeypatch.setattr(loop, "evaluate", evaluate)
    lines: list[str] = []
    spec = make_spec(tmp_path, "early_stopping: {monitor: val_loss, patience: 2}\n",
                     **{"epochs: 4": "epochs: 6"})
    run = train(spec, tmp_path / "run", echo=lines.append)
    assert [r["epoch"] for r in records(tmp_path / "run")] == [1, 2, 3, 4]
    assert lines[-2:] == ["early stopping: val_loss has not improved for 2 epochs",
                          "restored the best weights: epoch 2 (val_loss 0.5), not the last epoch 4 "
                          "(early_stopping.restore_best_weights)"]
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert (best["epoch"], best["best"]) == (2, 0.5)
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["epoch"] == 4
    # weights.pt, the exports and the returned model hold epoch 2, as meta.json says
    weights = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    for name, tensor in best["model"].items():
        assert torch.equal(weights[name], tensor) and torch.equal(run.model.state_dict()[name].cpu(), tensor)
    assert any(not torch.equal(weights[name], last["model"][name]) for name in weights)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert (meta["weights_epoch"], meta["last_epoch"]) == (2, 4)


def test_restore_best_weights_false_keeps_the_last_epoch(tmp_path, monkeypatch):
    crafted = iter([0.9, 0.5, 0.7, 0.8])
    from specnn.runtime.train import loop

    real_evaluate = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: {**real_evaluate(*a, **k), "val_loss": next(crafted)})
    spec = make_spec(tmp_path, "early_stopping: {monitor: val_loss, patience: 2, restore_best_weights: false}\n")
    train(spec, tmp_path / "run", quiet=True)
    weights = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert all(torch.equal(weights[name], tensor) for name, tensor in last["model"].items())
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["weights_epoch"] == 4


def test_a_nan_loss_stops_training_naming_epoch_and_batch_and_keeps_the_last_good_checkpoint(tmp_path):
    spec = make_spec(tmp_path, **{"SGD: {lr: 0.1}": "SGD: {lr: 1.0e+38}"})
    with pytest.raises(RunError) as caught:
        train(spec, tmp_path / "run", quiet=True)
    message = str(caught.value)
    assert message == (f"{tmp_path / 'spec.yaml'}:16:3: optimizer.SGD: the training loss is nan at epoch 1, batch 3 "
                       "of 9: training stopped; no checkpoint was written yet (lower the learning rate, or set "
                       "train.clip_grad)")
    assert not (tmp_path / "run" / "weights.pt").exists()


def test_metrics_files_hold_every_epoch_and_the_confusion_matrix_is_written_not_printed(tmp_path):
    spec = make_spec(tmp_path, "metrics: [accuracy, {f1: {average: macro}}, confusion_matrix]\n")
    lines: list[str] = []
    train(spec, tmp_path / "run", echo=lines.append)
    folder = tmp_path / "run"
    csv_lines = (folder / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "epoch,lr,train_loss,train_accuracy,train_f1,val_loss,val_accuracy,val_f1,seconds"
    assert len(csv_lines) == 5 and "confusion" not in lines[-1]
    matrix = json.loads((folder / "confusion_matrix.json").read_text())
    assert sum(map(sum, matrix["val"])) == 24 and sum(map(sum, matrix["train"])) == 72
    assert (folder / "confusion_matrix.csv").read_text().splitlines()[0] == "target\\predicted,0,1,2"


def test_metrics_and_monitors_that_do_not_fit_are_located_spec_errors(tmp_path):
    with pytest.raises(SpecError) as caught:
        make_spec(tmp_path, "metrics: [accuracy, r2]\nscheduler: {ReduceLROnPlateau: {}}\n",
                  **{"validation_split: 0.25": "validation_split: 0"})
    file = tmp_path / "spec.yaml"
    assert [p.format() for p in caught.value.problems] == [
        f"{file}:21:23: train.metrics[1]: r2 is a regression metric, but CrossEntropyLoss is a classification loss",
        f"{file}:22:15: train.scheduler.ReduceLROnPlateau: ReduceLROnPlateau watches 'val_loss', but "
        "data.validation_split is 0: the run has no validation values (set data.validation_split above 0, "
        "or monitor a train_ value)",
    ]


def test_tensorboard_writes_every_epochs_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_spec(tmp_path, "tensorboard: true\n"), tmp_path / "run", quiet=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = records(tmp_path / "run")
    assert sorted(events.Tags()["scalars"]) == sorted(key for key in logged[0] if key != "epoch")
    assert [(s.step, s.value) for s in events.Scalars("train_loss")] == \
        [(r["epoch"], pytest.approx(r["train_loss"], rel=1e-6)) for r in logged]


def test_tensorboard_without_the_package_is_a_located_spec_error_before_any_file(tmp_path, monkeypatch):
    import sys

    for name in ("tensorboard", "torch.utils.tensorboard"):  # as if the extra were not installed
        monkeypatch.setitem(sys.modules, name, None)
    spec = make_spec(tmp_path, "tensorboard: true\n")
    with pytest.raises(SpecError) as caught:
        train(spec, tmp_path / "run", quiet=True)
    assert str(caught.value) == (f"{tmp_path / 'spec.yaml'}:21:3: train.tensorboard: TensorBoard logging needs "
                                 'tensorboard, which is not installed (pip install "specnn[tensorboard]")')
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_torch_compile_failing_on_this_machine_is_a_located_tool_error(tmp_path, monkeypatch):
    # A machine without a working C++ compiler: inductor cannot build its CPU kernels.
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", (None, "/nonexistent/g++"))
    spec = make_spec(tmp_path, "compile: true\n")
    lines: list[str] = []
    with pytest.raises(ToolError) as caught:  # the spec is valid: torch failed on this machine (exit 1)
        train(spec, tmp_path / "run", echo=lines.append)
    # the long silent phase is announced before it starts
    assert lines == ["train.compile: torch.compile compiles the model during the first steps (often 10-60 s) ..."]
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'spec.yaml'}:21:3: train.compile: torch.compile failed on this "
                              "machine: InvalidCxxCompiler: No working C++ compiler found")
    assert message.endswith("(set train.compile: false, or fix what torch.compile reports)")
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert not (tmp_path / "run").exists()  # what the run wrote before its first step is taken back
