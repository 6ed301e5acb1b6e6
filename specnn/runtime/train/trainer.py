"""Training a spec on one rank: everything set up and checked, the loop run, the run folder finished.

:func:`train_run` builds what the loop needs (seeds, compiled model, data on the device, loss,
optimizer), chooses the run folder, restores a checkpoint when resuming, runs
:func:`~specnn.runtime.train.loop.fit` and writes the final weights, ``meta.json`` and the
preprocessing. A problem found while setting up writes nothing; a run that stops before its first
checkpoint takes back what it wrote. The exports are ``specnn/launch.py``'s, after all of this.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from specnn.catalog.losses import LOSSES
from specnn.runtime.data.batch_sizes import check_batch_sizes
from specnn.runtime.train.best_weights import restore_best_weights
from specnn.runtime.train.losses import class_weights, make_loss
from specnn.runtime.train.outputs import OUTPUTS_TASK, make_outputs_loss, output_class_weights
from specnn.runtime.data.tensors import Tensors
from specnn.runtime.train.checkpoint import read_checkpoint
from specnn.runtime.train.determinism import apply_determinism
from specnn.runtime.train.distributed import per_rank_batch_size
from specnn.runtime.train.logs import check_resumable_log, check_tensorboard
from specnn.runtime.train.loop import OnEpoch, fit, interrupted
from specnn.runtime.train.manifest import recording
from specnn.runtime.train.session import Session
from specnn.runtime.train.disk_faults import disk_fault, refused_write
from specnn.runtime.train.run_folder import open_run_folder, remove_what_this_run_wrote
from specnn.errors import SpecError, ToolError, spec_problem
from specnn.runtime.files import (
    CHECKPOINT_DIR, LAST, META_FILE, MODEL_FILE, TEST_FILE, WEIGHTS_FILE, save_state_dict, write_atomic, write_json,
    write_spec,
)

Echo = Callable[[str], Any]


@dataclass
class Prepared:
    """What the loop needs besides the model: data on the device and what the task is."""

    train: Tensors
    validation: Optional[Tensors]
    classes: Optional[list[str]]
    task: str
    preprocessor: Any = None  # runtime.preprocess.Preprocessor, fitted on the training split
    class_weight: Any = None  # the per-class weights (loss.<Loss>.class_weight): a list, or per output {name: list}
    test: Optional[Tensors] = None  # data.test_split: evaluated once, after training


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
              resume: Union[bool, str, Path], progress: bool, overwrite: bool = False,
              on_epoch: Optional[OnEpoch] = None, hold: Optional[contextlib.ExitStack] = None) -> Trained:
    """Train ``spec`` on one rank of ``dist`` (``distributed.Distributed``; one rank outside torchrun).

    ``say`` prints a line (a no-op when quiet and on ranks other than 0); the other arguments
    are :func:`specnn.train`'s. The exports are the caller's (``specnn/launch.py``): a finished
    training is saved before any of them runs.

    The run folder is claimed (``run_folder.claim_run_folder``) from its choice until this returns,
    or, given ``hold``, until the caller closes ``hold`` (the launcher keeps it through the exports).

    A run that stops before it has a checkpoint (Ctrl-C during start-up, torch.compile failing at
    the first step, a write the system refuses) takes back the files it wrote; a Ctrl-C before
    the run folder is chosen leaves as a plain KeyboardInterrupt (nothing was written).

    Raises:
        RunError: besides :func:`specnn.train`'s: a refused write (a full disk, a read-only folder,
            a file size limit), naming the file, the reason and the last good checkpoint.
    """
    compiled, model, prepared, loss_fn, optimizer = _set_up(spec, dist, say)
    output_shape = next(iter(compiled.outputs.values()))
    session = Session(spec, model, optimizer, prepared, dist, output_shape[0] if output_shape else None, loss_fn)
    with contextlib.ExitStack() as claimed:
        chosen = claimed.enter_context(open_run_folder(spec, out, resume, overwrite, dist, say))  # rank 0 decides
        folder = chosen.path
        try:
            _start(session, compiled, folder, dist, say, resume)
            with recording(spec, compiled, folder, dist.device, resumed=session.resumed, epoch=session.epoch,
                           main=dist.is_main):  # manifest.json: what made this run, and how the session ended
                fit(session, prepared, loss_fn, folder, dist, say, progress and dist.is_main,
                    on_epoch if dist.world_size == 1 else None)
            kept = restore_best_weights(spec, model, folder, session.epoch, say) if dist.is_main else session.epoch
            trained = _finish(session, compiled, prepared, folder, dist, say, kept)
        except KeyboardInterrupt:
            _take_back(chosen.before)
            raise
        except Exception as error:
            failure = compile_failure(spec, error)  # torch.compile failing at the first forward
            if failure is None and refused_write(error, folder) is None:  # or a write the system refused
                raise
            _take_back(chosen.before)  # without a checkpoint, the files written so far hold nothing of use
            raise (failure or disk_fault(error, folder, spec.file)) from None
        if hold is not None:
            hold.push(claimed.pop_all())
    return trained


def _start(session: Session, compiled: Any, folder: Path, dist: Any, say: Echo, resume: Union[bool, str, Path]) -> None:
    """Restore the checkpoint when resuming (checked before anything is written), then write the spec and model.py."""
    spec = session.spec
    if resume or (dist.restart_count > 0 and (folder / CHECKPOINT_DIR / LAST).is_file()):
        session.load_state_dict(read_checkpoint(folder, session.fingerprint))
        check_resumable_log(folder, session.epoch)  # metrics.jsonl holds the epochs trained so far
        if session.epoch >= spec.train.epochs:
            say(f"nothing to train: the run in {folder} has trained all {spec.train.epochs} epochs of "
                "train.epochs; to train longer, raise train.epochs in the spec and resume again")
    if dist.is_main:
        write_spec(compiled, spec, folder)
        write_atomic(folder / MODEL_FILE, compiled.source)
    if spec.train.compile and session.epoch < spec.train.epochs:  # silent for tens of seconds
        say("train.compile: torch.compile compiles the model during the first steps (often 10-60 s) ...")


def _set_up(spec: Any, dist: Any, say: Echo) -> tuple:
    """Everything checked and built before the run folder is touched: a problem here writes nothing.

    Returns:
        ``(compiled, model, prepared, loss_fn, optimizer)``, on this rank's device.
    """
    from specnn.compiler import build_model, compile_spec

    per_rank_batch_size(spec, dist.world_size)  # an indivisible global batch fails before any work
    apply_determinism(spec.train.deterministic, dist.device)
    seed_everything(spec.seed)
    compiled = compile_spec(spec)
    for warning in compiled.warnings:
        say(warning.format())
    device = dist.device  # on CUDA under torchrun: this rank's local GPU
    check_precision(spec, device)
    check_tensorboard(spec)  # a missing extra fails before any file, like the spec's own rules
    model = build_model(compiled).to(device)  # the only way a model is built
    prepared = prepare_data(spec, compiled, device, say)
    check_batch_sizes(spec, compiled, len(prepared.train) // dist.world_size, per_rank_batch_size(spec, dist.world_size))
    if spec.several_losses:  # a loss per output: runtime/train/outputs.py
        prepared.class_weight = output_class_weights(spec, prepared.preprocessor.outputs, prepared.train.y)
    else:
        output_shape = next(iter(compiled.outputs.values()))
        prepared.class_weight = class_weights(spec, prepared.train.y, output_shape[-1] if output_shape else 1,
                                              prepared.classes)
    return compiled, model, prepared, training_loss(spec, compiled, prepared, device), make_optimizer(spec, model)


def training_loss(spec: Any, compiled: Any, prepared: Prepared, device: torch.device) -> torch.nn.Module:
    """The spec's loss with the class weights ``prepared`` holds; with a loss per output, their weighted sum."""
    if spec.several_losses:
        return make_outputs_loss(spec, prepared.preprocessor.outputs, list(compiled.outputs), device,
                                 prepared.class_weight)
    return make_loss(spec, device, prepared.class_weight)


def _take_back(written: Any) -> None:
    """Remove the files of a run that stopped without a checkpoint (``written``: its ``FolderBefore``, None
    on ranks other than 0).

    A run with ``checkpoints/last.pt`` (resumed, or interrupted after a step) keeps everything.
    """
    if written is not None and not (written.path / CHECKPOINT_DIR / LAST).is_file():
        remove_what_this_run_wrote(written)


def _finish(session: Session, compiled: Any, prepared: Prepared, folder: Path, dist: Any, say: Echo,
            kept_epoch: int) -> Trained:
    """After the last epoch: the kept weights (of epoch ``kept_epoch``), ``meta.json``, the preprocessing and the
    test split (rank 0)."""
    spec, model = session.spec, session.model
    model.eval()
    meta = {**run_meta(spec, compiled, prepared, dist.device), "weights_epoch": kept_epoch,
            "last_epoch": session.epoch}
    try:
        if dist.is_main:
            save_state_dict(model, folder / WEIGHTS_FILE)
            write_json(folder / META_FILE, meta)
            prepared.preprocessor.save(folder)
            _test_split(session, compiled, prepared, folder, dist, say)
    except KeyboardInterrupt:
        raise interrupted(folder, spec.file) from None  # last.pt holds the finished training
    return Trained(folder, compiled, model, prepared.classes, meta)


def _test_split(session: Session, compiled: Any, prepared: Prepared, folder: Path, dist: Any, say: Echo) -> None:
    """``data.test_split``: measured once with the final weights, into ``test.json`` (held_out.py)."""
    from specnn.runtime.train.held_out import evaluate_test_split, format_test_line

    output_shape = next(iter(compiled.outputs.values()))
    loss_fn = training_loss(session.spec, compiled, prepared, dist.device)
    result = evaluate_test_split(session, prepared, loss_fn, output_shape[0] if output_shape else None, dist.device)
    if result is not None:
        write_json(folder / TEST_FILE, result)
        say(format_test_line(result))


# ---------------------------------------------------------------------------------------------
# set-up


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (every device) so a CPU run repeats bit for bit."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_data(spec: Any, compiled: Any, device: torch.device, say: Echo = print) -> Prepared:
    """Load, check, split and move the data to the device, targets in the loss's form."""
    from specnn.compiler.token_ids import embedding_limits
    from specnn.runtime.data.check import check_classes, single_output
    from specnn.runtime.data.prepare import load_splits
    from specnn.runtime.data.streaming import place

    output_shape = single_output(spec, compiled)
    splits = load_splits(spec, compiled.inputs, output_shape, lambda arrays: check_classes(compiled, arrays),
                         token_limits=embedding_limits(compiled.graph))
    for note in splits.notes:
        say(note)
    image = splits.preprocessor.image
    train, validation, test = (place(part, device, spec=spec, settings=image, train=part is splits.train)
                               for part in (splits.train, splits.validation, splits.test))
    task = OUTPUTS_TASK if spec.several_losses else LOSSES[spec.loss.kind].task
    return Prepared(train, validation, splits.classes, task, splits.preprocessor, test=test)


def check_precision(spec: Any, device: torch.device) -> None:
    """fp16 needs CUDA's gradient scaler: on another device it is a spec problem at ``train.precision``."""
    if spec.train.precision == "fp16" and device.type != "cuda":
        raise SpecError([spec_problem(spec, ("train", "precision"), f"fp16 mixed precision needs a CUDA device; this "
                                      f"run is on {device.type}", code="precision", hint="use precision: bf16")])


def compile_failure(spec: Any, error: Exception) -> Optional[ToolError]:
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
    # valid input that torch could not compile here: a tool failure (exit 1), placed at train.compile
    return ToolError([spec_problem(spec, ("train", "compile"), f"torch.compile failed on this machine: {first}",
                                   code="compile", hint="set train.compile: false, or fix what torch.compile reports")])


def make_optimizer(spec: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The torch.optim optimizer the spec names, over all the model's parameters."""
    return getattr(torch.optim, spec.optimizer.kind)(model.parameters(), **spec.optimizer.args.changed())


def run_meta(spec: Any, compiled: Any, prepared: Prepared, device: torch.device) -> dict[str, Any]:
    """What ``meta.json`` records: enough to use the model without the training data."""
    from specnn import __version__

    (output_name, output_shape), *more = compiled.outputs.items()
    by_output = {t.output: t for t in prepared.preprocessor.outputs} if more else {}
    several = {"outputs": [{"name": name, "shape": list(shape), "loss": by_output[name].loss,
                            "task": by_output[name].task, "classes": by_output[name].classes}
                           for name, shape in compiled.outputs.items()]} if more else {}
    return {
        "name": spec.name,
        "task": prepared.task,
        "classes": prepared.classes,
        "inputs": [{"name": name, "shape": list(t.shape), "dtype": t.dtype} for name, t in compiled.inputs.items()],
        "output": {"name": output_name, "shape": list(output_shape)},
        **several,
        "samples": {"train": len(prepared.train), "validation": len(prepared.validation or []),
                    **({"test": len(prepared.test)} if prepared.test is not None else {})},
        "device": str(device),
        "versions": {"specnn": __version__, "torch": torch.__version__},
        **({"class_weight": prepared.class_weight} if prepared.class_weight is not None else {}),
    }

