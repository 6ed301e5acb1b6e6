"""The test split (``data.test_split``): evaluated once, after the last epoch, into ``test.json``.

Training never looks at these samples: no epoch reports them and no checkpoint or early stopping
is chosen by them. The loss and the spec's metrics (with a confusion matrix for classifiers) are
measured by the same evaluation pass as the validation split, with the final weights.
"""

from __future__ import annotations

from typing import Any, Optional

from specnn.catalog.losses import LOSSES
from specnn.spec.train_rules import metric_choices

__all__ = ["evaluate_test_split", "format_test_line"]


def evaluate_test_split(session: Any, prepared: Any, loss_fn: Any, num_classes: Optional[int],
                        device: Any) -> Optional[dict[str, Any]]:
    """The test split's loss and metrics with the final weights (None without a test split).

    Returns:
        ``{"samples": N, "classes": [...] or None, "metrics": {"loss": ..., "accuracy": ...,
        "confusion_matrix": [[...]]}}``, the layout ``specnn evaluate --json`` writes.
    """
    from specnn.runtime.train.loop import autocast_for, evaluate
    from specnn.runtime.train.metrics import MetricSet

    if prepared.test is None:
        return None
    spec = session.spec
    if spec.several_losses:  # each output's loss and metrics, as the epochs report them
        from specnn.runtime.train.outputs import OutputsMetrics

        result = evaluate(session.model, prepared.test, loss_fn, spec.train.batch_size,
                          OutputsMetrics(spec, loss_fn, device, confusion=True),
                          autocast_for(spec.train.precision, device))
        values = {key.removeprefix("val_"): value for key, value in result.items()}
        classes = {t.output: t.classes for t in prepared.preprocessor.outputs if t.indices}
        return {"data": "test split", "samples": len(prepared.test), "classes": classes, "metrics": values}
    task = LOSSES[spec.loss.kind].task
    chosen = metric_choices(spec.train, task)
    if task != "regression" and not any(name == "confusion_matrix" for name, _ in chosen):
        chosen = [*chosen, ("confusion_matrix", None)]
    threshold = 0.5 if spec.loss.kind == "BCELoss" else 0.0
    metrics = MetricSet(chosen, task, num_classes, device, threshold, targets_in_range=True)
    result = evaluate(session.model, prepared.test, loss_fn, spec.train.batch_size, metrics,
                      autocast_for(spec.train.precision, device))
    values = {key.removeprefix("val_"): value for key, value in result.items()}
    return {"data": "test split", "samples": len(prepared.test), "classes": prepared.classes, "metrics": values}


def format_test_line(result: dict[str, Any]) -> str:
    """One line for the terminal: ``test (N samples): loss 0.31 accuracy 0.92``."""
    numbers = [f"{name} {value:.4g}" for name, value in result["metrics"].items() if not isinstance(value, list)]
    return f"test ({result['samples']} samples): " + " ".join(numbers)
