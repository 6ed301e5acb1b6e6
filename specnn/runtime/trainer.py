"""Training: one visible loop, in the nanoGPT style.

:func:`train` prepares everything (seeds, compiled model, data on the device, loss, optimizer),
then runs :func:`train_one_epoch` and :func:`evaluate` once per epoch and writes the run folder.
Later features (schedulers, metrics, checkpoints as plain dicts, early stopping, AMP, DDP) go
into these small functions, in the order the loop shows; there is no callback framework.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from specnn.catalog.losses import LOSSES
from specnn.runtime import data as data_module
from specnn.runtime import preprocess
from specnn.runtime.data import Tensors, batches
from specnn.runtime.device import resolve_device
from specnn.runtime.run import (
    META_FILE, METRICS_FILE, WEIGHTS_FILE, MetricsLog, Run, run_directory, save_state_dict, write_json, write_spec,
)
from specnn.spec.errors import DataError, Problem, SpecError

Echo = Callable[[str], Any]
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


@dataclass
class Prepared:
    """What the loop needs besides the model: data on the device and what the task is."""

    train: Tensors
    validation: Optional[Tensors]
    classes: Optional[list[str]]
    task: str
    preprocessor: Any = None  # runtime.preprocess.Preprocessor, fitted on the training split


def train(spec: Any, out: Union[str, Path, None] = None, *, quiet: bool = False, echo: Echo = print) -> Run:
    """Train a spec's model and write its run folder.

    Args:
        spec: a :class:`specnn.spec.models.Spec` (from :func:`specnn.load_spec`).
        out: the run folder; default ``runs/<spec name>``.
        quiet: print nothing per epoch.
        echo: where lines go (the CLI passes ``click.echo``).

    Returns:
        The :class:`~specnn.runtime.run.Run`, its model in eval mode with the trained weights.

    Raises:
        SpecError: the spec does not compile or asks for a missing device.
        DataError: the data cannot be read or does not fit the model.
    """
    from specnn.compiler import build_model, compile_spec, write_model_py
    from specnn.runtime.export import export

    say: Echo = (lambda line: None) if quiet else echo
    seed_everything(spec.seed)
    compiled = compile_spec(spec)
    for warning in compiled.warnings:
        say(warning.format())
    device = resolve_device(spec.train.device, spec)
    model = build_model(compiled).to(device)  # the only way a model is built
    prepared = prepare_data(spec, compiled, device)
    loss_fn = make_loss(spec, device)
    optimizer = make_optimizer(spec, model)

    folder = run_directory(spec, out)
    folder.mkdir(parents=True, exist_ok=True)
    write_spec(compiled, spec, folder)
    write_model_py(compiled, folder)
    fit(model, prepared, loss_fn, optimizer, spec, MetricsLog(folder / METRICS_FILE), say)

    model.eval()
    save_state_dict(model, folder / WEIGHTS_FILE)
    meta = run_meta(spec, compiled, prepared, device)
    write_json(folder / META_FILE, meta)
    prepared.preprocessor.save(folder)
    run = Run(folder, spec, compiled, model, prepared.classes, meta)
    for fmt in spec.export:
        say(str(export(run, fmt)))
    return run


def fit(model, prepared: Prepared, loss_fn, optimizer, spec: Any, metrics: MetricsLog, say: Echo) -> None:
    """The epoch loop: train, evaluate, log one line and one metrics record per epoch."""
    epochs, settings = spec.train.epochs, spec.train
    generator = torch.Generator().manual_seed(spec.seed)  # the shuffling order, independent of init
    try:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            # train: one pass over the training split
            record: dict[str, Any] = {"epoch": epoch}
            record["train_loss"] = train_one_epoch(
                model, prepared.train, loss_fn, optimizer, settings.batch_size, settings.shuffle, generator
            )
            # evaluate: validation loss (and accuracy for classification), no gradients
            if prepared.validation is not None:
                record.update(evaluate(model, prepared.validation, loss_fn, prepared.task, settings.batch_size))
            # log: one line, one JSON record (checkpoints and early stopping go here later)
            record["seconds"] = round(time.perf_counter() - started, 4)
            metrics.write(record)
            say(format_epoch(record, epochs))
    finally:
        metrics.close()


def train_one_epoch(model, data: Tensors, loss_fn, optimizer, batch_size: int, shuffle: bool,
                    generator: Optional[torch.Generator] = None) -> float:
    """One pass over ``data``; returns the mean training loss per sample.

    The running total stays on the device: one ``.item()`` per epoch, not one GPU sync per step.
    """
    model.train()
    total = torch.zeros((), device=data.device)
    for inputs, y in batches(data, batch_size, shuffle=shuffle, generator=generator):
        # forward
        loss = loss_fn(model(*inputs), y)
        batch_total = _batch_total(loss, len(y), loss_fn)
        # backward, step, and clear gradients (set_to_none frees them until the next backward)
        _scalar(loss).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total += batch_total.detach()
    return total.item() / len(data)


@torch.inference_mode()
def evaluate(model, data: Tensors, loss_fn, task: str, batch_size: int) -> dict[str, float]:
    """Mean loss per sample on ``data`` (and accuracy for classification), in eval mode.

    The model is left in eval mode; :func:`train_one_epoch` switches it back.
    """
    model.eval()
    total = torch.zeros((), device=data.device)
    correct = torch.zeros((), device=data.device, dtype=torch.int64)
    for inputs, y in batches(data, batch_size):
        output = model(*inputs)
        total += _batch_total(loss_fn(output, y), len(y), loss_fn)
        if task != "regression":
            correct += (predicted_labels(output, task, loss_fn) == y).sum()
    result = {"val_loss": total.item() / len(data)}
    if task != "regression":
        result["val_acc"] = correct.item() / data.y.numel()
    return result


def predicted_labels(output: torch.Tensor, task: str, loss_fn) -> torch.Tensor:
    """Class indices (classification) or 0./1. (binary), comparable with the targets."""
    if task == "classification":
        return output.argmax(dim=-1)
    # BCEWithLogitsLoss sees logits (threshold 0); BCELoss sees probabilities (threshold 0.5).
    threshold = 0.0 if isinstance(loss_fn, torch.nn.BCEWithLogitsLoss) else 0.5
    return (output > threshold).to(output.dtype)


def _scalar(loss: torch.Tensor) -> torch.Tensor:
    # reduction: none gives a loss per element; train on its mean.
    return loss if loss.ndim == 0 else loss.mean()


def _batch_total(loss: torch.Tensor, batch_size: int, loss_fn) -> torch.Tensor:
    """The batch's summed loss, so epoch means are per sample whatever the reduction."""
    if getattr(loss_fn, "reduction", "mean") == "sum":
        return loss.detach()
    return _scalar(loss).detach() * batch_size


def format_epoch(record: dict[str, Any], epochs: int) -> str:
    """``epoch  12/60  train_loss 0.4123  val_loss 0.3987  val_acc 0.933  (0.02s)``."""
    width = len(str(epochs))
    line = f"epoch  {record['epoch']:>{width}}/{epochs}  train_loss {record['train_loss']:.4f}"
    if "val_loss" in record:
        line += f"  val_loss {record['val_loss']:.4f}"
    if "val_acc" in record:
        line += f"  val_acc {record['val_acc']:.3f}"
    return line + f"  ({record['seconds']:.2f}s)"


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


def make_loss(spec: Any, device: torch.device) -> torch.nn.Module:
    """The torch.nn loss the spec names, with its arguments (weight lists become tensors)."""
    args = spec.loss.args.changed()
    for key in ("weight", "pos_weight"):
        if args.get(key) is not None:
            args[key] = torch.tensor(args[key], dtype=torch.float32, device=device)
    return getattr(torch.nn, spec.loss.kind)(**args)


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
    }


def _problem(spec: Any, path: tuple, message: str, code: str = "train", hint: Optional[str] = None) -> Problem:
    file, line, col = spec.locate(path)
    return Problem(code, message, path, file=file, line=line, col=col, hint=hint)
