"""A training session: the state the loop carries from step to step, and its checkpoint.

:class:`Session` holds the live objects ``train:`` asks for (the model as the loop calls it: in
DDP and ``torch.compile`` when asked; optimizer, scheduler, gradient scaler, metrics, trackers,
the shuffling generator) and the counters. It is plain state: :meth:`Session.state_dict` is the
checkpoint (a plain dict, ``runtime/train/checkpoint.py``) and :meth:`Session.load_state_dict`
continues from one. The loop that moves it is ``runtime/train/loop.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from specnn.catalog.losses import LOSSES
from specnn.errors import SpecError, locate, spec_problem
from specnn.runtime.train.checkpoint import make_checkpoint, restore_checkpoint, spec_fingerprint
from specnn.runtime.train.metrics import MetricSet
from specnn.runtime.train.outputs import OutputsMetrics
from specnn.runtime.train.rng import capture_rng_state
from specnn.runtime.train.schedulers import build_scheduler
from specnn.spec.train_rules import checkpoint_monitor, metric_choices, monitor_mode


@dataclass
class Tracker:
    """The best value of one monitored epoch value, and epochs since it last improved."""

    monitor: str
    mode: str
    min_delta: float = 0.0
    best: Optional[float] = None
    stale: int = 0

    def update(self, record: dict[str, Any]) -> bool:
        """Read this epoch's value; True when it is the best so far (by more than ``min_delta``)."""
        value = float(record[self.monitor])
        better = self.best is None or (
            value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        )
        if better and not math.isnan(value):
            self.best, self.stale = value, 0
            return True
        self.stale += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.stale = state["best"], state["stale"]


class Session:
    """What one run's loop carries from step to step and epoch to epoch.

    Args:
        spec: the spec being trained.
        model: the built model, on this rank's device.
        optimizer: its optimizer.
        prepared: the data (``trainer.Prepared``): sizes, task, classes.
        dist: this rank's place in the job (``distributed.Distributed``): the model is wrapped in
            DDP when there are several ranks.
        num_classes: the classifier's output width (classification metrics).
        loss_fn: the training loss; with a loss per output, the metrics measure each output's loss too.

    Attributes:
        model: the plain model: checkpoints and ``weights.pt`` hold its names, loadable anywhere.
        forward: what the loop calls: ``model`` in DDP (several ranks) and ``torch.compile``
            (``train.compile``), as the DDP + compile notes advise, or ``model`` itself.
        epoch: epochs completed.
        global_step: optimizer steps taken.
        step_in_epoch: batches of epoch ``epoch + 1`` already trained (a Ctrl-C checkpoint).
        order: the shuffling generator's state when epoch ``epoch + 1`` began.
        partial: that epoch's per-batch losses and train-metric accumulators so far, or None.
        resumed: the session continues from a checkpoint.

    Raises:
        SpecError: a metric that does not fit the model's output (top-k with too few classes),
            located in the spec.
    """

    def __init__(self, spec: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer, prepared: Any,
                 dist: Any, num_classes: Optional[int] = None, loss_fn: Any = None) -> None:
        train, device = spec.train, dist.device
        self.spec, self.model, self.optimizer = spec, model, optimizer
        self.forward = dist.wrap(model)  # DDP when several ranks
        if train.compile:
            self.forward = torch.compile(self.forward)
        batches = math.ceil(len(prepared.train) / train.batch_size)
        try:
            self.scheduler = build_scheduler(train.scheduler, optimizer, math.ceil(batches / train.accumulate),
                                             train.epochs)
        except SpecError as error:  # the scheduler's checks know the spec path, not the file
            raise SpecError(locate(spec, error.problems)) from None
        self.scaler = torch.amp.GradScaler(device.type) if train.precision == "fp16" else None
        self.parameters = [p for p in model.parameters() if p.requires_grad]  # what clipping bounds
        self.generator = torch.Generator().manual_seed(spec.seed)  # the shuffling order, independent of init
        outputs = getattr(prepared.preprocessor, "outputs", None)  # several outputs: each classifier's names
        self.classes = {t.output: t.classes for t in outputs if t.indices} if outputs else prepared.classes
        self.train_metrics = _metric_set(spec, device, num_classes, loss_fn)
        self.val_metrics = _metric_set(spec, device, num_classes, loss_fn) if prepared.validation is not None else None
        self.trackers = _trackers(spec)
        self.fingerprint = spec_fingerprint(spec.model_dump(mode="json", by_alias=True))
        self.epoch = self.global_step = self.step_in_epoch = 0
        self.order: Optional[torch.Tensor] = None
        self.partial: Optional[dict[str, Any]] = None
        self.resumed = False

    def state_dict(self) -> dict[str, Any]:
        """The plain-dict checkpoint of this moment (see ``runtime/train/checkpoint.py``)."""
        checkpoint = make_checkpoint(
            model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler,
            epoch=self.epoch, global_step=self.global_step, best=self.trackers["best"].best,
            data_order=self.order if self.step_in_epoch else self.generator.get_state(),
            rng=capture_rng_state(), fingerprint=self.fingerprint,
        )
        checkpoint["step_in_epoch"] = self.step_in_epoch
        checkpoint["epochs"] = self.spec.train.epochs  # a schedule may be fixed to it (_check_schedule_length)
        checkpoint["partial"] = self.partial
        checkpoint["trackers"] = {name: t.state_dict() for name, t in self.trackers.items()}
        return checkpoint

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint (read and checked by ``checkpoint.read_checkpoint``).

        Raises:
            SpecError: the checkpoint's schedule was fixed to another run length (see
                :func:`_check_schedule_length`); nothing is restored.
        """
        _check_schedule_length(self.spec, self.scheduler, checkpoint)
        restore_checkpoint(checkpoint, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                           scaler=self.scaler, data_generator=self.generator)
        self.epoch, self.global_step = checkpoint["epoch"], checkpoint["global_step"]
        self.step_in_epoch = checkpoint.get("step_in_epoch", 0)
        self.partial = checkpoint.get("partial")
        self.order = checkpoint["data_order"] if self.step_in_epoch else None
        for name, saved in checkpoint.get("trackers", {}).items():
            if name in self.trackers:
                self.trackers[name].load_state_dict(saved)
        self.resumed = True


def _metric_set(spec: Any, device: torch.device, num_classes: Optional[int], loss_fn: Any = None) -> Any:
    if spec.several_losses:  # each output's loss and metrics (runtime/train/outputs.py)
        return OutputsMetrics(spec, loss_fn, device)
    task = LOSSES[spec.loss.kind].task
    chosen = metric_choices(spec.train, task)
    if not chosen:
        return None
    threshold = 0.5 if spec.loss.kind == "BCELoss" else 0.0
    try:
        # prepare_data range-checked the class targets (data.prepare_targets): no mask per step
        return MetricSet(chosen, task, num_classes, device, threshold, targets_in_range=True)
    except SpecError as error:
        raise SpecError(locate(spec, error.problems)) from None


def _trackers(spec: Any) -> dict[str, Tracker]:
    train = spec.train
    best = checkpoint_monitor(spec)
    trackers = {"best": Tracker(best, monitor_mode(best, train.checkpoint.mode))}
    if train.early_stopping is not None:
        stopping = train.early_stopping
        trackers["early_stopping"] = Tracker(stopping.monitor, monitor_mode(stopping.monitor, stopping.mode),
                                             stopping.min_delta)
    return trackers


def _check_schedule_length(spec: Any, scheduler: Any, checkpoint: dict[str, Any]) -> None:
    """A schedule whose length came from the run's (cosine without T_max, OneCycleLR) must keep it.

    Loading its state brings the old length back, so a resume with another ``train.epochs``
    would silently follow the old schedule (cosine climbs back up after it; OneCycleLR fails
    past its last step). Other schedules (StepLR, none) resume with any number of epochs.
    """
    saved, now = scheduler.saved_length(checkpoint.get("scheduler")), scheduler.length
    if saved is None or saved == now:
        return
    kind, started = scheduler.kind, checkpoint.get("epochs")
    if isinstance(started, int) and started != spec.train.epochs:
        path: tuple = ("train", "epochs")
        message = f"the run started with epochs: {started} and its {kind} schedule was fixed to that length"
        hint = f"resume with epochs: {started}, or start a new run"
    else:  # same epochs (or an older checkpoint): fewer or more batches per epoch changed the length
        unit = "epochs" if kind == "CosineAnnealingLR" else "batches"
        path = ("train", "epochs") if started is None else ("train", "scheduler", kind)
        message = f"the run's {kind} schedule was fixed to {saved} {unit}; this spec makes it {now} {unit}"
        hint = ("resume with the epochs, batch_size, accumulate, warmup and data the run started with, "
                "or start a new run")
    raise SpecError([spec_problem(spec, path, message, code="resume-schedule", hint=hint)])
