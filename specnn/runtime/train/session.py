"""A training session: the live objects the loop in ``trainer.py`` uses, and their checkpoints.

:class:`Session` builds what ``train:`` asks for (scheduler, step policy, metrics, trackers,
``torch.compile``), gives the loop its per-epoch bookkeeping (:meth:`Session.begin_epoch`,
:meth:`Session.finish_epoch`, :meth:`Session.end_epoch`), and turns itself into a checkpoint dict
and back. ``checkpoints/last.pt`` is written every ``train.checkpoint.every`` epochs and at the
end; ``checkpoints/best.pt`` whenever the monitored value improves; a Ctrl-C writes ``last.pt``
between two optimizer steps, with the position in the epoch, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import torch

from specnn.catalog.losses import LOSSES
from specnn.runtime.train.checkpoint import copy_checkpoint, load_checkpoint, make_checkpoint, restore_checkpoint
from specnn.runtime.train.checkpoint import save_checkpoint
from specnn.runtime.train.checkpoint import spec_fingerprint
from specnn.runtime.train.loop import LoopState, StepPolicy, Tracker, TrainingInterrupted, interrupted
from specnn.runtime.train.metrics import MetricSet
from specnn.runtime.train.rng import capture_rng_state
from specnn.runtime.train.schedulers import build_scheduler
from specnn.errors import Problem, RunError, SpecError
from specnn.runtime.files import BEST, CHECKPOINT_DIR, CONFUSION_FILE, LAST, write_atomic, write_json
from specnn.spec.train_rules import checkpoint_monitor, metric_choices, monitor_mode


class Session:
    """What one run's loop carries from step to step and epoch to epoch.

    Args:
        spec: the spec being trained.
        model: the built model, on ``device``.
        optimizer: its optimizer.
        prepared: the data (``trainer.Prepared``): sizes, task, classes.
        folder: the run folder.
        device: the training device.
        num_classes: the classifier's output width (classification metrics).

    Raises:
        SpecError: a metric that does not fit the model's output (top-k with too few classes),
            located in the spec.
    """

    def __init__(self, spec: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer, prepared: Any,
                 folder: Path, device: torch.device, num_classes: Optional[int] = None) -> None:
        train = spec.train
        self.spec, self.model, self.optimizer, self.folder = spec, model, optimizer, folder
        self.forward = torch.compile(model) if train.compile else model  # checkpoints hold `model`'s names
        batches = math.ceil(len(prepared.train) / train.batch_size)
        self.scheduler = build_scheduler(train.scheduler, optimizer, math.ceil(batches / train.accumulate), train.epochs)
        self.policy = StepPolicy(train, device, model, optimizer, self.scheduler)
        self.generator = torch.Generator().manual_seed(spec.seed)  # the shuffling order, independent of init
        self.train_metrics = self._metric_set(spec, prepared, device, num_classes)
        self.val_metrics = self._metric_set(spec, prepared, device, num_classes) if prepared.validation is not None else None
        self.state = LoopState(trackers=self._trackers(spec))
        self.fingerprint = spec_fingerprint(spec.model_dump(mode="json", by_alias=True))
        self.confusion: dict[str, Any] = {}
        self.resumed = False

    @property
    def lr(self) -> float:
        """The first parameter group's learning rate, as the next batch uses it."""
        return float(self.optimizer.param_groups[0]["lr"])

    # -- per epoch ----------------------------------------------------------------------------

    def begin_epoch(self, batches: int, device: torch.device) -> torch.Tensor:
        """Per-batch loss totals for the epoch (restored when resuming inside it); fixes its data order."""
        losses = torch.zeros(batches, device=device)
        state = self.state
        if self.train_metrics is not None:
            self.train_metrics.reset()
        if state.partial is not None:  # resuming mid-epoch: same order, same sums so far
            self.generator.set_state(state.order)
            losses.copy_(state.partial["losses"])
            if self.train_metrics is not None:
                self.train_metrics.load_state_dict(state.partial["metrics"])
            state.partial = None
        else:
            state.order, state.step_in_epoch = self.generator.get_state(), 0
        return losses

    def pause(self, step_in_epoch: int, losses: torch.Tensor) -> None:
        """Ctrl-C between two steps: remember the position in the epoch, for :meth:`save`."""
        self.state.step_in_epoch = step_in_epoch
        metrics = self.train_metrics.state_dict() if self.train_metrics is not None else None
        self.state.partial = {"losses": losses.detach().cpu(), "metrics": metrics}

    def finish_epoch(self, losses: torch.Tensor, samples: int, epoch: int) -> dict[str, Any]:
        """The epoch's mean training loss and train metrics; RunError on a NaN or infinite loss.

        The per-batch totals stay on the device during the epoch: this is the one host sync.
        """
        total = losses.sum().item()
        if not math.isfinite(total):
            raise self._non_finite(losses, epoch)
        record = {"train_loss": total / samples}
        if self.train_metrics is not None:
            record.update(self.split_metrics(self.train_metrics.compute(), "train"))
        return record

    def split_metrics(self, values: dict[str, Any], prefix: str) -> dict[str, float]:
        """Numbers for the epoch record; confusion matrices kept aside for their files."""
        numbers = {}
        for key, value in values.items():
            if isinstance(value, list):
                self.confusion[prefix] = value
            else:
                numbers[f"{prefix}_{key}"] = value
        return numbers

    def end_epoch(self, epoch: int, record: dict[str, Any], epochs: int) -> bool:
        """Checkpoints and confusion matrices after epoch ``epoch``; True when early stopping says stop."""
        state = self.state
        state.epoch, state.step_in_epoch = epoch, 0
        improved = state.trackers["best"].update(record)
        stopper = state.trackers.get("early_stopping")
        stop = stopper is not None and not stopper.update(record) and stopper.stale >= self.spec.train.early_stopping.patience
        due = epoch % self.spec.train.checkpoint.every == 0 or epoch == epochs or stop
        names = [name for name, wanted in ((LAST, due), (BEST, improved)) if wanted]
        if names:
            self.save(*names)
        self.write_confusion()
        return stop

    # -- files --------------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """The plain-dict checkpoint of this moment (see ``runtime/train/checkpoint.py``)."""
        state = self.state
        checkpoint = make_checkpoint(
            model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.policy.scaler,
            epoch=state.epoch, global_step=state.global_step, best=state.trackers["best"].best,
            data_order=state.order if state.step_in_epoch else self.generator.get_state(),
            rng=capture_rng_state(), fingerprint=self.fingerprint,
        )
        checkpoint["step_in_epoch"] = state.step_in_epoch
        checkpoint["epochs"] = self.spec.train.epochs  # a schedule may be fixed to it (_check_schedule_length)
        checkpoint["partial"] = state.partial
        checkpoint["trackers"] = {name: t.state_dict() for name, t in state.trackers.items()}
        return checkpoint

    def save(self, name: str, *also: str) -> Path:
        """Write this moment's checkpoint as ``name``; ``also`` get a copy of the same file.

        Copying the bytes costs a fraction of serialising the state again (about 0.4 ms against
        1.5 ms for a small model), which matters when epochs are short.
        """
        path = self.folder / CHECKPOINT_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.checkpoint(), path)
        for other in also:
            copy_checkpoint(path, path.with_name(other))
        return path

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint read by :func:`read_checkpoint`.

        Raises:
            SpecError: the checkpoint's schedule was fixed to another run length (see
                :meth:`_check_schedule_length`); nothing is restored.
        """
        self._check_schedule_length(checkpoint)
        restore_checkpoint(checkpoint, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                           scaler=self.policy.scaler, data_generator=self.generator)
        state = self.state
        state.epoch, state.global_step = checkpoint["epoch"], checkpoint["global_step"]
        state.step_in_epoch = checkpoint.get("step_in_epoch", 0)
        state.partial = checkpoint.get("partial")
        state.order = checkpoint["data_order"] if state.step_in_epoch else None
        for name, saved in checkpoint.get("trackers", {}).items():
            if name in state.trackers:
                state.trackers[name].load_state_dict(saved)
        self.resumed = True

    def write_confusion(self) -> None:
        """``confusion_matrix.json`` (train and val) and ``.csv`` (val, else train), rows = targets."""
        if not self.confusion:
            return
        write_json(self.folder / f"{CONFUSION_FILE}.json", {"classes": self.classes, **self.confusion})
        matrix = self.confusion.get("val", self.confusion.get("train"))
        names = self.classes or [str(i) for i in range(len(matrix))]
        rows = [",".join(["target\\predicted", *names])]
        rows += [",".join([name, *map(str, row)]) for name, row in zip(names, matrix)]
        write_atomic(self.folder / f"{CONFUSION_FILE}.csv", "\n".join(rows) + "\n")

    def interrupted(self, saved: bool, spec_file: Optional[str]) -> TrainingInterrupted:
        """The Ctrl-C outcome: what was kept, and the command that resumes."""
        where = None
        if saved:
            where = f"epoch {self.state.epoch + 1}, batch {self.state.step_in_epoch}" if self.state.step_in_epoch \
                else f"epoch {self.state.epoch}"
        return interrupted(self.folder, spec_file, where)

    # -- set-up -------------------------------------------------------------------------------

    def _metric_set(self, spec: Any, prepared: Any, device: torch.device,
                    num_classes: Optional[int]) -> Optional[MetricSet]:
        self.classes = prepared.classes
        task = LOSSES[spec.loss.kind].task
        chosen = metric_choices(spec.train, task)
        if not chosen:
            return None
        threshold = 0.5 if spec.loss.kind == "BCELoss" else 0.0
        try:
            # prepare_data range-checked the class targets (data.prepare_targets): no mask per step
            return MetricSet(chosen, task, num_classes, device, threshold, targets_in_range=True)
        except SpecError as error:
            raise SpecError([p.at(*spec.locate(p.path)) for p in error.problems]) from None

    @staticmethod
    def _trackers(spec: Any) -> dict[str, Tracker]:
        train = spec.train
        best = checkpoint_monitor(spec)
        trackers = {"best": Tracker(best, monitor_mode(best, train.checkpoint.mode))}
        if train.early_stopping is not None:
            stopping = train.early_stopping
            trackers["early_stopping"] = Tracker(stopping.monitor, monitor_mode(stopping.monitor, stopping.mode),
                                                 stopping.min_delta)
        return trackers

    def _check_schedule_length(self, checkpoint: dict[str, Any]) -> None:
        """A schedule whose length came from the run's (cosine without T_max, OneCycleLR) must keep it.

        Loading its state brings the old length back, so a resume with another ``train.epochs``
        would silently follow the old schedule (cosine climbs back up after it; OneCycleLR fails
        past its last step). Other schedules (StepLR, none) resume with any number of epochs.
        """
        scheduler = self.scheduler
        saved, now = scheduler.saved_length(checkpoint.get("scheduler")), scheduler.length
        if saved is None or saved == now:
            return
        kind, started = scheduler.kind, checkpoint.get("epochs")
        if isinstance(started, int) and started != self.spec.train.epochs:
            path = ("train", "epochs")
            message = f"the run started with epochs: {started} and its {kind} schedule was fixed to that length"
            hint = f"resume with epochs: {started}, or start a new run"
        else:  # same epochs (or an older checkpoint): fewer or more batches per epoch changed the length
            unit = "epochs" if kind == "CosineAnnealingLR" else "batches"
            path = ("train", "epochs") if started is None else ("train", "scheduler", kind)
            message = f"the run's {kind} schedule was fixed to {saved} {unit}; this spec makes it {now} {unit}"
            hint = ("resume with the epochs, batch_size, accumulate, warmup and data the run started with, "
                    "or start a new run")
        file, line, col = self.spec.locate(path)
        raise SpecError([Problem("resume-schedule", message, path, file=file, line=line, col=col, hint=hint)])

    def _non_finite(self, losses: torch.Tensor, epoch: int) -> RunError:
        batch = int((~torch.isfinite(losses)).nonzero()[0]) + 1
        kind = "nan" if math.isnan(float(losses[batch - 1])) else "infinite"
        last = self.folder / CHECKPOINT_DIR / LAST
        kept = f"the last good checkpoint is {last} (epoch {self.state.epoch})" if last.is_file() \
            else "no checkpoint was written yet"
        path = ("optimizer", self.spec.optimizer.kind)
        file, line, col = self.spec.locate(path)
        return RunError([Problem(
            "non-finite-loss", f"the training loss is {kind} at epoch {epoch}, batch {batch} of {len(losses)}: "
            f"training stopped; {kept}", path, file=file, line=line, col=col,
            hint="lower the learning rate, or set train.clip_grad",
        )])


def read_checkpoint(folder: Path, fingerprint: dict[str, str]) -> dict[str, Any]:
    """The run's ``checkpoints/last.pt``, checked against the spec (RunError; nothing is written)."""
    if not folder.is_dir():
        raise RunError.single("run", "cannot resume: the run folder does not exist", file=str(folder),
                              hint="train without --resume first")
    return load_checkpoint(folder / CHECKPOINT_DIR / LAST, fingerprint)
