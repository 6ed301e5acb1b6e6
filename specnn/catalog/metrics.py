"""The metric table: what a run can report each epoch, besides the loss.

Names follow scikit-learn's (``accuracy``, ``top_k_accuracy``, ``f1``, ``r2``), and so do the
numbers: the runtime's values equal ``sklearn.metrics`` on the same samples. In a spec::

    train:
      metrics: [accuracy, {top_k_accuracy: {k: 5}}, {f1: {average: weighted}}]

``task`` says which losses a metric fits: ``classification`` metrics need a classification or
binary loss (``LossDef.task``), ``regression`` metrics a regression loss; ``any`` fits both.
``mode`` says which way is better (``max``/``min``; None: not a number to compare), for
choosing the best checkpoint. :func:`metric_key` is the name a value is reported under.

Conventions (scikit-learn's defaults, with ``zero_division=0``):

- ``precision``, ``recall``, ``f1`` average per-class values over the classes that occur in the
  targets or the predictions; a class that is never predicted has precision 0, one that never
  occurs has recall 0, and one that occurs in neither is left out of the macro average.
- ``micro`` averages count every sample once (equal to accuracy for single-label data);
  ``weighted`` weighs each class by its number of targets.
- Targets outside ``0..num_classes-1`` (``CrossEntropyLoss``'s ``ignore_index``) are skipped.
- Binary outputs (one logit per sample) are predicted positive when above 0 (above 0.5 after a
  Sigmoid, with ``BCELoss``); targets above 0.5 are positive.
- ``r2`` of a target that never varies is 1.0 when predicted exactly, else 0.0; several outputs
  are averaged uniformly, as are ``mse`` and ``mae``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

from pydantic import PositiveInt

from specnn.catalog.base import Args
from specnn.errors import Problem

Task = Literal["classification", "regression", "any"]
Average = Literal["macro", "micro", "weighted"]

# Which LossDef.task values each metric task fits.
FITS: dict[str, tuple[str, ...]] = {
    "classification": ("classification", "binary"),
    "regression": ("regression",),
    "any": ("classification", "binary", "regression"),
}


class NoArgs(Args):
    pass


class TopKArgs(Args):
    k: PositiveInt = 5


class AveragedArgs(Args):
    average: Average = "macro"


@dataclass(frozen=True)
class MetricDef:
    name: str
    task: Task
    args: type[Args] = NoArgs
    mode: Optional[Literal["max", "min"]] = "max"


METRICS: dict[str, MetricDef] = {
    d.name: d
    for d in (
        MetricDef("accuracy", "classification"),
        MetricDef("top_k_accuracy", "classification", TopKArgs),
        MetricDef("precision", "classification", AveragedArgs),
        MetricDef("recall", "classification", AveragedArgs),
        MetricDef("f1", "classification", AveragedArgs),
        MetricDef("confusion_matrix", "classification", mode=None),
        MetricDef("mse", "regression", mode="min"),
        MetricDef("mae", "regression", mode="min"),
        MetricDef("r2", "regression"),
    )
}


def metric_key(name: str, args: Optional[Args] = None) -> str:
    """The name a metric's value is reported under.

    >>> metric_key("top_k_accuracy", TopKArgs(k=3)), metric_key("f1"), metric_key("f1", AveragedArgs(average="micro"))
    ('top3_accuracy', 'f1', 'f1_micro')
    """
    args = args if args is not None else METRICS[name].args()
    if name == "top_k_accuracy":
        return f"top{args.k}_accuracy"  # type: ignore[attr-defined]
    average = getattr(args, "average", "macro")
    return name if average == "macro" else f"{name}_{average}"


def task_problems(metrics: Sequence[tuple[str, Any]], loss_task: str, loss_name: Optional[str] = None) -> list[Problem]:
    """A problem for each metric that does not fit the loss's task, located at ``train.metrics[i]``.

    >>> [p.format() for p in task_problems([("accuracy", None), ("r2", None)], "classification", "CrossEntropyLoss")]
    ['train.metrics[1]: r2 is a regression metric, but CrossEntropyLoss is a classification loss']
    """
    problems = []
    for index, (name, _) in enumerate(metrics):
        task = METRICS[name].task
        if loss_task not in FITS[task]:
            problems.append(Problem(
                "metric-task",
                f"{name} is a {task} metric, but {loss_name or 'the loss'} is a {loss_task} loss",
                path=("train", "metrics", index),
            ))
    return problems
