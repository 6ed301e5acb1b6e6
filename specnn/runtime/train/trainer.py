"""Training: one visible loop, in the nanoGPT style.

:func:`train` prepares everything (seeds, compiled model, data on the device, loss, optimizer),
then runs :func:`train_one_epoch` and :func:`evaluate` once per epoch and writes the run folder.
Later features (schedulers, metrics, checkpoints as plain dicts, early stopping, AMP, DDP) go
into these small functions, in the order the loop shows; there is no callback framework.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from specnn.catalog.losses import LOSSES
from specnn.runtime.train.losses import class_weights, make_loss
from specnn.runtime.data import tensors as data_module
from specnn.runtime.data import preprocess
from specnn.runtime.data.tensors import Tensors, batches
from specnn.runtime.train.distributed import per_rank_batch_size, shard_batches, shard_length
from specnn.runtime.train.logs import EpochLogs, Progress, check_resumable_log, check_tensorboard, format_epoch
from specnn.runtime.train.loop import Interrupt, TrainingInterrupted
from specnn.runtime.train.metrics import MetricSet
from specnn.runtime.train.session import Session, read_checkpoint
from specnn.runtime.train.run_folder import note_folder, open_run_folder, remove_what_this_run_wrote
from specnn.errors import Problem, SpecError
from specnn.runtime.files import CHECKPOINT_DIR, LAST, META_FILE, WEIGHTS_FILE, save_state_dict, write_json, write_spec

Echo = Callable[[str], Any]


@dataclass
class Prepared:
    """What the loop needs besides the model: data on the device and what the task is."""

    train: Tensors
    validation: Optional[Tensors]
    classes: Optional[list[str]]
    task: str
    preprocessor: Any = None  # runtime.preprocess.Preprocessor, fitted on the training split
    class_weight: Optional[list[float]] = None  # the loss's per-class weights (loss.<Loss>.class_weight)


@dataclass
class Trained:
    """A finished training on this rank: its run folder, complete but for the exports, and what it holds.

    Attributes:
        folder: the run folder (``spec.yaml``, ``model.py``, the logs, checkpoints, ``weights.pt``,
            ``meta.json``, ``preprocess.json``; written by rank 0).
        compiled: the compiled spec.
        model: the trained model (unwrapped from DDP), in eval mode.
        classes: label names for classification, else None.
        meta: what ``meta.json`` holds.
    """

    folder: Path
    compiled: Any
    model: torch.nn.Module
    classes: Optional[list[str]]
    meta: dict[str, Any]


def train_run(spec: Any, out: Union[str, Path, None], dist: Any, *, say: Echo,
              resume: Union[bool, str, Path], progress: bool, overwrite: bool = False) -> Trained:
    """Train ``spec`` on one rank of ``dist`` (``distributed.Distributed``; one rank outside torchrun).

    ``say`` prints a line (a no-op when quiet and on ranks other than 0); the other arguments
    are :func:`specnn.train`'s. The exports are the caller's (``specnn/launch.py``): a finished
    training is saved before any of them runs.

    A run that stops before it has a checkpoint (Ctrl-C during start-up, torch.compile failing at
    the first step) takes back the files it wrote; a Ctrl-C before the run folder is chosen
    leaves as a plain KeyboardInterrupt (nothing was written).
    """
    from specnn.compiler import write_model_py
    from specnn.runtime.train import distributed

    compiled, model, prepared, loss_fn, optimizer = _set_up(spec, dist, say)
    folder = open_run_folder(spec, out, resume, overwrite, dist, say)  # rank 0 decides, for every rank
    written = note_folder(folder) if dist.is_main else None  # what a run that stops too early takes back
    output_shape = next(iter(compiled.outputs.values()))
    session = Session(spec, model, optimizer, prepared, folder, dist.device, output_shape[0] if output_shape else None)
    distributed.attach(session, dist)  # DDP forward, rank-0 checkpoints; as is for one process
    try:
        if resume or distributed.resume_after_restart(dist, folder / CHECKPOINT_DIR / LAST):
            session.restore(read_checkpoint(folder, session.fingerprint))  # read and checked before anything is written
            check_resumable_log(folder, session.state.epoch)  # metrics.jsonl holds the epochs trained so far
        if dist.is_main:
            folder.mkdir(parents=True, exist_ok=True)
            write_spec(compiled, spec, folder)
            write_model_py(compiled, folder)
        fit(session, prepared, loss_fn, say, progress and dist.is_main)
    except KeyboardInterrupt:
        _take_back(written)
        raise
    except Exception as error:
        failure = compile_failure(spec, error)
        if failure is None:
            raise
        _take_back(written)  # it fails at the first forward: the files written so far hold nothing of use
        raise failure from None
    return _finish(session, compiled, prepared)


def _set_up(spec: Any, dist: Any, say: Echo) -> tuple:
    """Everything checked and built before the run folder is touched: a problem here writes nothing.

    Returns:
        ``(compiled, model, prepared, loss_fn, optimizer)``, on this rank's device.
    """
    from specnn.compiler import build_model, compile_spec
    from specnn.runtime.train import distributed

    distributed.per_rank_batch_size(spec, dist.world_size)  # an indivisible global batch fails before any work
    seed_everything(spec.seed)
    compiled = compile_spec(spec)
    for warning in compiled.warnings:
        say(warning.format())
    device = dist.device  # on CUDA under torchrun: this rank's local GPU
    check_precision(spec, device)
    check_tensorboard(spec)  # a missing extra fails before any file, like the spec's own rules
    model = build_model(compiled).to(device)  # the only way a model is built
    prepared = prepare_data(spec, compiled, device)
    output_shape = next(iter(compiled.outputs.values()))
    prepared.class_weight = class_weights(spec, prepared.train.y, output_shape[-1] if output_shape else 1,
                                          prepared.classes)
    return compiled, model, prepared, make_loss(spec, device, prepared.class_weight), make_optimizer(spec, model)


def _take_back(written: Any) -> None:
    """Remove the files of a run that stopped without a checkpoint (``written``: its ``FolderBefore``).

    A run with ``checkpoints/last.pt`` (resumed, or interrupted after a step) keeps everything.
    """
    if written is not None and not (written.path / CHECKPOINT_DIR / LAST).is_file():
        remove_what_this_run_wrote(written)


def _finish(session: Session, compiled: Any, prepared: Prepared) -> Trained:
    """After the last epoch: final weights, ``meta.json`` and the preprocessing (rank 0)."""
    spec, model, folder, dist = session.spec, session.model, session.folder, session.dist
    model.eval()
    meta = run_meta(spec, compiled, prepared, dist.device)
    try:
        if dist.is_main:
            save_state_dict(model, folder / WEIGHTS_FILE)
            write_json(folder / META_FILE, meta)
            prepared.preprocessor.save(folder)
    except KeyboardInterrupt:
        raise session.interrupted(False, spec.file) from None  # last.pt holds the finished training
    return Trained(folder, compiled, model, prepared.classes, meta)


def fit(session: Session, prepared: Prepared, loss_fn, say: Echo, show_progress: bool = False) -> None:
    """The epoch loop: train → evaluate → schedule → log → checkpoint → stop?, once per epoch.

    Raises:
        RunError: a NaN or infinite training loss (``last.pt`` keeps the last good epoch).
        TrainingInterrupted: Ctrl-C: ``last.pt`` is written between two optimizer steps.
    """
    spec, settings = session.spec, session.spec.train
    epochs = settings.epochs
    # rank 0 alone writes metrics.jsonl/.csv; the records it writes are already summed over ranks
    logs = EpochLogs(session.folder, session.state.epoch if session.resumed else None, settings.tensorboard) \
        if session.dist.is_main else None
    progress = Progress(show_progress)
    try:
        with Interrupt() as interrupt:
            for epoch in range(session.state.epoch + 1, epochs + 1):
                started = time.perf_counter()
                record: dict[str, Any] = {"epoch": epoch, "lr": session.lr}
                # train: one pass over the training split (stops between two steps on Ctrl-C)
                progress.start(epoch, epochs, math.ceil(len(prepared.train) / settings.batch_size))
                record.update(train_one_epoch(session, prepared.train, loss_fn, epoch, interrupt, progress))
                progress.close()
                if interrupt.requested:
                    session.save(LAST)
                    raise session.interrupted(True, spec.file)
                # evaluate: validation loss and metrics, no gradients
                if prepared.validation is not None:
                    record.update(evaluate(session.forward, prepared.validation, loss_fn, settings.batch_size,
                                           session.val_metrics, session.policy.autocast, session.split_metrics))
                # schedule: epoch and plateau schedulers read the finished epoch
                session.scheduler.step_epoch(record)
                # log: one line, one record in metrics.jsonl/.csv (and TensorBoard)
                record["seconds"] = round(time.perf_counter() - started, 4)
                if logs is not None:
                    logs.write(record)
                say(format_epoch(record, epochs))
                # checkpoint and stop?: last.pt/best.pt, early stopping
                if session.end_epoch(epoch, record, epochs):
                    say(f"early stopping: {settings.early_stopping.monitor} has not improved for "
                        f"{settings.early_stopping.patience} epochs")
                    break
                if interrupt.requested:
                    session.save(LAST)  # rank 0 writes it: every rank says the same
                    raise session.interrupted(True, spec.file)
    except KeyboardInterrupt as stop:
        # Raised inside a step (no handler on this thread, or a second Ctrl-C): the live state may be
        # half-updated, so only the checkpoint already on disk is offered.
        if isinstance(stop, TrainingInterrupted):
            raise
        raise session.interrupted(False, spec.file) from None
    finally:
        progress.close()
        if logs is not None:
            logs.close()


def train_one_epoch(session: Session, data: Tensors, loss_fn, epoch: int, interrupt: Interrupt,
                    progress: Progress) -> dict[str, float]:
    """One pass over ``data`` (the rest of one, when resuming inside it); mean loss and train metrics.

    Per-batch loss totals stay on the device: one host sync per epoch, not one per step.
    """
    model, policy, state, dist = session.forward, session.policy, session.state, session.dist
    # Under torchrun: this rank's share of the global batch and of the epoch (runtime/train/distributed.py).
    batch_size = per_rank_batch_size(session.spec, dist.world_size)
    samples = shard_length(len(data), dist.world_size)
    n_batches = math.ceil(samples / batch_size)
    summed = getattr(loss_fn, "reduction", "mean") == "sum"
    losses = session.begin_epoch(n_batches, data.device)
    metrics = session.train_metrics
    stream = shard_batches(data, batch_size, dist, shuffle=session.spec.train.shuffle, generator=session.generator)
    # The batches' detached losses and sizes, made into per-sample totals once per epoch (and on
    # Ctrl-C): a tensor op per step here costs more than the rest of the loop's bookkeeping.
    first, kept, sizes = state.step_in_epoch, [], []
    model.train()
    for index, (inputs, y) in enumerate(islice(stream, first, None), first):
        size = y.shape[0]
        # forward, in the configured precision
        with policy.autocast():
            output = model(*inputs)
            loss = loss_fn(output, y)
        loss = _scalar(loss)
        kept.append(loss.detach())
        sizes.append(size)
        if metrics is not None:
            metrics.update(output, y)
        # backward; every `accumulate` batches: clip → step → zero_grad → per-batch lr
        policy.backward(loss, policy.weight(index, size, samples, batch_size, summed))
        if progress.enabled:
            progress.advance(size, _batch_total(loss, size, loss_fn))
        if policy.is_step(index, n_batches):
            policy.step()
            state.global_step += 1
            if interrupt.requested:
                _store_totals(losses, first, kept, None if summed else sizes)
                session.pause(index + 1, losses)
                return {}
    _store_totals(losses, first, kept, None if summed else sizes)
    # summed over ranks (one collective) before anything is printed or logged
    return session.finish_epoch(dist.reduce_epoch(losses, metrics), samples * dist.world_size, epoch)


@torch.inference_mode()
def evaluate(model, data: Tensors, loss_fn, batch_size: int, metrics: Optional[MetricSet] = None,
             autocast: Callable[[], Any] = contextlib.nullcontext,
             split: Optional[Callable[[dict, str], dict]] = None, prefix: str = "val") -> dict[str, Any]:
    """Mean loss per sample on ``data`` and the metrics, keyed ``val_loss``, ``val_accuracy`` ...

    ``split`` sorts metric values into numbers and kept-aside matrices (default: keep all).
    The model is left in eval mode; :func:`train_one_epoch` switches it back.
    """
    model.eval()
    total = torch.zeros((), device=data.device)
    if metrics is not None:
        metrics.reset()
    for inputs, y in batches(data, batch_size):
        with autocast():
            output = model(*inputs)
            total += _batch_total(loss_fn(output, y), len(y), loss_fn)
        if metrics is not None:
            metrics.update(output, y)
    result: dict[str, Any] = {f"{prefix}_loss": total.item() / len(data)}
    if metrics is not None:
        values = metrics.compute()
        result.update(split(values, prefix) if split else {f"{prefix}_{k}": v for k, v in values.items()})
    return result


def _scalar(loss: torch.Tensor) -> torch.Tensor:
    # reduction: none gives a loss per element; train on its mean.
    return loss if loss.ndim == 0 else loss.mean()


def _store_totals(losses: torch.Tensor, first: int, kept: list, sizes: Optional[list]) -> None:
    """``losses[first:first + len(kept)]`` = the kept batch losses as totals (means times ``sizes``)."""
    if not kept:
        return
    totals = torch.stack(kept).to(losses.dtype)
    if sizes is not None:
        totals = totals * torch.tensor(sizes, dtype=losses.dtype).to(losses.device)
    losses[first:first + len(kept)] = totals


def _batch_total(loss: torch.Tensor, batch_size: int, loss_fn) -> torch.Tensor:
    """The batch's summed loss, so epoch means are per sample whatever the reduction."""
    if getattr(loss_fn, "reduction", "mean") == "sum":
        return loss.detach()
    return _scalar(loss).detach() * batch_size


# ---------------------------------------------------------------------------------------------
# set-up


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (every device) so a CPU run repeats bit for bit."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_data(spec: Any, compiled: Any, device: torch.device) -> Prepared:
    """Load, check, split and move the data to the device, targets in the loss's form."""
    output_shape = single_output(spec, compiled)
    arrays, preprocessor = preprocess.load_training_arrays(spec)  # categorical columns encoded
    check_classes(compiled, arrays)
    preprocess.check_input_width(spec, preprocessor, arrays.features, compiled.inputs)
    features = data_module.match_inputs(spec, compiled.inputs, arrays.features)
    loss = spec.loss.kind
    arrays.targets = data_module.prepare_targets(arrays.targets, loss, output_shape)
    arrays.features = features
    train_arrays, val_arrays = data_module.split(arrays, spec.data.validation_split, spec.seed)
    preprocess.fit_on_training_split(spec, preprocessor, train_arrays, val_arrays)  # never on validation rows
    to_device = lambda a: data_module.to_tensors(a.features, a.targets, device)  # noqa: E731
    return Prepared(
        to_device(train_arrays),
        to_device(val_arrays) if val_arrays is not None else None,
        arrays.classes,
        LOSSES[loss].task,
        preprocessor,
    )


def single_output(spec: Any, compiled: Any) -> tuple[int, ...]:
    """The model's one output shape: training applies one loss to one output."""
    if len(compiled.outputs) != 1:
        raise SpecError([_problem(spec, ("model", "outputs"), "training applies one loss to one output; this model "
                                  f"has {len(compiled.outputs)} outputs ({', '.join(compiled.outputs)})",
                                  hint="list one output node in model.outputs")])
    return tuple(next(iter(compiled.outputs.values())))


def check_classes(compiled: Any, arrays: Any) -> None:
    """Lint S108, known only now: a classifier's output width must equal the data's class count."""
    from specnn.compiler.lints import check_output_classes, count_classes

    problems = check_output_classes(compiled, count_classes(arrays.targets, arrays.classes))
    if problems:
        raise SpecError(problems)


def check_precision(spec: Any, device: torch.device) -> None:
    """fp16 needs CUDA's gradient scaler: on another device it is a spec problem at ``train.precision``."""
    if spec.train.precision == "fp16" and device.type != "cuda":
        raise SpecError([_problem(spec, ("train", "precision"), f"fp16 mixed precision needs a CUDA device; this run "
                                  f"is on {device.type}", code="precision", hint="use precision: bf16")])


def compile_failure(spec: Any, error: Exception) -> Optional[SpecError]:
    """torch.compile failing on this machine (no C++ compiler, an unsupported op ...) as a located problem.

    It fails at the first forward pass, not at ``torch.compile``; its own message is a page of
    internals, so the first line is kept. Returns None for any other error.
    """
    if not spec.train.compile:
        return None
    from torch._dynamo.exc import TorchDynamoException  # already imported: compile ran

    if not isinstance(error, TorchDynamoException):
        return None
    first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return SpecError([_problem(spec, ("train", "compile"), f"torch.compile failed on this machine: {first}",
                               code="compile", hint="set train.compile: false, or fix what torch.compile reports")])


def make_optimizer(spec: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The torch.optim optimizer the spec names, over all the model's parameters."""
    return getattr(torch.optim, spec.optimizer.kind)(model.parameters(), **spec.optimizer.args.changed())


def run_meta(spec: Any, compiled: Any, prepared: Prepared, device: torch.device) -> dict[str, Any]:
    """What ``meta.json`` records: enough to use the model without the training data."""
    from specnn import __version__

    (output_name, output_shape), = compiled.outputs.items()
    return {
        "name": spec.name,
        "task": prepared.task,
        "classes": prepared.classes,
        "inputs": [{"name": name, "shape": list(t.shape), "dtype": t.dtype} for name, t in compiled.inputs.items()],
        "output": {"name": output_name, "shape": list(output_shape)},
        "samples": {"train": len(prepared.train), "validation": len(prepared.validation or [])},
        "device": str(device),
        "versions": {"specnn": __version__, "torch": torch.__version__},
        **({"class_weight": prepared.class_weight} if prepared.class_weight is not None else {}),
    }


def _problem(spec: Any, path: tuple, message: str, code: str = "train", hint: Optional[str] = None) -> Problem:
    file, line, col = spec.locate(path)
    return Problem(code, message, path, file=file, line=line, col=col, hint=hint)
