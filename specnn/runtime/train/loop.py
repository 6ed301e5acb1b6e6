"""What the training loop carries between steps and epochs, and how it is saved and restored.

:class:`StepPolicy` turns one batch's loss into gradients and, every ``accumulate`` batches,
into an optimizer step (mixed precision, gradient scaler, clipping, scheduler). :class:`Tracker`
follows a monitored epoch value (best checkpoint, early stopping). :class:`LoopState` holds the
counters and is what a checkpoint (a plain dict, ``runtime/train/checkpoint.py``) is made from and
restored into. :class:`Interrupt` turns Ctrl-C into a flag the loop reads after each optimizer
step, so a checkpoint is always taken between two steps, never inside one.

Costs per step, each only when its feature is on: accumulation multiplies the loss by a Python
float; clipping computes the gradient norm on the device (no host sync); fp16 adds the scaler's
scale/unscale/update; a per-batch scheduler sets the lr in Python. Nothing reads a value back
to the host per step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from specnn.runtime.files import CHECKPOINT_DIR, LAST
from specnn.runtime.train.schedulers import Scheduler

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class StepPolicy:
    """Backward and optimizer step for one batch, as ``train:`` configures them.

    Args:
        train: the spec's ``train`` section (precision, accumulate, clip_grad).
        device: the training device.
        model: the module whose parameters are clipped.
        optimizer: the run's optimizer.
        scheduler: stepped after every optimizer step (:meth:`Scheduler.step_batch`).
    """

    def __init__(self, train: Any, device: torch.device, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, scheduler: Scheduler) -> None:
        self.accumulate = train.accumulate
        self.clip = train.clip_grad
        self.dtype = AUTOCAST_DTYPES.get(train.precision)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if train.precision == "fp16" else None
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer, self.scheduler = optimizer, scheduler

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass's precision: an autocast region, or nothing for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def is_step(self, index: int, batches: int) -> bool:
        """Whether batch ``index`` (0-based in the epoch) ends a group of ``accumulate`` batches."""
        return (index + 1) % self.accumulate == 0 or index + 1 == batches

    def weight(self, index: int, batch: int, samples: int, batch_size: int, summed: bool) -> float:
        """The factor on batch ``index``'s loss so a group's gradient is that of one big batch.

        A mean loss over the group's samples is the batches' means weighted by their share of the
        group (the epoch's last group may be short); a summed loss needs no factor.
        """
        if self.accumulate == 1 or summed:
            return 1.0
        group = self.accumulate * batch_size
        start = index // self.accumulate * group
        return batch / (min(samples, start + group) - start)

    def backward(self, loss: torch.Tensor, weight: float) -> None:
        if weight != 1.0:
            loss = loss * weight
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self) -> None:
        """clip → optimizer step (through the scaler) → zero_grad → per-batch lr schedule."""
        if self.clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            if self.clip.norm is not None:
                torch.nn.utils.clip_grad_norm_(self.parameters, self.clip.norm, self.clip.norm_type)
            else:
                torch.nn.utils.clip_grad_value_(self.parameters, self.clip.value)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step_batch()

    def steps_per_epoch(self, batches: int) -> int:
        return math.ceil(batches / self.accumulate)


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


@dataclass
class LoopState:
    """Counters and the data order: with the model, optimizer, scheduler and RNG, a checkpoint.

    Attributes:
        epoch: epochs completed.
        global_step: optimizer steps taken.
        step_in_epoch: batches of epoch ``epoch + 1`` already trained (a Ctrl-C checkpoint).
        order: the shuffling generator's state when epoch ``epoch + 1`` began.
        partial: that epoch's per-batch losses and train-metric accumulators so far, or None.
    """

    epoch: int = 0
    global_step: int = 0
    step_in_epoch: int = 0
    order: Optional[torch.Tensor] = None
    partial: Optional[dict[str, Any]] = None
    trackers: dict[str, Tracker] = field(default_factory=dict)


class Interrupt:
    """Ctrl-C as a flag read after each optimizer step (inside ``with``, on the main thread).

    A second Ctrl-C raises KeyboardInterrupt at once, as Python's default handler does.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "Interrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; ``message`` says what was saved and how to resume."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def interrupted(folder: Path, spec_file: Optional[str], saved_at: Optional[str] = None) -> TrainingInterrupted:
    """The Ctrl-C outcome: what was kept (``saved_at``: where the checkpoint just saved stands), how to resume."""
    from specnn.runtime.train.distributed import resume_command

    last = folder / CHECKPOINT_DIR / LAST
    command = resume_command(spec_file or "<spec>", folder)  # with --nproc N under torchrun
    if saved_at is not None:
        return TrainingInterrupted(f"interrupted: saved {last} ({saved_at}); resume with: {command}")
    if last.is_file():
        return TrainingInterrupted(f"interrupted: the last checkpoint is {last}; resume with: {command}")
    return TrainingInterrupted("interrupted before the first checkpoint: nothing to resume")
