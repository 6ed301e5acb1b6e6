"""Training a model with several outputs: one loss per output, weighted, and metrics per output.

``loss: {species: CrossEntropyLoss, width: {MSELoss: {}, weight: 0.5}}`` trains on

    loss = 1.0 * CrossEntropyLoss(species, species targets) + 0.5 * MSELoss(width, width targets)

The targets arrive as one matrix, a block of columns per output (``runtime/data/outputs.py``), so
the loop calls :class:`OutputsLoss` and :class:`OutputsMetrics` exactly as it calls one loss and
one :class:`~specnn.runtime.train.metrics.MetricSet`: ``loss_fn(outputs, y)``,
``metrics.update(outputs, y)``. Each output's loss is reduced as its ``reduction`` says (``none``:
its mean); the weighted total is a mean per sample, as one loss with ``reduction: mean``.

Epoch values: ``train_loss`` (the weighted total), ``train_loss_species`` (each output's own
loss, unweighted) and ``train_accuracy_species``, ``val_mse_width`` ... (each output's metrics).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from specnn.catalog.losses import LOSSES
from specnn.errors import SpecError, locate
from specnn.runtime.train.losses import build_loss, class_weights
from specnn.runtime.train.metrics import MetricSet
from specnn.spec.train_rules import output_metrics


# meta.json's task for a model with several outputs; each output's own task is in its "outputs" list.
OUTPUTS_TASK = "outputs"


class OutputsLoss(torch.nn.Module):
    """The weighted sum of each output's loss.

    Args:
        layout: each output's block of the targets (``preprocess.OutputTarget``), in ``loss:`` order.
        losses: each output's torch loss, in the same order.
        weights: each output's weight.
        positions: where each output is in the model's returned tuple (``model.outputs`` order).
    """

    reduction = "mean"  # the loop's accounting: the total is a per-sample mean

    def __init__(self, layout: Sequence[Any], losses: Sequence[torch.nn.Module], weights: Sequence[float],
                 positions: Sequence[int]) -> None:
        super().__init__()
        self.layout, self.weights, self.positions = list(layout), list(weights), list(positions)
        self.losses = torch.nn.ModuleList(losses)

    def forward(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        total = None
        for target, loss_fn, weight, at in zip(self.layout, self.losses, self.weights, self.positions):
            term = weight * _scalar(loss_fn(outputs[at], target.block(targets)))
            total = term if total is None else total + term
        return total

    def each(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> list[torch.Tensor]:
        """Each output's own loss (unweighted) summed over the batch's samples, detached."""
        totals = []
        with torch.no_grad():
            for target, loss_fn, at in zip(self.layout, self.losses, self.positions):
                loss = loss_fn(outputs[at].detach(), target.block(targets))
                summed = getattr(loss_fn, "reduction", "mean") == "sum"
                totals.append(loss if summed else _scalar(loss) * targets.shape[0])
        return totals


def make_outputs_loss(spec: Any, layout: Sequence[Any], output_names: Sequence[str], device: torch.device,
                      class_weights: Optional[dict[str, list[float]]] = None) -> OutputsLoss:
    """The spec's per-output losses as one :class:`OutputsLoss` (``class_weights``: per output, computed)."""
    heads = {head.output: head for head in spec.losses}
    losses = [build_loss(heads[t.output].kind, heads[t.output].args, device, (class_weights or {}).get(t.output))
              for t in layout]
    return OutputsLoss(layout, losses, [heads[t.output].weight for t in layout],
                       [list(output_names).index(t.output) for t in layout]).to(device)


def output_class_weights(spec: Any, layout: Sequence[Any], y: torch.Tensor) -> Optional[dict[str, list[float]]]:
    """``class_weight`` of each classifier output that asks for it, from its training targets."""
    heads = {head.output: head for head in spec.losses}
    weights = {}
    for target in layout:
        if target.indices:
            found = class_weights(spec, target.block(y), target.shape[0] if target.shape else 1, target.classes,
                                  heads[target.output])
            if found is not None:
                weights[target.output] = found
    return weights or None


class OutputsMetrics:
    """Each output's loss and metrics over one epoch, with :class:`MetricSet`'s interface.

    Values are keyed ``loss_species``, ``accuracy_species``, ``mse_width`` ...
    """

    def __init__(self, spec: Any, loss_fn: OutputsLoss, device: torch.device, confusion: bool = False) -> None:
        self.loss_fn, self.device = loss_fn, device
        chosen = {head.output: metrics for head, metrics in output_metrics(spec)}
        for head in spec.losses if confusion else ():  # the test split: a matrix per classifier, as for one loss
            wanted = chosen[head.output]
            if LOSSES[head.kind].task != "regression" and all(name != "confusion_matrix" for name, _ in wanted):
                chosen[head.output] = [*wanted, ("confusion_matrix", None)]
        self.sets = []
        try:
            for target in loss_fn.layout:
                threshold = 0.5 if target.loss == "BCELoss" else 0.0
                width = target.shape[0] if target.shape else None
                # the data stage range-checked the class targets: no mask per step
                self.sets.append(MetricSet(chosen[target.output], target.task, width, device, threshold,
                                           targets_in_range=True))
        except SpecError as error:
            raise SpecError(locate(spec, error.problems)) from None
        self.reset()

    def reset(self) -> None:
        self._losses = torch.zeros(len(self.sets), dtype=torch.float64, device=self.device)
        self._samples = 0
        for metrics in self.sets:
            metrics.reset()

    def update(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> None:
        self._losses += torch.stack(self.loss_fn.each(outputs, targets)).to(torch.float64)
        self._samples += targets.shape[0]
        for target, metrics, at in zip(self.loss_fn.layout, self.sets, self.loss_fn.positions):
            metrics.update(outputs[at], target.block(targets))

    def compute(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        losses = (self._losses / max(self._samples, 1)).tolist()
        for target, loss in zip(self.loss_fn.layout, losses):
            values[f"loss_{target.output}"] = loss if self._samples else float("nan")
        for target, metrics in zip(self.loss_fn.layout, self.sets):
            values.update({f"{key}_{target.output}": value for key, value in metrics.compute().items()})
        return values

    def state_dict(self) -> dict[str, Any]:
        return {"losses": self._losses, "samples": self._samples, "sets": [m.state_dict() for m in self.sets]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._losses, self._samples = state["losses"].to(self.device), state["samples"]
        for metrics, saved in zip(self.sets, state["sets"]):
            metrics.load_state_dict(saved)

    def all_reduce(self, dist: Any) -> None:
        if not dist.active:
            return
        reduced = dist.all_reduce_sums({"losses": self._losses, "samples": torch.tensor(float(self._samples))})
        self._losses, self._samples = reduced["losses"], int(reduced["samples"].item())
        for metrics in self.sets:
            metrics.all_reduce(dist)


def _scalar(loss: torch.Tensor) -> torch.Tensor:
    # reduction: none gives a loss per element; train on its mean (as the loop does for one loss).
    return loss if loss.ndim == 0 else loss.mean()
