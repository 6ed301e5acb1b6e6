"""Training curves from a run's ``metrics.jsonl``: ``specnn plot RUN [-o PNG]``.

One figure, one panel per quantity: the loss (train vs validation) first, then each metric
recorded for train and/or validation (``train_acc`` with ``val_acc`` ...), then the learning rate
when the run recorded one. matplotlib is an optional extra, imported only here; the figure is
drawn without pyplot, so nothing global (the user's backend, open windows) is touched.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from specnn.errors import Problem, RunError, SpecError
from specnn.runtime.files import META_FILE, METRICS_FILE, PLOT_FILE, read_metrics, write_atomic
from specnn.errors.texts import needs_extra
from specnn.runtime.runs.run import Run

SPLITS = {"train_": "train", "val_": "validation"}

__all__ = ["PLOT_FILE", "PlotExtraMissing", "Panel", "read_metrics", "panels", "plot_run"]


class PlotExtraMissing(SpecError):
    """matplotlib is not installed: a missing extra, reported (exit 2) as every missing extra is."""


@dataclass
class Panel:
    """One subplot: a title and named series of (epoch, value) points."""

    title: str
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    def add(self, label: str, epoch: float, value: float) -> None:
        xs, ys = self.series.setdefault(label, ([], []))
        xs.append(epoch)
        ys.append(value)


def panels(records: list[dict[str, Any]]) -> list[Panel]:
    """The panels to draw, in order: loss, each metric (by first appearance), learning rate.

    >>> [p.title for p in panels([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_acc": 0.5, "lr": 0.1}])]
    ['loss', 'acc', 'learning rate']
    """
    by_title: dict[str, Panel] = {"loss": Panel("loss")}
    rate = Panel("learning rate")
    for index, record in enumerate(records, start=1):
        epoch = record.get("epoch", index)
        for key, value in record.items():
            if not _is_number(value):
                continue
            if key == "lr":
                rate.add("learning rate", epoch, value)
            for prefix, split in SPLITS.items():
                if key.startswith(prefix):
                    name = key[len(prefix):]
                    by_title.setdefault(name, Panel(name)).add(split, epoch, value)
    drawn = [p for p in by_title.values() if p.series]
    return drawn + ([rate] if rate.series else [])


def plot_run(run: Union[Run, str, Path], output: Union[str, Path, None] = None, *, dpi: int = 100) -> Path:
    """Draw a run's training curves into a PNG file.

    Args:
        run: a :class:`~specnn.runtime.runs.run.Run` or a run folder.
        output: the PNG to write; default ``RUN/curves.png``.
        dpi: resolution (80 keeps a picture for a README small).

    Returns:
        The path written (atomically: an old picture stays whole until the new one is complete).

    Raises:
        RunError: the run's metrics are missing or corrupt.
        PlotExtraMissing: matplotlib is not installed.
    """
    folder = run.path if isinstance(run, Run) else Path(run)
    records = read_metrics(folder)
    if not records:
        raise RunError([Problem("empty", "no epochs recorded", file=str(folder / METRICS_FILE))])
    figure = draw(panels(records), title=_run_name(folder))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return write_atomic(Path(output) if output is not None else folder / PLOT_FILE, buffer.getvalue())


def draw(to_draw: list[Panel], title: Optional[str] = None) -> Any:
    """A matplotlib Figure with one subplot per panel (at most three per row)."""
    Figure, MaxNLocator = _matplotlib()
    columns = min(len(to_draw), 3) or 1
    rows = math.ceil(len(to_draw) / columns) or 1
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    for index, panel in enumerate(to_draw, start=1):
        axes = figure.add_subplot(rows, columns, index)
        for label, (xs, ys) in panel.series.items():
            axes.plot(xs, ys, label=label, marker="." if len(xs) < 30 else None)
        axes.set_title(panel.title)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        if panel.title == "learning rate" and min(panel.series["learning rate"][1]) > 0:
            axes.set_yscale("log")  # schedules span orders of magnitude
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel.title != "learning rate":
            axes.legend()  # even alone: says whether the curve is train or validation
    if title:
        figure.suptitle(title)
    return figure


def _matplotlib():
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        message, hint = needs_extra("plotting", "plot")
        raise PlotExtraMissing.single("missing-extra", message, hint=hint) from None
    return Figure, MaxNLocator


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _run_name(folder: Path) -> str:
    try:
        return json.loads((folder / META_FILE).read_text(encoding="utf-8"))["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return folder.name
