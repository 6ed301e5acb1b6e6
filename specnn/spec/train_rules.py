"""Rules of the ``train:`` section that read other sections: checked with the spec, before any run.

A metric must fit the loss's task; a monitored value (early stopping, best checkpoint,
``ReduceLROnPlateau``) must be one the run reports, and ``val_*`` values need a validation
split; ``fp16`` needs CUDA. Each problem is located where the user wrote the value, and
:func:`specnn.spec.validate.check_document` reports them with the schema's, so ``specnn
validate`` finds them and ``specnn train`` stops before writing a file. Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from specnn.catalog.losses import LOSSES
from specnn.catalog.metrics import FITS, METRICS, metric_key, task_problems
from specnn.errors import Problem

DEFAULT_METRICS = {"classification": "accuracy", "binary": "accuracy", "regression": "mse"}


def metric_choices(train: Any, loss_task: str) -> list[tuple[str, Any]]:
    """``(name, args)`` for each metric of ``train.metrics`` (None: the task's default metric)."""
    if train.metrics is None:
        return [(DEFAULT_METRICS[loss_task], None)]
    return [(m, None) if isinstance(m, str) else (m.kind, m.args) for m in train.metrics]


def output_metrics(spec: Any) -> list[tuple[Any, list[tuple[str, Any]]]]:
    """Each output's loss (``LossHead``) with the metrics measured on that output.

    One loss: the spec's metrics. A loss per output: each metric of ``train.metrics`` goes to the
    outputs whose task it fits (accuracy to a classifier, mae to a regression); without
    ``train.metrics``, each output gets its task's default (accuracy, mse).
    """
    if not spec.several_losses:
        head, = spec.losses
        return [(head, metric_choices(spec.train, LOSSES[head.kind].task))]
    measured = []
    for head in spec.losses:
        task = LOSSES[head.kind].task
        chosen = metric_choices(spec.train, task)
        if spec.train.metrics is not None:
            chosen = [(name, args) for name, args in chosen if task in FITS[METRICS[name].task]]
        measured.append((head, chosen))
    return measured


def epoch_keys(spec: Any) -> list[str]:
    """Every number an epoch record can hold: ``train_loss``, ``val_loss``, ``train_<metric>`` ...

    >>> from specnn.spec.loader import load_spec_text
    >>> epoch_keys(load_spec_text('''
    ... name: t
    ... model: {input: [4], layers: [{Linear: {out_features: 3}}]}
    ... data: {synthetic: {shape: [4]}, validation_split: 0}
    ... loss: {CrossEntropyLoss: }
    ... optimizer: {SGD: {lr: 0.1}}
    ... train: {metrics: [accuracy, confusion_matrix, {f1: {average: micro}}]}
    ... '''))
    ['train_loss', 'train_accuracy', 'train_f1_micro']
    """
    losses = [f"loss{head.suffix}" for head in spec.losses] if spec.several_losses else []
    names = [f"{metric_key(name, args)}{head.suffix}" for head, chosen in output_metrics(spec)
             for name, args in chosen if METRICS[name].mode]
    splits = ("train", "val") if spec.data.validation_split > 0 else ("train",)
    return [f"{split}_{name}" for split in splits for name in ("loss", *losses, *names)]


def monitor_mode(monitor: str, mode: Optional[str] = None) -> str:
    """``mode`` if given; else ``min`` for losses and errors, ``max`` for scores.

    >>> monitor_mode("val_loss"), monitor_mode("val_accuracy"), monitor_mode("train_mae"), monitor_mode("val_r2", "min")
    ('min', 'max', 'min', 'min')
    """
    if mode:
        return mode
    name = monitor.split("_", 1)[1]
    base = next((m for m in METRICS if name == m or name.startswith(m + "_")), None)
    if name == "loss" or base is None:
        return "min"
    return METRICS[base].mode or "max"


def checkpoint_monitor(spec: Any) -> str:
    """What best.pt is chosen by: ``checkpoint.monitor``, else early stopping's, else the loss."""
    train = spec.train
    if train.checkpoint.monitor:
        return train.checkpoint.monitor
    if train.early_stopping is not None:
        return train.early_stopping.monitor
    return "val_loss" if spec.data.validation_split > 0 else "train_loss"


def train_problems(spec: Any) -> list[Problem]:
    """Every cross-section problem of ``spec.train`` (unlocated: ``path`` says where)."""
    problems = []
    if spec.train.metrics is not None and not spec.several_losses:
        task = LOSSES[spec.loss.kind].task
        problems += task_problems(metric_choices(spec.train, task), task, spec.loss.kind)
    elif spec.train.metrics is not None:
        problems += _unmeasured_metrics(spec)
    problems += list(_monitor_problems(spec))
    if spec.train.precision == "fp16" and spec.train.device in ("cpu", "mps"):
        problems.append(Problem(
            "precision", f"fp16 mixed precision needs a CUDA device, not '{spec.train.device}'",
            ("train", "precision"), hint="use bf16 on the CPU, or device: cuda",
        ))
    return problems


def _unmeasured_metrics(spec: Any) -> list[Problem]:
    """With a loss per output: a metric whose task no output has (r2 with only classifiers)."""
    tasks = {LOSSES[head.kind].task for head in spec.losses}
    outputs = ", ".join(f"{head.output} ({head.kind})" for head in spec.losses)
    problems = []
    for index, (name, _) in enumerate(metric_choices(spec.train, "classification")):
        task = METRICS[name].task
        if not tasks & set(FITS[task]):
            problems.append(Problem("metric-task", f"{name} is a {task} metric, but no output has a {task} loss "
                                    f"(outputs: {outputs})", ("train", "metrics", index)))
    return problems


def _monitors(spec: Any) -> Iterator[tuple[str, tuple, str]]:
    """(monitored key, path where it is (or would be) written, who watches it)."""
    train = spec.train
    if train.early_stopping is not None:
        yield train.early_stopping.monitor, ("train", "early_stopping", "monitor"), "early stopping"
    if train.checkpoint.monitor is not None:
        yield train.checkpoint.monitor, ("train", "checkpoint", "monitor"), "the best checkpoint"
    scheduler = train.scheduler
    if scheduler is not None and scheduler.kind == "ReduceLROnPlateau":
        path = ("train", "scheduler", "ReduceLROnPlateau")
        given = "monitor" in scheduler.args.model_fields_set
        yield scheduler.args.monitor, path + ("monitor",) if given else path, "ReduceLROnPlateau"


def _monitor_problems(spec: Any) -> Iterator[Problem]:
    keys = epoch_keys(spec)
    for monitor, path, who in _monitors(spec):
        if monitor in keys:
            continue
        if monitor.startswith("val_") and spec.data.validation_split == 0:
            yield Problem("monitor", f"{who} watches '{monitor}', but data.validation_split is 0: the run has no "
                          "validation values", path, hint="set data.validation_split above 0, or monitor a train_ value")
        else:
            yield Problem("monitor", f"{who} watches '{monitor}', which the run does not report", path,
                          hint="one of " + ", ".join(keys))
