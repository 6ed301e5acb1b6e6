"""The ``metrics()`` function of the ejected train.py: only the metrics the spec asks for.

The values equal specnn's (``runtime/train/metrics.py``): class metrics are exact counts and the
same float64 formulas over the confusion matrix; regression metrics are computed over the whole
epoch at once, so they may differ from specnn's batch-wise sums in the last bits.
"""

from __future__ import annotations

from typing import Any

from specnn.catalog.losses import LOSSES
from specnn.catalog.metrics import METRICS, metric_key
from specnn.runtime.runs.eject.code import block
from specnn.spec.train_rules import metric_choices

FROM_CONFUSION = {"precision", "recall", "f1", "confusion_matrix"}


def chosen_metrics(spec: Any) -> list[tuple[str, Any]]:
    """``(name, args)`` of every metric the run reports, args filled with the defaults."""
    task = LOSSES[spec.loss.kind].task
    return [(name, args if args is not None else METRICS[name].args()) for name, args in metric_choices(spec.train, task)]


def wants_confusion_file(spec: Any) -> bool:
    return any(name == "confusion_matrix" for name, _ in chosen_metrics(spec))


def metrics_py(spec: Any, classes: int) -> str:
    """``def metrics(outputs, targets, prefix)`` (plus ``divide``), or '' for ``metrics: []``."""
    chosen = chosen_metrics(spec)
    if not chosen:
        return ""
    task = LOSSES[spec.loss.kind].task
    if task == "regression":
        return _regression(chosen)
    return _classification(spec, chosen, task, classes)


def _classification(spec: Any, chosen: list, task: str, classes: int) -> str:
    confusion = any(name in FROM_CONFUSION for name, _ in chosen)
    if task == "binary":
        threshold = "0.5" if spec.loss.kind == "BCELoss" else "0.0"
        note = "probabilities" if spec.loss.kind == "BCELoss" else "logits"
        lines = [f"predicted = (output > {threshold}).reshape(-1).long()  # {note}",
                 "y = (y > 0.5).reshape(-1).long()"]
        c = 2
    else:
        lines = ["predicted = output.argmax(dim=1)"]
        c = classes
    values: list[str] = []
    if confusion:
        lines.append(f"confusion = torch.bincount(y * {c} + predicted, minlength={c * c}).reshape({c}, {c}).double()")
        lines.append("tp, true, found = confusion.diagonal(), confusion.sum(dim=1), confusion.sum(dim=0)")
    needs_present = any(name in ("precision", "recall", "f1") and args.average == "macro" for name, args in chosen)
    if needs_present:
        lines.append("present = (true + found) > 0  # macro averages skip classes in neither")
    per_class = {"precision": "divide(tp, found)", "recall": "divide(tp, true)", "f1": "divide(2 * tp, true + found)"}
    for name in dict.fromkeys(n for n, a in chosen if n in per_class and a.average != "micro"):
        lines.append(f"{name} = {per_class[name]}  # per class")
    for k in sorted({args.k for name, args in chosen if name == "top_k_accuracy"}):
        lines.append(f"top{k} = (output.topk({k}, dim=1).indices == y[:, None]).any(dim=1)")
    for name, args in chosen:
        key = f'f"{{prefix}}_{metric_key(name, args)}"'
        if name == "accuracy":
            value = "(predicted == y).sum().item() / len(y)"
        elif name == "top_k_accuracy":
            value = f"top{args.k}.sum().item() / len(y)"
        elif name == "confusion_matrix":
            continue
        elif args.average == "micro":
            value = "tp.sum().item() / len(y)  # equals accuracy for single labels"
        elif args.average == "weighted":
            value = f"divide(({name} * true).sum(), true.sum()).item()"
        else:
            value = f"{name}[present].mean().item() if present.any() else 0.0"
        value, _, comment = value.partition("  # ")
        values.append(f"    {key}: {value}," + (f"  # {comment}" if comment else ""))
    body = "\n".join("    " + line for line in lines)
    returned = "    return {\n" + "\n".join("    " + v for v in values) + "\n    }" if values else "    return {}"
    text = ('def metrics(outputs, targets, prefix):\n'
            '    """The epoch\'s metrics, from every batch\'s outputs and targets."""\n'
            "    output, y = torch.cat(outputs), torch.cat(targets)\n" + body + "\n" + returned)
    if any(name == "confusion_matrix" for name, _ in chosen):
        text = text.replace("    return {", '    confusion_matrices[prefix] = confusion.long().tolist()\n    return {', 1)
    if any(name in per_class for name, _ in chosen):
        text += "\n\n\n" + block('''
            def divide(numerator, denominator):
                """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
                quotient = numerator / denominator.clamp(min=1)
                return torch.where(denominator > 0, quotient, torch.zeros_like(numerator))
            ''')
    return text


def _regression(chosen: list) -> str:
    names = [name for name, _ in chosen]
    lines = ["output, y = torch.cat(outputs).double(), torch.cat(targets).double()",
             "error = output.reshape(len(y), -1) - y.reshape(len(y), -1)"]
    values = []
    if "mse" in names:
        values.append('f"{prefix}_mse": error.square().mean(dim=0).mean().item(),')
    if "mae" in names:
        values.append('f"{prefix}_mae": error.abs().mean(dim=0).mean().item(),')
    if "r2" in names:
        lines += ["squared = error.square().sum(dim=0)",
                  "spread = (y.reshape(len(y), -1) - y.reshape(len(y), -1).mean(dim=0)).square().sum(dim=0)",
                  "# a target that never varies scores 1.0 when predicted exactly, else 0.0",
                  "r2 = torch.where(spread > 0, 1 - squared / spread.clamp(min=1e-300), (squared == 0).double())"]
        values.append('f"{prefix}_r2": r2.mean().item(),')
    body = "\n".join("    " + line for line in lines)
    return ('def metrics(outputs, targets, prefix):\n'
            '    """The epoch\'s metrics, from every batch\'s outputs and targets."""\n'
            + body + "\n    return {\n" + "\n".join("        " + v for v in values) + "\n    }")
