"""A streamed table's epochs: DataLoader workers reading their own rows, shuffled in a bounded buffer.

An epoch lays the part's rows out as one sequence: the file's units in a seeded random order
(one draw from the run's generator per epoch, so a resumed run repeats it), each unit's rows in
file order. Under torchrun each rank takes a contiguous ``ceil(n / world)`` slice of that sequence
(padded from its head, as ``DistributedSampler`` pads, so every rank takes the same number of
steps), so a rank opens only the units its slice touches. The slice is cut into *items* of about
``SHUFFLE_ROWS`` rows (whole unit ranges); the loader's workers, which persist across epochs, each
read an item, shuffle its rows (seeded by the epoch and the item) and hand it over. So every row
is read by exactly one worker of one rank per epoch, the order does not depend on the number of
workers, and the main process joins the items into batches of exactly ``batch_size`` (the last
one short), the batches the loop counts on.

Memory: per worker in flight about one item (``SHUFFLE_ROWS`` rows) and the units it spans
(``table_units.UNIT_BYTES`` of CSV text, or one Parquet row group), never the file. The shuffle
is bounded: rows mix within an item, and items come in random unit order; a file sorted by its
target should be shuffled once on disk. A bad cell a worker finds comes back as the located
DataError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np
import torch

from specnn.errors import DataError
from specnn.runtime.data.table_stream import TablePart
from specnn.runtime.data.epoch_sampler import EpochItems

__all__ = ["StreamedTable", "spans", "epoch_items", "rebatch"]

SHUFFLE_ROWS = 1 << 16  # rows shuffled together (an item): ~5 MB of 20 float32 features

Span = tuple[int, int, int]  # (unit, first, end) of a part's rows in that unit
Item = tuple[tuple[Span, ...], Optional[int]]  # spans read together, and their shuffle seed


class StreamedTable:
    """A split of a streamed table, batched on the device: the table counterpart of ``Tensors``."""

    shards_itself = True  # under torchrun, train/shards.py hands it the rank instead of an order

    def __init__(self, part: TablePart, device: torch.device, workers: int, shuffle_rows: Optional[int] = None) -> None:
        self.part, self.device, self.workers = part, device, workers
        self.shuffle_rows = shuffle_rows or SHUFFLE_ROWS
        self._items = EpochItems()
        self._loader: Optional[torch.utils.data.DataLoader] = None

    def __len__(self) -> int:
        return len(self.part)

    @property
    def y(self) -> torch.Tensor:
        """The training split's class labels, from the counts the fit made (for ``class_weight: balanced``)."""
        counts = self.part.reader.train_classes  # 8 bytes per training row, briefly
        if counts is None:
            return torch.zeros(0)
        return torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(counts))

    def batches(self, batch_size: int, shuffle: bool, generator: Optional[torch.Generator],
                order: Optional[torch.Tensor] = None, rank: int = 0,
                world_size: int = 1) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """One epoch of ``((x,), y)`` batches on the device (``order`` is the in-memory path's; unused)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if shuffle and generator is not None else None
        self._items.items = epoch_items(self.part.counts, seed, rank, world_size, self.shuffle_rows)
        non_blocking = self.device.type == "cuda"
        for x, y in rebatch(_raised(self.loader()), batch_size):
            yield (x.to(self.device, non_blocking=non_blocking),), y.to(self.device, non_blocking=non_blocking)

    def loader(self) -> torch.utils.data.DataLoader:
        if self._loader is None:  # one for the run: its workers persist across epochs
            self._loader = torch.utils.data.DataLoader(
                _Rows(self.part), batch_size=None, sampler=self._items, num_workers=self.workers,
                persistent_workers=self.workers > 0, pin_memory=self.device.type == "cuda",
                prefetch_factor=2 if self.workers > 0 else None)
        return self._loader


@dataclass
class _Failed:
    """A worker's located DataError, carried to the main process whole (DataLoader would flatten it)."""

    problems: list


class _Rows(torch.utils.data.Dataset):
    """An item's rows, read from their units, preprocessed and shuffled: ``(x, y)`` tensors."""

    def __init__(self, part: TablePart) -> None:
        self.part = part

    def __len__(self) -> int:
        return len(self.part)

    def __getitem__(self, item: Item) -> Any:
        spans_, seed = item
        threads = torch.utils.data.get_worker_info() is None  # no pyarrow thread pool in forked workers
        try:
            read = [self.part.reader.read(unit, self.part.part, lo, hi, threads) for unit, lo, hi in spans_]
        except DataError as error:
            return _Failed(error.problems)
        x = np.concatenate([r[0] for r in read]) if len(read) > 1 else read[0][0]
        y = np.concatenate([r[1] for r in read]) if len(read) > 1 else read[0][1]
        if seed is not None:
            at = np.random.default_rng(seed).permutation(len(y))
            x, y = x[at], y[at]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def _raised(pieces: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for piece in pieces:
        if isinstance(piece, _Failed):
            raise DataError(piece.problems)
        yield piece


def spans(counts: np.ndarray, seed: Optional[int], rank: int = 0, world: int = 1) -> list[Span]:
    """The ``(unit, first, end)`` row ranges one rank reads this epoch, in reading order.

    >>> spans(np.array([3, 3]), None)
    [(0, 0, 3), (1, 0, 3)]
    >>> spans(np.array([3, 2]), None, rank=1, world=2)  # rows 3..5 of 5: the last one padded from the head
    [(1, 0, 2), (0, 0, 1)]
    """
    order = np.random.default_rng(seed).permutation(len(counts)) if seed is not None else np.arange(len(counts))
    n = int(counts.sum())
    per_rank = -(-n // world)
    ordered = counts[order]
    ends = np.cumsum(ordered)
    found = []
    for lo, hi in _wrapped(rank * per_rank, (rank + 1) * per_rank, n):
        for k in np.flatnonzero((ends > lo) & (ends - ordered < hi)):
            first = ends[k] - ordered[k]
            found.append((int(order[k]), int(max(lo, first) - first), int(min(hi, ends[k]) - first)))
    return found


def _wrapped(a: int, b: int, n: int) -> list[tuple[int, int]]:
    """Positions ``a..b`` of an epoch of ``n``, those past its end taken again from its start (padding)."""
    out = []
    while a < b and n:
        lo = a % n
        take = min(b - a, n - lo)
        out.append((lo, lo + take))
        a += take
    return out


def epoch_items(counts: np.ndarray, seed: Optional[int], rank: int, world: int, rows: int) -> list[Item]:
    """A rank's spans grouped into items of at least ``rows`` rows (a unit's range is never cut),
    each with its own shuffle seed (None: unshuffled)."""
    items: list[Item] = []
    group: list[Span] = []
    held = 0
    for span in spans(counts, seed, rank, world):
        group.append(span)
        held += span[2] - span[1]
        if held >= rows:
            items.append((tuple(group), None))
            group, held = [], 0
    if group:
        items.append((tuple(group), None))
    if seed is None:
        return items
    seeds = np.random.default_rng([seed, rank]).integers(0, 2**62, len(items))
    return [(spans_, int(s)) for (spans_, _), s in zip(items, seeds)]


def rebatch(pieces: Any, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Pieces of any length joined into batches of exactly ``size`` (the last one may be short)."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    held = 0
    for x, y in pieces:
        xs.append(x), ys.append(y)
        held += len(y)
        while held >= size:
            x_all = xs[0] if len(xs) == 1 else torch.cat(xs)
            y_all = ys[0] if len(ys) == 1 else torch.cat(ys)
            yield x_all[:size], y_all[:size]
            xs, ys, held = [x_all[size:]], [y_all[size:]], held - size
    if held:
        yield (xs[0] if len(xs) == 1 else torch.cat(xs)), (ys[0] if len(ys) == 1 else torch.cat(ys))
