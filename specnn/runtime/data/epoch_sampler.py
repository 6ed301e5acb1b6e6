"""The sampler a streamed loader reads each epoch's items from (image files, table units)."""

from __future__ import annotations

from typing import Any, Iterator

import torch


class EpochItems(torch.utils.data.Sampler):
    """The items of the coming epoch, set before each epoch.

    The loader keeps one sampler for its whole life, so its worker processes may persist across
    epochs (``persistent_workers``); only ``items`` changes.
    """

    def __init__(self) -> None:
        self.items: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
