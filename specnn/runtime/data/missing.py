"""Missing cells: rows dropped, or cells filled with values fitted on the training split.

A spec says what to do per column, or once for every column (``data.preprocess.missing``)::

    preprocess:
      missing: {age: median, city: most_frequent, income: {constant: 0}, notes: drop}

``drop`` removes the row before the data is split; a fill (``mean``, ``median``,
``most_frequent`` or ``{constant: v}``) is fitted on the training rows only and stored in
``preprocess.json`` so that evaluate and predict fill new rows with the same value. A row whose
target is missing is always dropped (and counted): there is nothing to learn from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from specnn.errors import DataError, Problem, SpecError, spec_problem
from specnn.runtime.data.table import Table

__all__ = ["Fill", "fillable_columns", "drop_missing", "fit_fills", "apply_fills"]

FILLS = ("mean", "median", "most_frequent", "constant")


@dataclass(frozen=True)
class Fill:
    """How one column's missing cells are filled: the strategy and the fitted value."""

    strategy: str
    value: Union[float, str]

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "value": self.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Fill":
        if data["strategy"] not in FILLS:
            raise ValueError(f"unknown fill strategy {data['strategy']!r}")
        return cls(data["strategy"], data["value"])


def strategy_for(settings: Any, column: str) -> str:
    chosen = settings.missing_for(column)
    return chosen if isinstance(chosen, str) else "constant"


def fillable_columns(settings: Any, columns: list[str]) -> list[str]:
    """Columns whose missing cells the reader keeps (as NaN or None) rather than refuses."""
    return [c for c in columns if strategy_for(settings, c) != "error"]


def drop_missing(table: Table, settings: Any) -> tuple[Table, list[str]]:
    """Drop rows with a missing target, or a missing cell in a ``drop`` column; a note per reason."""
    notes = []
    keep = np.ones(len(table), dtype=bool)
    if table.target is not None:
        missing_target = _missing(table.target)
        for column in table.more_targets.values():  # a target per output: a row needs every one
            missing_target |= _missing(column)
        if missing_target.any():
            notes.append(f"{table.file}: dropped {int(missing_target.sum())} row(s) with no target value")
            keep &= ~missing_target
    dropping = [c for c in table.columns if strategy_for(settings, c) == "drop"]
    if dropping:
        missing_cells = np.zeros(len(table), dtype=bool)
        for column in dropping:
            missing_cells |= _missing(table.values[column])
        missing_cells &= keep
        if missing_cells.any():
            notes.append(f"{table.file}: dropped {int(missing_cells.sum())} row(s) with a missing "
                         f"{'/'.join(dropping)} value (data.preprocess.missing: drop)")
            keep &= ~missing_cells
    if keep.all():
        return table, notes
    if not keep.any():
        raise DataError([Problem("empty", "no rows are left after dropping those with missing values",
                                 file=str(table.file))])
    return table.take(keep), notes


def fit_fills(table: Table, settings: Any, train_at: np.ndarray, spec: Any) -> dict[str, Fill]:
    """The fill value of every filled column, from the training rows ``train_at`` only.

    ``spec`` places a problem at its line (None: unplaced).

    Raises:
        SpecError: a strategy that does not suit the column (the mean of categories, a text
            constant for numbers), or a column with no values in the training split.
    """
    fills = {}
    for column in table.columns:
        strategy = strategy_for(settings, column)
        if strategy in ("error", "drop"):
            continue
        values = table.values[column]
        where = ("data", "preprocess", "missing") + ((column,) if isinstance(settings.missing, dict) else ())
        fills[column] = Fill(strategy, fitted_value(values, values[train_at], strategy, settings.missing_for(column),
                                               column, where, spec))
    return fills


def fitted_value(values: np.ndarray, train: np.ndarray, strategy: str, chosen: Any, column: str, where: tuple,
            spec: Any) -> Union[float, str]:
    text = values.dtype == object
    if strategy == "constant":
        if text:
            return str(chosen.constant)
        if isinstance(chosen.constant, str):
            raise _spec(where, spec, f"column '{column}' holds numbers; a text constant "
                                       f"'{chosen.constant}' cannot fill it", "give a number")
        return float(chosen.constant)
    if text and strategy in ("mean", "median"):
        raise _spec(where, spec, f"column '{column}' holds categories: it has no {strategy}",
                    "use most_frequent or {constant: name}")
    present = train[~_missing(train)]
    if not len(present):
        raise _spec(where, spec, f"column '{column}' has no values in the training split to take the "
                                   f"{strategy.replace('_', ' ')} of", "use {constant: value}")
    if strategy == "mean":
        return float(np.mean(present, dtype=np.float64))
    if strategy == "median":
        return float(np.median(present))
    found, counts = np.unique(present.astype(str) if text else present, return_counts=True)
    best = found[int(np.argmax(counts))]  # ties: the smallest value (np.unique sorts)
    return str(best) if text else float(best)


def apply_fills(table: Table, fills: dict[str, Fill]) -> Table:
    """Write each fill into its column's missing cells (in place); returns the table."""
    for column, fill in fills.items():
        values = table.values.get(column)
        if values is None:
            continue
        missing = _missing(values)
        if missing.any():
            if values.dtype == object:
                values[missing] = str(fill.value)
            else:
                values[missing] = np.float32(fill.value)
    return table


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return values == None  # noqa: E711 (elementwise)
    return np.isnan(values)


def _spec(where: tuple, spec: Any, message: str, hint: Optional[str] = None) -> SpecError:
    return SpecError([spec_problem(spec, where, message, code="missing", hint=hint)])
