"""Epoch metrics, accumulated on the training device with no host sync per batch.

``update`` only adds into fixed-size tensors on the device; nothing is read back until
``compute`` runs once per epoch. It does only what the chosen metrics need, decided once at
construction: accuracy and top-k alone count hits (an argmax, a compare, a sum, an add); a
confusion matrix (for precision, recall, f1 or the matrix itself) is one ``index_add_`` of
preallocated ones. ``torch.bincount`` is not used: on CUDA it reads the largest index back to
size its output, a sync per batch. Targets outside ``0..C-1`` are skipped only when they can
occur (``targets_in_range=False``). Definitions and conventions are the catalogue's
(``specnn/catalog/metrics.py``); the values equal scikit-learn's.

>>> metrics = MetricSet([("accuracy", None), ("confusion_matrix", None)], task="classification", num_classes=2)
>>> metrics.update(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]), torch.tensor([0, 1, 1]))
>>> metrics.compute()
{'accuracy': 0.6666666666666666, 'confusion_matrix': [[1, 0], [1, 1]]}
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from specnn.catalog.metrics import METRICS, metric_key, task_problems
from specnn.errors import Problem, SpecError

Value = float | list
# Metrics read from the full confusion matrix; accuracy and top-k need only hit counts.
FROM_CONFUSION = frozenset({"precision", "recall", "f1", "confusion_matrix"})


class MetricSet:
    """The metrics a spec asks for, accumulated over the batches of one epoch.

    Args:
        metrics: ``(name, args)`` pairs, names from ``METRICS``; args None means the defaults.
        task: the loss's task: ``classification`` (logits ``(N, C, ...)``, class-index targets),
            ``binary`` (one logit or probability per sample, 0/1 targets) or ``regression``.
        num_classes: C for ``classification``; ignored otherwise.
        device: where the accumulators live: the device the outputs are on.
        binary_threshold: a binary output above it is predicted positive: 0 for logits
            (``BCEWithLogitsLoss``), 0.5 for probabilities (``BCELoss``).
        targets_in_range: every class target is known to lie in ``0..C-1`` (the data loader
            checked it: ``runtime/data.prepare_targets``), so no target is skipped and no step
            pays for a mask. False: targets outside the range (``CrossEntropyLoss``'s
            ``ignore_index``, -100 by default) are skipped.

    Raises:
        SpecError: a metric that does not fit the task, or a ``k`` not below the class count.
    """

    def __init__(self, metrics: Sequence[tuple[str, Any]], task: str, num_classes: Optional[int] = None,
                 device: torch.device | str = "cpu", binary_threshold: float = 0.0,
                 targets_in_range: bool = False) -> None:
        self.metrics = [(name, args if args is not None else METRICS[name].args()) for name, args in metrics]
        self.task = task
        self.num_classes = 2 if task == "binary" else (num_classes or 0)
        self.device = torch.device(device)
        self.binary_threshold = binary_threshold
        self._check()
        self.top_ks = sorted({args.k for name, args in self.metrics if name == "top_k_accuracy"})
        self.confusion = any(name in FROM_CONFUSION for name, _ in self.metrics)
        # Binary targets become 0/1 by a threshold, so only class indices can fall outside 0..C-1.
        self.masked = task == "classification" and not targets_in_range
        self._ones: dict[int, torch.Tensor] = {}  # index_add_'s source per batch size, made once
        self._k_columns = torch.tensor([k - 1 for k in self.top_ks], dtype=torch.int64, device=self.device)
        self.reset()

    def reset(self) -> None:
        """Zero the accumulators, for the next epoch."""
        c = self.num_classes
        # Confusion: c*c cells and one bin that collects the targets outside 0..C-1 (no mask
        # needed to drop them). Otherwise: [correct, skipped] (skipped: targets outside 0..C-1).
        size = c * c + 1 if self.confusion else 2
        self._set_counts(torch.zeros(size, dtype=torch.int64, device=self.device))
        self._top_k_hits = torch.zeros(len(self.top_ks), dtype=torch.int64, device=self.device)
        self._samples = 0  # targets seen (classification) or rows seen (regression)
        self._regression: Optional[torch.Tensor] = None  # rows: sum sq err, sum abs err, target mean, target M2

    def state_dict(self) -> dict[str, Any]:
        """The accumulators so far (tensors and numbers), for a checkpoint taken mid-epoch."""
        return {"counts": self._counts, "top_k_hits": self._top_k_hits, "samples": self._samples,
                "regression": self._regression}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue accumulating from :meth:`state_dict`."""
        move = lambda t: None if t is None else t.to(self.device)  # noqa: E731
        self._set_counts(move(state["counts"]))
        self._top_k_hits = move(state["top_k_hits"])
        self._samples, self._regression = state["samples"], move(state["regression"])

    def all_reduce(self, dist: Any) -> None:
        """Sum the accumulators over the ranks of ``dist`` (``distributed.Distributed``), in place.

        Once per epoch, before :meth:`compute`: one collective. Counts and sample numbers add
        across ranks; the regression rows carry the targets' mean and spread, which become a sum
        and a sum of squares for the reduction and are rebuilt after it.
        """
        if not dist.active:
            return
        sums = {"counts": self._counts, "top_k_hits": self._top_k_hits,
                "samples": torch.tensor(float(self._samples))}
        if self._regression is not None:
            sums["regression"] = _additive(self._regression, self._samples)
        reduced = dist.all_reduce_sums(sums)
        samples = int(reduced["samples"].item())
        regression = reduced.get("regression")
        self.load_state_dict({
            "counts": reduced["counts"], "top_k_hits": reduced["top_k_hits"], "samples": samples,
            "regression": None if regression is None else _from_additive(regression, samples),
        })

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: the model's outputs and the targets the loss saw."""
        if self.task == "regression":
            self._update_regression(outputs.detach(), targets.detach())
        elif self.task == "binary":
            self._update_binary(outputs, targets)
        else:
            self._update_classification(outputs, targets)

    def compute(self) -> dict[str, Value]:
        """Every metric's value over the batches since :meth:`reset`, keyed by ``metric_key``.

        Reads the accumulators back from the device once. Confusion matrices are nested lists
        (row: target class, column: predicted class); with no samples, numbers are NaN.
        """
        if self.task == "regression":
            values = self._regression_values()
        else:
            values = self._confusion_values() if self.confusion else self._hit_values()
        return {metric_key(name, args): values(name, args) for name, args in self.metrics}

    # -- classification ---------------------------------------------------------------------
    # No autograd here: argmax, comparisons and integer sums never record a graph, so the
    # outputs need neither detach() nor no_grad() (top-k's scores are detached).

    def _set_counts(self, counts: torch.Tensor) -> None:
        self._counts = counts
        if not self.confusion:  # views: hits and skipped targets are added in place, into counts
            self._correct, self._skipped = counts[0], counts[1]

    def _update_classification(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        c = self.num_classes
        logits = outputs if outputs.dim() == 2 else outputs.movedim(1, -1).reshape(-1, c)
        target = targets if targets.dim() == 1 else targets.reshape(-1)
        if target.dtype != torch.int64:
            target = target.long()
        self._samples += target.shape[0]
        predicted = logits.argmax(dim=1)
        if self.confusion:
            cell = predicted.add_(target, alpha=c)  # target * C + predicted, in argmax's fresh tensor
            if self.masked:
                cell = torch.where((target >= 0) & (target < c), cell, c * c)
            self._counts.index_add_(0, cell, self._ones_for(cell.shape[0]))
        else:
            # A target outside 0..C-1 never equals a prediction: only the total needs the mask.
            self._correct.add_((predicted == target).sum())
            if self.masked:
                self._skipped.add_((target.clamp(0, c - 1) != target).sum())
        if self.top_ks:
            # topk's indices come sorted by score and are distinct: a row hits at most one of the
            # first k columns, so hits per position, summed cumulatively, are the top-k hits.
            found = logits.detach().topk(self.top_ks[-1], dim=1).indices == target[:, None]
            self._top_k_hits.add_(found.sum(dim=0).cumsum(dim=0).index_select(0, self._k_columns))

    def _update_binary(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if outputs.shape != targets.shape:
            outputs, targets = outputs.reshape(-1), targets.reshape(-1)
        predicted, target = outputs > self.binary_threshold, targets > 0.5
        self._samples += target.numel()
        if self.confusion:
            cell = target.long().mul_(2).add_(predicted).reshape(-1)  # target * 2 + predicted
            self._counts.index_add_(0, cell, self._ones_for(cell.shape[0]))
        else:
            self._correct.add_((predicted == target).sum())

    def _ones_for(self, n: int) -> torch.Tensor:
        ones = self._ones.get(n)
        if ones is None:  # once per batch size (the last batch of an epoch may be shorter)
            ones = self._ones[n] = torch.ones(n, dtype=torch.int64, device=self.device)
        return ones

    def _hit_values(self):
        correct, skipped = self._counts.tolist()
        hits = self._top_k_hits.tolist()
        total = self._samples - skipped

        def value(name: str, args: Any) -> Value:
            counted = correct if name == "accuracy" else hits[self.top_ks.index(args.k)]
            return counted / total if total else float("nan")

        return value

    def _confusion_values(self):
        c = self.num_classes
        confusion = self._counts[: c * c].reshape(c, c).cpu().to(torch.float64)
        hits = self._top_k_hits.cpu().tolist()
        total = confusion.sum().item()
        true_count, predicted_count = confusion.sum(dim=1), confusion.sum(dim=0)
        tp = confusion.diagonal()
        per_class = {
            "precision": _divide(tp, predicted_count),
            "recall": _divide(tp, true_count),
            "f1": _divide(2 * tp, true_count + predicted_count),
        }
        # Single-label data: every wrong prediction is one false positive and one false negative,
        # so micro precision, recall and f1 all equal accuracy.
        micro = tp.sum().item() / total if total else 0.0
        present = (true_count + predicted_count) > 0

        def value(name: str, args: Any) -> Value:
            if name == "confusion_matrix":
                return confusion.long().tolist()
            if name == "accuracy":
                return tp.sum().item() / total if total else float("nan")
            if name == "top_k_accuracy":
                return hits[self.top_ks.index(args.k)] / total if total else float("nan")
            if args.average == "micro":
                return micro
            if args.average == "weighted":
                return _divide((per_class[name] * true_count).sum(), true_count.sum()).item()
            return per_class[name][present].mean().item() if present.any() else 0.0

        return value

    # -- regression -------------------------------------------------------------------------

    @torch.no_grad()
    def _update_regression(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        n = outputs.shape[0]
        if n == 0:
            return
        # float64 keeps sums of many squares exact enough; MPS has no float64.
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        predicted = outputs.reshape(n, -1).to(dtype)
        target = targets.reshape(predicted.shape).to(dtype)
        error = predicted - target
        batch_mean = target.mean(dim=0)
        batch = torch.stack([
            error.square().sum(dim=0), error.abs().sum(dim=0), batch_mean, (target - batch_mean).square().sum(dim=0)
        ])
        if self._regression is None:
            self._regression, self._samples = batch, n
            return
        # Chan et al.'s pairwise update of the targets' mean and sum of squared deviations:
        # stable where "sum of squares minus square of sum" loses every digit.
        seen, total = self._samples, self._samples + n
        delta = batch[2] - self._regression[2]
        self._regression[0] += batch[0]
        self._regression[1] += batch[1]
        self._regression[2] += delta * (n / total)
        self._regression[3] += batch[3] + delta.square() * (seen * n / total)
        self._samples = total

    def _regression_values(self):
        if self._regression is None:
            return lambda name, args: float("nan")
        squared, absolute, _, spread = self._regression.cpu().to(torch.float64)
        n = self._samples
        r2 = torch.where(spread > 0, 1 - squared / spread.clamp(min=1e-300), (squared == 0).to(torch.float64))
        values = {"mse": (squared / n).mean().item(), "mae": (absolute / n).mean().item(), "r2": r2.mean().item()}
        return lambda name, args: values[name]

    # -- checks -----------------------------------------------------------------------------

    def _check(self) -> None:
        problems = task_problems(self.metrics, self.task)
        for index, (name, args) in enumerate(self.metrics):
            if name == "top_k_accuracy" and not (self.task == "classification" and args.k < self.num_classes):
                problems.append(Problem(
                    "metric-k",
                    f"top_k_accuracy needs k below the number of classes ({self.num_classes}), got k={args.k}",
                    path=("train", "metrics", index, "top_k_accuracy", "k"),
                ))
        if problems:
            raise SpecError(problems)


def _divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, with 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1), torch.zeros_like(numerator))


def _additive(rows: torch.Tensor, n: int) -> torch.Tensor:
    # (mean, M2) of the targets -> (sum, sum of squares): these add across ranks.
    out = rows.clone()
    out[2] = rows[2] * n
    out[3] = rows[3] + rows[2].square() * n
    return out


def _from_additive(rows: torch.Tensor, n: int) -> torch.Tensor:
    out = rows.clone()
    mean = rows[2] / max(n, 1)
    out[2] = mean
    out[3] = (rows[3] - mean.square() * n).clamp(min=0)
    return out
