"""Each rank's share of an epoch: disjoint shards of one seeded order, as DistributedSampler draws them.

Every rank draws the same permutation from the same seeded generator and takes every
``world_size``-th sample from its rank on; the order is padded to a multiple of ``world_size`` so
every rank takes the same number of steps (a rank with one step more would wait forever in DDP's
gradient all-reduce). With a world of one this is the single-process path.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import torch

from specnn.runtime.data.tensors import batches


def shard_indices(order: torch.Tensor, rank: int, world_size: int, drop_last: bool = False) -> torch.Tensor:
    """This rank's part of one epoch's sample ``order`` (DistributedSampler semantics).

    Every rank passes the same ``order`` (the same seeded permutation); rank ``r`` takes
    ``order[r::world_size]``, so the shards are disjoint and together cover the epoch. The order
    is first padded with its own head (or, with ``drop_last``, truncated) to a multiple of
    ``world_size``, so every rank gets the same number of samples and therefore of steps: a rank
    with one step more would wait forever in DDP's gradient all-reduce.

    >>> shard_indices(torch.arange(5), 0, 2).tolist(), shard_indices(torch.arange(5), 1, 2).tolist()
    ([0, 2, 4], [1, 3, 0])
    >>> shard_indices(torch.arange(5), 1, 2, drop_last=True).tolist()
    [1, 3]
    """
    n = len(order)
    if world_size == 1:
        return order
    if drop_last:
        order = order[: n - n % world_size]
    elif n % world_size:
        padding = world_size - n % world_size
        order = torch.cat([order, order.repeat(-(-padding // n))[:padding]])
    return order[rank::world_size]


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """One epoch's order as DistributedSampler draws it: ``randperm`` seeded with ``seed + epoch``.

    >>> torch.equal(epoch_order(6, seed=3, epoch=1), epoch_order(6, seed=3, epoch=1))
    True
    """
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))


def shard_length(n: int, world_size: int) -> int:
    """How many samples each rank gets from an epoch of ``n`` (padded, as :func:`shard_indices`).

    >>> shard_length(5, 2), shard_length(4, 2), shard_length(4, 1)
    (3, 2, 4)
    """
    return -(-n // world_size)


def shard_batches(data: Any, batch_size: int, dist: Any, *, shuffle: bool,
                  generator: Optional[torch.Generator] = None) -> Iterator[Any]:
    """This rank's batches of one epoch of in-memory ``data`` (``runtime.data.Tensors``).

    The permutation is drawn from ``generator`` exactly as the single-process path draws it
    (one ``randperm`` per epoch), so every rank, seeded alike, draws the same order, and a
    checkpoint's generator state fixes the epoch's order on any number of processes. With a
    world of one this *is* the single-process path.
    """
    if not dist.active:
        return batches(data, batch_size, shuffle=shuffle, generator=generator)
    if getattr(data, "shards_itself", False):  # a streamed table: each rank reads only its own units
        return data.batches(batch_size, shuffle, generator, rank=dist.rank, world_size=dist.world_size)
    order = torch.randperm(len(data), generator=generator) if shuffle else torch.arange(len(data))
    # The shard as an order: streamed data reads it through its loader; augmentation draws its epoch seed.
    return batches(data, batch_size, generator=generator, order=shard_indices(order, dist.rank, dist.world_size))
