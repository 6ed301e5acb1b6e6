"""Schedulers: the table matches torch, warmup composes with every kind, state survives a checkpoint."""

from __future__ import annotations

import inspect
import io
import math
import subprocess
import sys
from typing import Optional

import pytest
import torch
from pydantic import Field, ValidationError

from specnn.catalog.schedulers import SCHEDULERS, Warmup
from specnn.runtime.train.schedulers import build_scheduler
from specnn.errors import SpecError
from specnn.spec.models import choice_model

# The choice model proposed for `train.scheduler`: one SCHEDULERS key, plus an optional warmup.
SchedulerSpec = choice_model(
    "SchedulerSpec", SCHEDULERS, "scheduler", "A learning-rate schedule.",
    warmup=(Optional[Warmup], Field(None)),
)
RUNTIME_FILLED = {"optimizer", "last_epoch", "total_steps", "epochs", "steps_per_epoch", "self"}
LR = 0.1


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=LR, momentum=0.9)


def _train(scheduler, optimizer, epochs: int, steps_per_epoch: int, metric=lambda epoch: 1.0) -> list[float]:
    """The lr each batch was trained with, stepping the way the training loop does."""
    used = []
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step_batch()
        scheduler.step_epoch({"loss": 1.0, "val_loss": metric(epoch)})
    return used


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_table_uses_torch_names_and_defaults(name):
    parameters = inspect.signature(getattr(torch.optim.lr_scheduler, name).__init__).parameters
    fields = SCHEDULERS[name].args.model_fields
    assert set(fields) - {"monitor"} <= set(parameters)
    for field_name, info in fields.items():
        if field_name == "monitor" or (name, field_name) == ("CosineAnnealingLR", "T_max"):
            continue
        torch_default = parameters[field_name].default
        assert info.is_required() == (torch_default is inspect.Parameter.empty), field_name
        if not info.is_required():
            assert info.default == torch_default, field_name
    left_out = {p for p in parameters if p not in fields and p not in RUNTIME_FILLED and p not in {"args", "kwargs"}}
    assert left_out == set()


def test_catalog_does_not_import_torch():
    code = "import sys, specnn.catalog.schedulers; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("warmup", [{}, {"steps": 3, "epochs": 1}])
def test_warmup_needs_exactly_one_length(warmup):
    with pytest.raises(ValidationError) as caught:
        Warmup(**warmup)
    assert caught.value.errors()[0]["msg"] == "give exactly one of 'steps' (batches) or 'epochs'"


def test_unknown_argument_is_refused():
    with pytest.raises(ValidationError) as caught:
        SchedulerSpec.model_validate({"StepLR": {"step_size": 2, "gama": 0.5}})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(("StepLR", "gama"), "extra_forbidden")]


@pytest.mark.parametrize(
    "spec, reference",
    [
        ({"StepLR": {"step_size": 2}}, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2)),
        ({"MultiStepLR": {"milestones": [1, 3]}}, lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [1, 3])),
        ({"ExponentialLR": {"gamma": 0.5}}, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.5)),
        ({"CosineAnnealingLR": {}}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5)),
    ],
)
def test_epoch_schedulers_match_torch(spec, reference):
    optimizer = _optimizer()
    ours = _train(build_scheduler(SchedulerSpec.model_validate(spec), optimizer, 3, 5), optimizer, 5, 3)

    optimizer = _optimizer()
    torch_scheduler, expected = reference(optimizer), []
    for _ in range(5):
        expected += [optimizer.param_groups[0]["lr"]] * 3
        optimizer.step()
        torch_scheduler.step()
    assert ours == pytest.approx(expected, rel=1e-12)


def test_one_cycle_steps_every_batch_over_the_whole_run():
    optimizer = _optimizer()
    choice = SchedulerSpec.model_validate({"OneCycleLR": {"max_lr": 1.0}})
    used = _train(build_scheduler(choice, optimizer, 4, 3), optimizer, 3, 4)

    optimizer = _optimizer()
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=12)
    expected = []
    for _ in range(12):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert used == pytest.approx(expected, rel=1e-12)
    assert used[-1] == pytest.approx(1.0 / 25 / 1e4)  # the cycle ends on its last batch


def test_warmup_ramps_per_batch_then_epoch_scheduler_starts_from_lr():
    optimizer = _optimizer()
    choice = SchedulerSpec.model_validate(
        {"StepLR": {"step_size": 1, "gamma": 0.5}, "warmup": {"epochs": 1, "start_factor": 0.25}}
    )
    used = _train(build_scheduler(choice, optimizer, 4, 3), optimizer, 3, 4)
    ramp = [LR * (0.25 + 0.75 * i / 4) for i in range(4)]
    assert used == pytest.approx(ramp + [LR] * 4 + [LR / 2] * 4, rel=1e-12)


def test_warmup_in_steps_ending_mid_epoch_delays_the_epoch_scheduler_one_epoch():
    optimizer = _optimizer()
    choice = SchedulerSpec.model_validate(
        {"StepLR": {"step_size": 1, "gamma": 0.5}, "warmup": {"steps": 2, "start_factor": 0.5}}
    )
    used = _train(build_scheduler(choice, optimizer, 3, 3), optimizer, 3, 3)
    # The epoch in which the warmup ended began cold: StepLR's first step waits for its end.
    assert used == [LR * 0.5, LR * 0.75, LR, LR, LR, LR, LR / 2, LR / 2, LR / 2]


def test_cosine_default_period_covers_the_run_after_warmup():
    optimizer = _optimizer()
    choice = SchedulerSpec.model_validate({"CosineAnnealingLR": {"eta_min": 0.0}, "warmup": {"epochs": 2}})
    scheduler = build_scheduler(choice, optimizer, 2, 10)
    assert scheduler.main.T_max == 8
    used = _train(scheduler, optimizer, 10, 2)
    per_epoch = used[4::2]
    assert per_epoch == pytest.approx([LR * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(8)], rel=1e-9)


def test_warmup_with_plateau_ignores_metrics_during_warmup():
    optimizer = _optimizer()
    choice = SchedulerSpec.model_validate(
        {"ReduceLROnPlateau": {"patience": 0, "factor": 0.5}, "warmup": {"epochs": 2, "start_factor": 0.5}}
    )
    # val_loss rises every epoch. Had the warmup epochs (0, 1) been watched, epoch 2 would
    # already be "bad"; instead epoch 2 sets the best value and epoch 3 is the first bad one.
    used = _train(build_scheduler(choice, optimizer, 1, 5), optimizer, 5, 1, metric=lambda epoch: float(epoch))
    assert used == pytest.approx([LR * 0.5, LR * 0.75, LR, LR, LR / 2], rel=1e-12)


def test_warmup_before_one_cycle_hands_over_at_its_starting_lr():
    optimizer = _optimizer()
    choice = SchedulerSpec.model_validate({"OneCycleLR": {"max_lr": 1.0}, "warmup": {"steps": 4, "start_factor": 0.5}})
    scheduler = build_scheduler(choice, optimizer, 4, 3)
    assert scheduler.main.total_steps == 8
    used = _train(scheduler, optimizer, 3, 4)  # would raise if OneCycleLR stepped past its end
    start = 1.0 / 25.0
    assert used[:5] == pytest.approx([start * (0.5 + 0.5 * i / 4) for i in range(4)] + [start])
    assert used[-1] == pytest.approx(start / 1e4)  # the cycle still ends on the run's last batch


def test_warmup_longer_than_a_one_cycle_run_is_a_spec_error():
    choice = SchedulerSpec.model_validate({"OneCycleLR": {"max_lr": 1.0}, "warmup": {"epochs": 3}})
    with pytest.raises(SpecError) as caught:
        build_scheduler(choice, _optimizer(), 4, 3)
    assert str(caught.value) == (
        "train.scheduler.warmup: the warmup (12 batches) leaves no batches for OneCycleLR (the run has 12) "
        "(OneCycleLR warms up by itself (pct_start): drop the warmup)"
    )


def test_plateau_without_its_metric_is_a_spec_error():
    optimizer = _optimizer()
    scheduler = build_scheduler(SchedulerSpec.model_validate({"ReduceLROnPlateau": {}}), optimizer, 2, 3)
    with pytest.raises(SpecError) as caught:
        scheduler.step_epoch({"loss": 0.3, "accuracy": 0.9})
    assert str(caught.value) == (
        "train.scheduler.ReduceLROnPlateau.monitor: ReduceLROnPlateau watches 'val_loss', which the epoch "
        "did not report (it reported: accuracy, loss) "
        "(monitor a reported metric, or set data.validation_split above 0 for val_ metrics)"
    )


def test_no_scheduler_keeps_the_lr():
    optimizer = _optimizer()
    assert _train(build_scheduler(None, optimizer, 2, 2), optimizer, 2, 2) == [LR] * 4


RESUMABLE = [
    {"StepLR": {"step_size": 1, "gamma": 0.5}, "warmup": {"steps": 3}},
    {"MultiStepLR": {"milestones": [1, 2]}, "warmup": {"epochs": 1}},
    {"ExponentialLR": {"gamma": 0.9}},
    {"CosineAnnealingLR": {}, "warmup": {"steps": 2}},
    {"OneCycleLR": {"max_lr": 1.0}, "warmup": {"steps": 2}},
    {"ReduceLROnPlateau": {"patience": 0}, "warmup": {"epochs": 1}},
]


@pytest.mark.parametrize("spec", RESUMABLE, ids=lambda spec: next(iter(spec)))
def test_resumed_schedule_matches_an_uninterrupted_one(spec):
    choice = SchedulerSpec.model_validate(spec)
    metric = lambda epoch: float(epoch % 2)  # noqa: E731 - alternately better and worse

    optimizer = _optimizer()
    whole = _train(build_scheduler(choice, optimizer, 3, 4), optimizer, 4, 3, metric)

    optimizer = _optimizer()
    scheduler = build_scheduler(choice, optimizer, 3, 4)
    first = _train(scheduler, optimizer, 2, 3, metric)
    buffer = io.BytesIO()
    torch.save({"scheduler": scheduler.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    saved = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)

    optimizer = _optimizer()
    resumed = build_scheduler(choice, optimizer, 3, 4)
    optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    rest = _train(resumed, optimizer, 2, 3, lambda epoch: metric(epoch + 2))
    assert first + rest == whole
