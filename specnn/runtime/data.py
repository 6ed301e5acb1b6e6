"""From a spec's data source to batches on the training device.

Fast by default (DESIGN.md): the whole data set is held as tensors, moved to the device once,
and each epoch is batched by slicing one seeded permutation -- no per-sample Python work, no
``__getitem__`` + collate. :func:`batches` is the one place the loop gets batches from; it can
also go through a ``torch.utils.data.DataLoader`` (for later sources that do not fit in memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import numpy as np
import torch

from specnn.catalog.base import resolve
from specnn.catalog.losses import LOSSES
from specnn.catalog.sources import SOURCES
from specnn.runtime.sources import Arrays
from specnn.spec.errors import DataError, Problem

if TYPE_CHECKING:
    from specnn.spec.models import Spec

__all__ = ["Arrays", "Tensors", "load_arrays", "split", "prepare_targets", "to_tensors", "batches"]


@dataclass
class Tensors:
    """Features and targets as tensors on one device, first dimension = samples."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]


def load_arrays(spec: "Spec") -> Arrays:
    """Load the spec's data source (``data: {csv: ...}`` etc.) as arrays.

    Raises:
        DataError: the data cannot be read (file, row and column named).
    """
    source = SOURCES[spec.data.kind]
    loader = resolve(source.loader)
    return loader(spec.data.args, spec.base_dir, spec.seed)


def split(arrays: Arrays, validation_split: float, seed: int) -> tuple[Arrays, Optional[Arrays]]:
    """A seeded random train/validation split (not stratified).

    The validation part holds ``round(N * validation_split)`` samples (at least one when the
    fraction is positive); with a zero fraction there is no validation part.

    >>> a = Arrays(np.zeros((10, 2), np.float32), np.arange(10))
    >>> train, val = split(a, 0.2, seed=0)
    >>> len(train), len(val)
    (8, 2)
    """
    n = len(arrays)
    n_val = max(1, round(n * validation_split)) if validation_split > 0 else 0
    if n_val == 0:
        return arrays, None
    if n - n_val < 1:
        raise DataError([Problem("data", f"{n} sample(s) leave none for training after a validation split of {validation_split}",
                                 ("data", "validation_split"))])
    order = np.random.default_rng(seed).permutation(n)
    train_at, val_at = np.sort(order[n_val:]), np.sort(order[:n_val])
    take = lambda at: Arrays(arrays.features[at], arrays.targets[at], arrays.classes)  # noqa: E731
    return take(train_at), take(val_at)


def prepare_targets(targets: np.ndarray, loss: str, output_shape: Sequence[int]) -> np.ndarray:
    """Targets in the form the loss needs (``LossDef.target`` in ``catalog/losses.py``).

    ``index`` losses get int64 class indices in ``[0, classes)``; ``float`` losses get float32
    shaped like the model output, e.g. (N, 1) for ``BCEWithLogitsLoss`` with one output.

    >>> prepare_targets(np.array([0, 1, 1]), "BCEWithLogitsLoss", [1]).shape
    (3, 1)

    Raises:
        DataError: non-integer or out-of-range class labels; targets that do not fit the output.
    """
    if LOSSES[loss].target == "index":
        return _class_indices(targets, loss, output_shape)
    n = targets.shape[0]
    if targets.size != n * math.prod(output_shape):
        raise DataError([Problem(
            "target-shape",
            f"{loss} needs targets shaped like the model output {list(output_shape)} per sample, "
            f"but the data has {list(targets.shape[1:]) or [1]} per sample",
            ("loss", loss),
        )])
    return targets.astype(np.float32).reshape(n, *output_shape)


def _class_indices(targets: np.ndarray, loss: str, output_shape: Sequence[int]) -> np.ndarray:
    if targets.ndim != 1 or not np.all(targets == np.round(targets)):
        raise DataError([Problem("target", f"{loss} needs one integer class label per sample", ("loss", loss),
                                 hint="use MSELoss or another regression loss for numeric targets")])
    indices = targets.astype(np.int64)
    classes = output_shape[-1] if output_shape else 1
    bad = indices[(indices < 0) | (indices >= classes)]
    if bad.size:
        raise DataError([Problem(
            "target",
            f"class label {int(bad[0])} is out of range for a model with {classes} outputs (labels must be 0..{classes - 1})",
            ("loss", loss),
        )])
    return indices


def to_tensors(features: np.ndarray, targets: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensors:
    """Move a whole data set to the device once."""
    x = torch.as_tensor(features).to(device=device, dtype=dtype)
    return Tensors(x, torch.as_tensor(targets).to(device))


def batches(
    data: Tensors,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: Optional[torch.Generator] = None,
    use_dataloader: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (x, y) batches; every sample appears exactly once.

    The default path gathers the data set in a seeded order once per epoch and yields
    contiguous slices of it. ``use_dataloader`` goes through a DataLoader instead (per-sample
    indexing and collate, so slower); it is the seam for sources that do not fit in memory.
    """
    if use_dataloader:
        return _dataloader_batches(data, batch_size, shuffle, generator)
    return _tensor_batches(data, batch_size, shuffle, generator)


def _tensor_batches(data: Tensors, batch_size: int, shuffle: bool, generator: Optional[torch.Generator]):
    x, y = data.x, data.y
    if shuffle:
        # The permutation is drawn on the CPU so one seed gives one order on every device.
        order = torch.randperm(len(data), generator=generator).to(x.device)
        x, y = x[order], y[order]
    for start in range(0, len(data), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def _dataloader_batches(data: Tensors, batch_size: int, shuffle: bool, generator: Optional[torch.Generator]):
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=batch_size, shuffle=shuffle, generator=generator)
    yield from loader
