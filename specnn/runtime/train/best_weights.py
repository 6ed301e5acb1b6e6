"""Early stopping's ``restore_best_weights`` (Keras's name): the run keeps its best epoch's weights.

Early stopping waits ``patience`` epochs past the best one before it stops, so the last epoch is
never the best when it stopped, and often not when the run ends anyway. With
``restore_best_weights`` (on by default when ``early_stopping`` is set) the model takes the weights
of ``checkpoints/best.pt`` (the best epoch by ``checkpoint.monitor``, which defaults to early
stopping's monitor) before ``weights.pt`` and the exports are written. Unlike Keras this also
applies when training ran to its last epoch without stopping: the kept weights are always the best.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from specnn.runtime.files import BEST, CHECKPOINT_DIR
from specnn.runtime.train.checkpoint import load_checkpoint
from specnn.spec.train_rules import checkpoint_monitor


def restores_best(spec: Any) -> bool:
    """Whether this spec's run keeps its best epoch's weights rather than its last."""
    stopping = spec.train.early_stopping
    return stopping is not None and stopping.restore_best_weights


def restore_best_weights(spec: Any, model: torch.nn.Module, folder: Path, last_epoch: int,
                         say: Callable[[str], Any]) -> int:
    """Load ``best.pt``'s weights into ``model`` when the spec asks for it; the epoch whose weights it holds.

    Says which epoch it kept when that is not the last one.
    """
    path = Path(folder) / CHECKPOINT_DIR / BEST
    if not restores_best(spec) or not path.is_file():
        return last_epoch
    best = load_checkpoint(path)
    if best["epoch"] == last_epoch:
        return last_epoch
    model.load_state_dict(best["model"])
    value = "" if best.get("best") is None else f" ({checkpoint_monitor(spec)} {best['best']:.4g})"
    say(f"restored the best weights: epoch {best['epoch']}{value}, not the last epoch {last_epoch} "
        "(early_stopping.restore_best_weights)")
    return int(best["epoch"])
