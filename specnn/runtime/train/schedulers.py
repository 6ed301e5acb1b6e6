"""Learning-rate schedules behind one interface, so the training loop never asks which kind.

The loop calls, in this order::

    optimizer.step()
    scheduler.step_batch()             # after every batch
    ...
    scheduler.step_epoch(epoch_metrics)  # after every epoch, with e.g. {"loss": .., "val_loss": ..}

and :class:`Scheduler` forwards each call to the torch scheduler that steps at that moment
(``interval`` in ``catalog/schedulers.py``). A warmup is a ``LinearLR`` that moves after every
batch; the main scheduler waits for it: an epoch scheduler steps at the end of each epoch that
*started* after the warmup was over, so its first value (the optimizer's lr) is used for a
whole epoch, exactly as ``SequentialLR`` places schedulers one after another.
``SequentialLR`` itself is not used: it refuses ``ReduceLROnPlateau`` (whose ``step`` takes the
metric) and cannot mix a per-batch warmup with a per-epoch schedule.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import torch
from torch.optim.lr_scheduler import LinearLR, LRScheduler, ReduceLROnPlateau

from specnn.catalog.schedulers import SCHEDULERS, Warmup
from specnn.errors import SpecError

SPEC_PATH = ("train", "scheduler")
# The torch scheduler attribute that fixes the schedule's length, when specnn derives it from the run's length.
LENGTH_ATTRIBUTES = {"CosineAnnealingLR": "T_max", "OneCycleLR": "total_steps"}


class Scheduler:
    """A warmup (optional) followed by a torch scheduler (optional), stepped by the loop.

    Build it with :func:`build_scheduler`; with neither part it does nothing.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        kind: Optional[str] = None,
        main: Optional[LRScheduler | ReduceLROnPlateau] = None,
        warmup: Optional[LinearLR] = None,
        warmup_batches: int = 0,
        monitor: Optional[str] = None,
        derived_length: bool = False,
    ) -> None:
        self.optimizer = optimizer
        self.kind = kind
        self.interval = SCHEDULERS[kind].interval if kind else None
        self.main = main
        self.warmup = warmup
        self.warmup_batches = warmup_batches
        self.monitor = monitor
        # T_max / total_steps came from train.epochs (and the batches per epoch), not from the spec
        self.derived_length = derived_length
        self.batches = 0  # batches trained so far
        self.epoch_start = 0  # value of `batches` when the current epoch began

    def step_batch(self) -> None:
        """Advance after one optimizer step: the warmup ramp, or a per-batch scheduler."""
        self.batches += 1
        if self.batches <= self.warmup_batches:
            self.warmup.step()  # type: ignore[union-attr]
            if self.batches == self.warmup_batches:
                self._end_warmup()
        elif self.interval == "batch":
            self.main.step()  # type: ignore[union-attr]

    def step_epoch(self, metrics: Mapping[str, float]) -> None:
        """Advance after one epoch; ``metrics`` holds the epoch's values (``ReduceLROnPlateau`` reads one)."""
        warm = self.epoch_start >= self.warmup_batches
        self.epoch_start = self.batches
        if not warm or self.main is None:
            return
        if self.interval == "epoch":
            self.main.step()
        elif self.interval == "metric":
            self.main.step(self._monitored(metrics))  # type: ignore[call-arg]

    def state_dict(self) -> dict[str, Any]:
        """Counters and the torch schedulers' states; loadable with ``torch.load(weights_only=True)``."""
        return {
            "kind": self.kind,
            "batches": self.batches,
            "epoch_start": self.epoch_start,
            "main": None if self.main is None else self.main.state_dict(),
            "warmup": None if self.warmup is None else self.warmup.state_dict(),
        }

    @property
    def length(self) -> Optional[int]:
        """The schedule's length (``T_max`` epochs, ``total_steps`` batches) when derived from the run's; else None."""
        if not self.derived_length:
            return None
        return int(getattr(self.main, LENGTH_ATTRIBUTES[self.kind]))

    def saved_length(self, state: Optional[Mapping[str, Any]]) -> Optional[int]:
        """The derived length that a :meth:`state_dict` of this kind of schedule holds; None if none.

        Loading that state would bring its length back (torch restores ``T_max``/``total_steps``
        with the rest), so a run resumed with another ``train.epochs`` would silently follow
        the old schedule: the caller compares this with :attr:`length` first.
        """
        if not self.derived_length or not state or not isinstance(state.get("main"), Mapping):
            return None
        saved = state["main"].get(LENGTH_ATTRIBUTES[self.kind])
        return int(saved) if isinstance(saved, int) else None

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; the optimizer's own state holds the current lr."""
        if state["kind"] != self.kind:
            raise ValueError(f"scheduler state is for {state['kind']}, not {self.kind}")
        self.batches, self.epoch_start = state["batches"], state["epoch_start"]
        if self.main is not None:
            self.main.load_state_dict(state["main"])
        if self.warmup is not None:
            self.warmup.load_state_dict(state["warmup"])

    def _end_warmup(self) -> None:
        # LinearLR reaches the base lr by chained multiplications; set it exactly, so the
        # main scheduler starts from the lr the spec gave and not from a rounding of it.
        for group, base in zip(self.optimizer.param_groups, self.warmup.base_lrs):  # type: ignore[union-attr]
            group["lr"] = base

    def _monitored(self, metrics: Mapping[str, float]) -> float:
        if self.monitor not in metrics:
            reported = ", ".join(sorted(metrics)) or "nothing"
            raise SpecError.single(
                "monitor",
                f"ReduceLROnPlateau watches '{self.monitor}', which the epoch did not report (it reported: {reported})",
                path=SPEC_PATH + ("ReduceLROnPlateau", "monitor"),
                hint="monitor a reported metric, or set data.validation_split above 0 for val_ metrics",
            )
        return float(metrics[self.monitor])


def build_scheduler(choice: Any, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int) -> Scheduler:
    """The :class:`Scheduler` for a spec's ``train.scheduler`` choice.

    Args:
        choice: ``None`` (constant lr) or an object with ``kind`` (a ``SCHEDULERS`` key),
            ``args`` (that entry's argument model) and ``warmup`` (a ``Warmup`` or None),
            as the spec's scheduler choice model provides.
        optimizer: the run's optimizer, already built with the spec's lr.
        steps_per_epoch: optimizer steps per epoch (batches, after gradient accumulation).
        epochs: epochs in the whole run.

    Raises:
        SpecError: the warmup leaves no batches for ``OneCycleLR``.
    """
    if choice is None:
        return Scheduler(optimizer)
    warmup_spec: Optional[Warmup] = getattr(choice, "warmup", None)
    warmup_batches = warmup_spec.batches(steps_per_epoch) if warmup_spec else 0
    main = _build_main(choice.kind, choice.args, optimizer, steps_per_epoch, epochs, warmup_batches)
    # After the main scheduler: OneCycleLR sets the lr it starts from, and the warmup ramps up to it.
    warmup = (
        LinearLR(optimizer, start_factor=warmup_spec.start_factor, end_factor=1.0, total_iters=warmup_batches)
        if warmup_spec
        else None
    )
    monitor = getattr(choice.args, "monitor", None)
    derived = choice.kind == "OneCycleLR" or (choice.kind == "CosineAnnealingLR" and choice.args.T_max is None)
    return Scheduler(optimizer, choice.kind, main, warmup, warmup_batches, monitor, derived)


def _build_main(kind: str, args: Any, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int,
                warmup_batches: int) -> LRScheduler | ReduceLROnPlateau:
    kwargs = args.model_dump(exclude={"monitor"})
    if kind == "CosineAnnealingLR" and kwargs["T_max"] is None:
        warmup_epochs = math.ceil(warmup_batches / steps_per_epoch)
        kwargs["T_max"] = max(1, epochs - warmup_epochs)
    if kind == "OneCycleLR":
        kwargs["total_steps"] = epochs * steps_per_epoch - warmup_batches
        if kwargs["total_steps"] < 1:
            raise SpecError.single(
                "warmup",
                f"the warmup ({warmup_batches} batches) leaves no batches for OneCycleLR "
                f"(the run has {epochs * steps_per_epoch})",
                path=SPEC_PATH + ("warmup",),
                hint="OneCycleLR warms up by itself (pct_start): drop the warmup",
            )
    return getattr(torch.optim.lr_scheduler, kind)(optimizer, **kwargs)
