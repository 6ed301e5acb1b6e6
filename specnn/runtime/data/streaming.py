"""Where a run's data lives while it trains: on the device as tensors, or streamed from disk.

Small data is moved to the device once and batched by slicing a seeded permutation (the fast
path). An image folder larger than ``data.loader.memory_limit_mb`` decoded (or any, with
``in_memory: false``) is streamed instead: a torch ``DataLoader`` with ``data.loader.workers``
worker processes decodes, normalizes and augments each image, in the order the same seeded
permutation gives (under torchrun: this rank's shard of it), so a streamed run trains exactly as
the in-memory one would.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np
import torch

from specnn.runtime.data.epoch_sampler import EpochItems
from specnn.runtime.data.augment import Augment
from specnn.runtime.data.images import ImageFiles, ImageSettings, decode, normalize
from specnn.runtime.data.sources import Arrays
from specnn.runtime.data.tensors import to_tensors

__all__ = ["Streamed", "ImageDataset", "place", "epoch_seed"]


def epoch_seed(generator: Optional[torch.Generator]) -> int:
    """The seed of one epoch's augmentation, drawn after the epoch's permutation."""
    if generator is None:
        return 0
    return int(torch.randint(0, 2**62, (1,), generator=generator))


class ImageDataset(torch.utils.data.Dataset):
    """Images decoded on demand; an item is a sample index, or (index, epoch seed) to augment it."""

    def __init__(self, files: ImageFiles, settings: ImageSettings, augment: Optional[Augment] = None) -> None:
        self.files, self.targets = files.files, torch.as_tensor(files.targets)
        self.labels = files.targets.tolist()  # plain ints: collating them is cheaper than 0-d tensors
        self.settings, self.augment = settings, augment

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: Any) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        s = self.settings
        x = normalize(decode(self.files[index], s.size, s.channels, s.resize)[None], s.mean, s.std)
        if self.augment is not None and seed is not None:
            x = self.augment(x, seed, np.array([index]))
        return torch.from_numpy(x[0]), self.labels[index]


class Streamed:
    """A data set read from disk batch by batch: the streamed counterpart of :class:`Tensors`."""

    def __init__(self, dataset: ImageDataset, device: torch.device, workers: int) -> None:
        self.dataset, self.device, self.workers = dataset, device, workers
        self._order = EpochItems()
        self._loaders: dict[int, torch.utils.data.DataLoader] = {}

    def _loader(self, batch_size: int) -> torch.utils.data.DataLoader:
        if batch_size not in self._loaders:  # one per batch size; workers persist across epochs
            self._loaders[batch_size] = torch.utils.data.DataLoader(
                self.dataset, batch_size=batch_size, sampler=self._order, num_workers=self.workers,
                persistent_workers=self.workers > 0, pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if self.workers > 0 else None)
        return self._loaders[batch_size]

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def y(self) -> torch.Tensor:
        """Every target, on the host (class counts for loss weights)."""
        return self.dataset.targets

    def batches(self, batch_size: int, shuffle: bool, generator: Optional[torch.Generator],
                order: Optional[torch.Tensor] = None) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """One epoch of ``((x,), y)`` batches on the device, in the in-memory path's order."""
        if order is None:
            order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        indices = order.tolist()
        if self.dataset.augment is not None and generator is not None:  # training batches only
            seed = epoch_seed(generator)
            self._order.items = [(i, seed) for i in indices]
        else:
            self._order.items = indices
        non_blocking = self.device.type == "cuda"
        for x, y in self._loader(batch_size):
            yield (x.to(self.device, non_blocking=non_blocking),), y.to(self.device, non_blocking=non_blocking)


def place(part: Any, device: torch.device, *, spec: Any = None, settings: Optional[ImageSettings] = None,
          train: bool = False) -> Any:
    """A split where training reads it: :class:`Tensors` on ``device``, :class:`Streamed` image files, or a
    streamed table's ``table_loader.StreamedTable``.

    ``train`` gives the training split the spec's augmentation (image folders only).
    """
    if part is None:
        return None
    augment = None
    if train and settings is not None and spec is not None and getattr(spec.data.args, "augment", None):
        augment = Augment(spec.data.args.augment, settings.black)
    if hasattr(part, "reader"):  # a streamed table's split (table_stream.TablePart)
        from specnn.runtime.data.table_loader import StreamedTable

        return StreamedTable(part, device, spec.data.loader.workers if spec is not None else 0)
    if isinstance(part, ImageFiles):
        workers = spec.data.loader.workers if spec is not None else 0
        return Streamed(ImageDataset(part, settings, augment), device, workers)
    assert isinstance(part, Arrays)
    tensors = to_tensors(part.features, part.targets, device)
    tensors.augment = augment
    return tensors
