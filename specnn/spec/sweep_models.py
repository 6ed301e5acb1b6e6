"""The ``sweep:`` section: which spec values a hyperparameter sweep searches, and how.

A sweep is declared next to what it tunes, in the spec itself (or in a sweep file naming a spec,
see :class:`SweepFile`). Each key of ``space`` is a spec path written the way errors print one,
and its value says where the values come from::

    sweep:
      metric: val_accuracy              # an epoch value of the last epoch; direction follows from it
      trials: 30
      space:
        optimizer.Adam.lr: {loguniform: [1.0e-4, 1.0e-1]}
        model.layers[0].Conv2d.out_channels: {choice: [8, 16, 32]}
        train.batch_size: {int: [16, 128], step: 16}

Whether each path exists and each value fits the spec is checked in ``spec/sweep_rules.py``; the
sweep itself runs in ``runtime/sweep/``. Nothing here imports torch or Optuna.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, StrictInt, model_validator,
)
from pydantic_core import PydanticCustomError

# The run-name pattern of spec/models.py (kept equal: spec/messages.py words it once, by its text);
# imported from there it would make models.py and this module import each other.
STUDY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DURATION = r"^[0-9]+(\.[0-9]+)?(s|m|h)$"
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}
KINDS = ("choice", "uniform", "loguniform", "int")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)  # as models.Strict


class Distribution(_Strict):
    """Where a swept value comes from: exactly one of ``choice``, ``uniform``, ``loguniform``, ``int``."""

    model_config = ConfigDict(json_schema_extra={"x-choice": "search space", "x-choices": list(KINDS)})

    choice: Optional[list[Any]] = Field(None, min_length=1, description="one of these values (any spec value)")
    uniform: Optional[list[float]] = Field(
        None, min_length=2, max_length=2, description="[low, high]: a number drawn uniformly"
    )
    loguniform: Optional[list[PositiveFloat]] = Field(
        None, min_length=2, max_length=2, description="[low, high]: a positive number drawn on a log scale"
    )
    integer: Optional[list[StrictInt]] = Field(
        None, alias="int", min_length=2, max_length=2, description="[low, high]: an integer, both ends included"
    )
    step: Optional[PositiveFloat] = Field(None, description="with int or uniform: only low, low + step, ... <= high")
    log: bool = Field(False, description="with int: draw on a log scale")

    @model_validator(mode="after")
    def _one_kind(self) -> "Distribution":
        chosen = [k for k in KINDS if getattr(self, _field(k)) is not None]
        if len(chosen) != 1:
            raise PydanticCustomError("choice", "needs exactly one of choice, uniform, loguniform or int, got {got}",
                                      {"got": ", ".join(chosen) or "none"})
        kind = chosen[0]
        if self.step is not None and kind not in ("int", "uniform"):
            raise PydanticCustomError("choice", "'step' goes with int or uniform, not {kind}", {"kind": kind})
        if self.log and kind != "int":
            raise PydanticCustomError("choice", "'log' goes with int (for floats write loguniform), not {kind}",
                                      {"kind": kind})
        if kind == "choice":
            return self
        low, high = self.bounds
        if not low < high:
            raise PydanticCustomError("choice", "needs low < high, got [{low}, {high}]", {"low": low, "high": high})
        if kind == "int" and self.step is not None and self.step != int(self.step):
            raise PydanticCustomError("choice", "an int range takes a whole step, got {step}", {"step": self.step})
        if self.log and self.step not in (None, 1):
            raise PydanticCustomError("choice", "an int range on a log scale takes no step")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, _field(k)) is not None)

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = getattr(self, _field(self.kind))
        return low, high

    def finite_values(self) -> Optional[list[Any]]:
        """Every value this can give when that is a finite list (choice; int; uniform with a step), else None.

        >>> Distribution(int=[16, 64], step=16).finite_values(), Distribution(uniform=[0, 0.3], step=0.1).finite_values()
        ([16, 32, 48, 64], [0.0, 0.1, 0.2, 0.3])
        >>> Distribution(loguniform=[1e-4, 1e-1]).finite_values() is None
        True
        """
        if self.kind == "choice":
            return list(self.choice or [])
        low, high = self.bounds
        if self.kind == "int":
            return list(range(int(low), int(high) + 1, int(self.step or 1)))
        if self.kind == "uniform" and self.step is not None:
            count = int((high - low) / self.step + 1e-9) + 1
            return [round(low + i * self.step, 12) for i in range(count)]
        return None

    def probes(self) -> list[Any]:
        """Values that stand for the whole range when checking it against the spec: every choice, or
        the ends of a range and, for floats, a middle value (an integer argument takes no 1.5)."""
        if self.kind == "choice":
            return list(self.choice or [])
        low, high = self.bounds
        if self.kind == "int":
            return [int(low), int(high)]
        if self.step is not None:
            return [low, high]
        middle = (low * high) ** 0.5 if self.kind == "loguniform" else (low + high) / 2
        return [low, middle, high]


def _field(kind: str) -> str:
    return "integer" if kind == "int" else kind


class MedianPruner(_Strict):
    """Stop a trial whose metric is worse than the median of earlier trials' at the same epoch."""

    startup_trials: NonNegativeInt = Field(5, description="trials that finish before any is pruned")
    warmup_epochs: NonNegativeInt = Field(2, description="epochs every trial trains before it may be pruned")


class PrunerChoice(_Strict):
    median: MedianPruner = Field(default_factory=MedianPruner)


class SweepSpec(_Strict):
    """A hyperparameter sweep over this spec: a search space, a metric, and a budget."""

    name: Optional[str] = Field(
        None, pattern=STUDY_NAME, description="study and folder name (sweeps/<name>/); default: the spec's name"
    )
    metric: Optional[str] = Field(
        None, description="the epoch value a trial is scored by, at its last epoch (val_accuracy, val_loss ...); "
        "default: val_loss (train_loss without a validation split)"
    )
    direction: Optional[Literal["minimize", "maximize"]] = Field(
        None, description="default: minimize losses and errors, maximize scores"
    )
    trials: Optional[PositiveInt] = Field(
        None, description="trials in the whole study, over every run of the command; default 20 (grid: every "
        "point), or no limit when a timeout is given"
    )
    timeout: Optional[Union[PositiveFloat, Annotated[str, Field(pattern=DURATION)]]] = Field(
        None, description="start no trial after this long, per command: seconds, or '90s', "
        "'30m', '2h'"
    )
    sampler: Literal[SAMPLERS] = Field("tpe", description="tpe (Optuna's default), random, or grid")  # type: ignore[valid-type]
    pruner: Union[Literal[PRUNERS], PrunerChoice] = Field(  # type: ignore[valid-type]
        "median", description="median: stop a trial whose metric is worse than the median of earlier trials "
        "at the same epoch (after 5 trials and 2 epochs; {median: {startup_trials, warmup_epochs}} to change); none"
    )

    def median_pruner(self) -> Optional[MedianPruner]:
        """The median pruner's settings, or None for ``pruner: none``."""
        if self.pruner == "none":
            return None
        return self.pruner.median if isinstance(self.pruner, PrunerChoice) else MedianPruner()
    seed: Optional[int] = Field(None, description="the sampler's seed; default: the spec's seed")
    space: dict[str, Distribution] = Field(
        min_length=1, description="spec path (optimizer.Adam.lr, model.layers[0].Linear.out_features, "
        "train.batch_size ...) -> the values to search"
    )

    def timeout_seconds(self) -> Optional[float]:
        """The time budget in seconds, or None.

        >>> SweepSpec(timeout="30m", space={"seed": {"int": [0, 3]}}).timeout_seconds()
        1800.0
        """
        if self.timeout is None or isinstance(self.timeout, (int, float)):
            return self.timeout
        number, unit = re.fullmatch(r"([0-9.]+)([smh])", self.timeout).groups()  # type: ignore[union-attr]
        return float(number) * DURATION_UNITS[unit]


class SweepFile(_Strict):
    """A sweep kept apart from its spec: ``spec: path/to/spec.yaml`` (relative to this file) and ``sweep:``."""

    spec: str = Field(min_length=1, description="the spec file this sweep tunes, relative to this file")
    sweep: SweepSpec
