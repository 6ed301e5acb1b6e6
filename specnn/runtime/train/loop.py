"""The training loop, in one function that reads top to bottom (the way nanoGPT's train.py does).

:func:`fit` runs every epoch of a :class:`~specnn.runtime.train.session.Session`: per batch the
forward pass in the configured precision, the loss, backward, and every ``accumulate`` batches
unscale → clip → optimizer step → scaler update → zero_grad → per-batch schedule; per epoch the
training totals (one host sync), evaluation, the epoch schedule, the log line, checkpoints and
the early stop. Rank 0 alone writes files (``if dist.is_main:``); every rank runs the same steps.

Ctrl-C (:class:`Interrupt`) is a flag read after each optimizer step, so ``last.pt`` is always
written between two steps, never inside one, with the position in the epoch: a resumed run
continues exactly. Costs per step, each only when its feature is on: accumulation multiplies the
loss by a Python float; clipping computes the gradient norm on the device (no host sync); fp16
adds the scaler; a per-batch scheduler sets the lr in Python. Nothing is read back per step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from specnn.errors import RunError, spec_problem
from specnn.runtime.data.tensors import Tensors, batches
from specnn.runtime.files import BEST, CHECKPOINT_DIR, LAST
from specnn.runtime.train.checkpoint import save_checkpoints
from specnn.runtime.train.distributed import per_rank_batch_size, resume_command
from specnn.runtime.train.logs import EpochLogs, Progress, format_epoch, write_confusion
from specnn.runtime.train.metrics import MetricSet
from specnn.runtime.train.shards import shard_batches, shard_length

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
Echo = Callable[[str], Any]
OnEpoch = Callable[[int, dict], bool]  # (epoch, its record) -> stop now?


def fit(session: Any, prepared: Any, loss_fn: torch.nn.Module, folder: Path, dist: Any, say: Echo,
        show_progress: bool = False, on_epoch: Optional[OnEpoch] = None) -> None:
    """Train ``session`` from its next epoch to ``train.epochs`` (or an early stop).

    Args:
        session: the run's state (``session.Session``), fresh or restored from a checkpoint.
        prepared: the data on the device (``trainer.Prepared``).
        loss_fn: the spec's loss.
        folder: the run folder (logs, checkpoints, confusion matrices; written by rank 0).
        dist: this rank's place in the job (``distributed.Distributed``).
        say: prints a line (a no-op when quiet and on ranks other than 0).
        show_progress: draw a progress bar per epoch.
        on_epoch: called with ``(epoch, record)`` once the epoch is logged; True stops training
            there, as early stopping does (a sweep pruning a trial).

    Raises:
        RunError: a NaN or infinite training loss (``last.pt`` keeps the last good epoch).
        TrainingInterrupted: Ctrl-C: ``last.pt`` is written between two optimizer steps.
    """
    s, spec, settings = session, session.spec, session.spec.train
    model, optimizer, scheduler, scaler, metrics = s.forward, s.optimizer, s.scheduler, s.scaler, s.train_metrics
    epochs, accumulate, clip = settings.epochs, settings.accumulate, settings.clip_grad
    autocast = autocast_for(settings.precision, dist.device)
    # Under torchrun: this rank's share of the global batch and of every epoch.
    batch_size = per_rank_batch_size(spec, dist.world_size)
    samples = shard_length(len(prepared.train), dist.world_size)
    n_batches = math.ceil(samples / batch_size)
    summed = getattr(loss_fn, "reduction", "mean") == "sum"
    logs = EpochLogs(folder, s.epoch if s.resumed else None, settings.tensorboard) if dist.is_main else None
    progress, confusion = Progress(show_progress), {}
    try:
        with Interrupt() as interrupt:
            for epoch in range(s.epoch + 1, epochs + 1):
                started = time.perf_counter()
                record: dict[str, Any] = {"epoch": epoch, "lr": float(optimizer.param_groups[0]["lr"])}
                # this epoch's data order (resuming inside it: the same order and the sums so far)
                losses, first = _start_epoch(s, n_batches, prepared.train.device), s.step_in_epoch
                stream = shard_batches(prepared.train, batch_size, dist, shuffle=settings.shuffle, generator=s.generator)
                kept, sizes = [], []  # detached batch losses, made into totals once per epoch
                progress.start(epoch, epochs, n_batches)
                model.train()
                for index, (inputs, y) in enumerate(islice(stream, first, None), first):
                    # forward and loss, in the configured precision
                    with autocast():
                        output = model(*inputs)
                        loss = loss_fn(output, y)
                    loss = _scalar(loss)
                    kept.append(loss.detach())
                    sizes.append(y.shape[0])
                    if metrics is not None:
                        metrics.update(output, y)
                    # backward (an accumulated group's gradient is that of one big batch)
                    weight = 1.0 if accumulate == 1 or summed else \
                        accumulation_weight(index, y.shape[0], samples, batch_size, accumulate)
                    scaled = loss * weight if weight != 1.0 else loss
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    if progress.enabled:
                        progress.advance(y.shape[0], _batch_total(loss, y.shape[0], summed))
                    # every `accumulate` batches: unscale → clip → step → scaler update → zero_grad → schedule
                    if (index + 1) % accumulate == 0 or index + 1 == n_batches:
                        if clip is not None:
                            if scaler is not None:
                                scaler.unscale_(optimizer)
                            clip_gradients(s.parameters, clip)
                        if scaler is not None:
                            scaler.step(optimizer)
                            scaler.update()
                        else:
                            optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                        scheduler.step_batch()
                        s.global_step += 1
                        if interrupt.requested:  # Ctrl-C: save between two steps, with the place in the epoch
                            _store_totals(losses, first, kept, None if summed else sizes)
                            s.step_in_epoch = index + 1
                            s.partial = {"losses": losses.detach().cpu(),
                                         "metrics": metrics.state_dict() if metrics is not None else None}
                            if dist.is_main:
                                save_checkpoints(s.state_dict(), folder, LAST)
                            raise interrupted(folder, spec.file, f"epoch {epoch}, batch {index + 1}")
                progress.close()
                # the epoch's training loss and metrics, summed over ranks: one host sync per epoch
                _store_totals(losses, first, kept, None if summed else sizes)
                if dist.active:
                    losses = dist.all_reduce_sums({"losses": losses})["losses"]
                total = losses.sum().item()
                if not math.isfinite(total):
                    raise non_finite_loss(spec, folder, losses, epoch, s.epoch)
                record["train_loss"] = total / (samples * dist.world_size)
                if metrics is not None:
                    metrics.all_reduce(dist)
                    record.update(set_aside(_prefixed(metrics.compute(), "train"), confusion))
                # evaluate: validation loss and metrics, no gradients
                if prepared.validation is not None:
                    record.update(set_aside(evaluate(model, prepared.validation, loss_fn, settings.batch_size,
                                                     s.val_metrics, autocast), confusion))
                # schedule: epoch and plateau schedulers read the finished epoch
                scheduler.step_epoch(record)
                # log: one line, one record in metrics.jsonl/.csv (and TensorBoard)
                record["seconds"] = round(time.perf_counter() - started, 4)
                if logs is not None:
                    logs.write(record)
                say(format_epoch(record, epochs))
                # checkpoint: last.pt every `checkpoint.every` epochs and at the end; best.pt on improvement
                s.epoch, s.step_in_epoch = epoch, 0
                improved = s.trackers["best"].update(record)
                stopper = s.trackers.get("early_stopping")
                stop = stopper is not None and not stopper.update(record) and \
                    stopper.stale >= settings.early_stopping.patience
                asked = on_epoch is not None and on_epoch(epoch, record)  # the caller stops here (a pruned trial)
                due = epoch % settings.checkpoint.every == 0 or epoch == epochs or stop or asked
                names = [name for name, wanted in ((LAST, due), (BEST, improved)) if wanted]
                if dist.is_main:
                    if names:
                        save_checkpoints(s.state_dict(), folder, *names)
                    write_confusion(folder, s.classes, confusion)
                # stop? early stopping, or a Ctrl-C that came after the epoch's last step
                if stop:
                    say(f"early stopping: {stopper.monitor} has not improved for "
                        f"{settings.early_stopping.patience} epochs")
                    break
                if asked:
                    break
                if interrupt.requested:
                    if dist.is_main:
                        save_checkpoints(s.state_dict(), folder, LAST)  # every rank says the same
                    raise interrupted(folder, spec.file, f"epoch {epoch}")
    except KeyboardInterrupt as pressed:
        # Raised inside a step (no handler on this thread, or a second Ctrl-C): the live state may be
        # half-updated, so only the checkpoint already on disk is offered.
        if isinstance(pressed, TrainingInterrupted):
            raise
        raise interrupted(folder, spec.file) from None
    finally:
        progress.close()
        if logs is not None:
            logs.close(failing=sys.exc_info()[0] is not None)  # a close error must not hide the real one


@torch.inference_mode()
def evaluate(model: torch.nn.Module, data: Tensors, loss_fn: torch.nn.Module, batch_size: int,
             metrics: Optional[MetricSet] = None, autocast: Callable[[], Any] = contextlib.nullcontext,
             prefix: str = "val") -> dict[str, Any]:
    """Mean loss per sample on ``data`` and the metrics, keyed ``val_loss``, ``val_accuracy`` ...

    The model is left in eval mode; :func:`fit` switches it back.
    """
    model.eval()
    total = torch.zeros((), device=data.device)
    summed = getattr(loss_fn, "reduction", "mean") == "sum"
    if metrics is not None:
        metrics.reset()
    for inputs, y in batches(data, batch_size):
        with autocast():
            output = model(*inputs)
            total += _batch_total(loss_fn(output, y), len(y), summed)
        if metrics is not None:
            metrics.update(output, y)
    result: dict[str, Any] = {f"{prefix}_loss": total.item() / len(data)}
    if metrics is not None:
        result.update(_prefixed(metrics.compute(), prefix))
    return result


# ---------------------------------------------------------------------------------------------
# the loop's parts


def autocast_for(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """The forward pass's precision: an autocast region (bf16, fp16 on CUDA), or nothing (fp32)."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None or (dtype is torch.float16 and device.type != "cuda"):
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def accumulation_weight(index: int, batch: int, samples: int, batch_size: int, accumulate: int) -> float:
    """The factor on batch ``index``'s mean loss so a group's gradient is that of one big batch.

    A mean loss over the group's samples is the batches' means weighted by their share of the
    group (the epoch's last group may be short); a summed loss needs no factor.
    """
    group = accumulate * batch_size
    start = index // accumulate * group
    return batch / (min(samples, start + group) - start)


def clip_gradients(parameters: list[torch.Tensor], clip: Any) -> None:
    """``train.clip_grad``: by the gradients' total norm, or each value."""
    if clip.norm is not None:
        torch.nn.utils.clip_grad_norm_(parameters, clip.norm, clip.norm_type)
    else:
        torch.nn.utils.clip_grad_value_(parameters, clip.value)


def set_aside(values: dict[str, Any], confusion: dict[str, Any]) -> dict[str, Any]:
    """The numbers of ``values`` for the epoch record; confusion matrices (lists) go to ``confusion``."""
    numbers = {}
    for key, value in values.items():
        if isinstance(value, list):
            confusion[key.replace("_confusion_matrix", "")] = value  # train / val (train_<output> ...)
        else:
            numbers[key] = value
    return numbers


def non_finite_loss(spec: Any, folder: Path, losses: torch.Tensor, epoch: int, kept_epoch: int) -> RunError:
    """Training stops at a NaN or infinite epoch loss, naming the batch and the checkpoint kept."""
    batch = int((~torch.isfinite(losses)).nonzero()[0]) + 1
    kind = "nan" if math.isnan(float(losses[batch - 1])) else "infinite"
    last = folder / CHECKPOINT_DIR / LAST
    kept = f"the last good checkpoint is {last} (epoch {kept_epoch})" if last.is_file() \
        else "no checkpoint was written yet"
    return RunError([spec_problem(
        spec, ("optimizer", spec.optimizer.kind), f"the training loss is {kind} at epoch {epoch}, batch {batch} of "
        f"{len(losses)}: training stopped; {kept}", code="non-finite-loss",
        hint="lower the learning rate, or set train.clip_grad",
    )])


def _start_epoch(session: Any, n_batches: int, device: torch.device) -> torch.Tensor:
    """The epoch's per-batch loss totals, zero or as a Ctrl-C checkpoint left them; fixes the data order."""
    losses = torch.zeros(n_batches, device=device)
    metrics = session.train_metrics
    if metrics is not None:
        metrics.reset()
    if session.partial is not None:  # resuming mid-epoch: same order, same sums so far
        session.generator.set_state(session.order)
        losses.copy_(session.partial["losses"])
        if metrics is not None:
            metrics.load_state_dict(session.partial["metrics"])
        session.partial = None
    else:
        session.order, session.step_in_epoch = session.generator.get_state(), 0
    return losses


def _scalar(loss: torch.Tensor) -> torch.Tensor:
    # reduction: none gives a loss per element; train on its mean.
    return loss if loss.ndim == 0 else loss.mean()


def _prefixed(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}_{key}": value for key, value in values.items()}


def _store_totals(losses: torch.Tensor, first: int, kept: list, sizes: Optional[list]) -> None:
    """``losses[first:first + len(kept)]`` = the kept batch losses as totals (means times ``sizes``)."""
    if not kept:
        return
    totals = torch.stack(kept).to(losses.dtype)
    if sizes is not None:
        totals = totals * torch.tensor(sizes, dtype=losses.dtype).to(losses.device)
    losses[first:first + len(kept)] = totals


def _batch_total(loss: torch.Tensor, batch_size: int, summed: bool) -> torch.Tensor:
    """The batch's summed loss, so epoch means are per sample whatever the reduction."""
    if summed:
        return loss.detach()
    return _scalar(loss).detach() * batch_size


# ---------------------------------------------------------------------------------------------
# Ctrl-C


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
    last = folder / CHECKPOINT_DIR / LAST
    command = resume_command(spec_file or "<spec>", folder)  # with --nproc N under torchrun
    if saved_at is not None:
        return TrainingInterrupted(f"interrupted: saved {last} ({saved_at}); resume with: {command}")
    if last.is_file():
        return TrainingInterrupted(f"interrupted: the last checkpoint is {last}; resume with: {command}")
    return TrainingInterrupted("interrupted before the first checkpoint: nothing to resume")
