"""Training-only image augmentation (``images.augment``), the transforms of ``catalog/transforms.py``.

Transforms work on a batch ``(B, C, H, W)`` of normalized images. Their random choices are not
drawn from a generator's stream but computed from (epoch seed, sample index, draw number) by a
counter-based hash (SplitMix64), so an image gets the same crop and flip whether it is augmented
inside an in-memory batch or alone in a DataLoader worker, and in-memory and streamed runs of one
spec train bit for bit alike. The epoch seed is drawn from the run's shuffling generator, whose
state every checkpoint keeps, so a resumed run repeats them too.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from specnn.catalog.base import resolve
from specnn.catalog.transforms import chosen_transform

__all__ = ["Augment", "uniforms", "random_crop", "horizontal_flip", "vertical_flip"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def uniforms(seed: int, indices: np.ndarray, draws: int, offset: int = 0) -> np.ndarray:
    """Numbers in [0, 1), shape (len(indices), draws): a pure function of its arguments.

    >>> a = uniforms(7, np.array([3, 5]), 2)
    >>> bool((a == uniforms(7, np.array([5, 3]), 2)[::-1]).all()), a.shape
    (True, (2, 2))
    """
    with np.errstate(over="ignore"):
        counter = (np.asarray(indices, dtype=np.uint64)[:, None] * np.uint64(1 << 16)
                   + np.arange(offset, offset + draws, dtype=np.uint64)[None, :])
        z = np.uint64(seed & (2**64 - 1)) + (counter + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


class Augment:
    """The spec's transforms in order, with the normalized value of a black pixel (crop padding)."""

    def __init__(self, entries: Sequence[Any], black: Sequence[float]) -> None:
        self.steps = [(resolve(d.apply), d.draws, args) for d, args in map(chosen_transform, entries)]
        self.black = torch.tensor(list(black), dtype=torch.float32)

    def __call__(self, images: torch.Tensor, seed: int, indices: np.ndarray) -> torch.Tensor:
        """Augment ``images`` (B, C, H, W), sample ``indices[b]`` of the epoch seeded ``seed``."""
        offset = 0
        for apply, draws, args in self.steps:
            u = torch.from_numpy(uniforms(seed, indices, draws, offset))
            images = apply(images, u, args, self.black.to(images.device))
            offset += draws
        return images


def random_crop(images: torch.Tensor, u: torch.Tensor, args: Any, black: torch.Tensor) -> torch.Tensor:
    """Pad every side by ``padding`` (black), then crop back to H x W at a random offset per image."""
    p = args.padding
    if p == 0:
        return images
    b, c, h, w = images.shape
    padded = black.view(1, c, 1, 1).expand(b, c, h + 2 * p, w + 2 * p).clone()
    padded[:, :, p:p + h, p:p + w] = images
    top = (u[:, 0] * (2 * p + 1)).long().clamp(max=2 * p).to(images.device)
    left = (u[:, 1] * (2 * p + 1)).long().clamp(max=2 * p).to(images.device)
    rows = (top[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (B, H, 1)
    cols = (left[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    # Plain (N, C, H, W) strides: with one channel the permuted tensor counts as contiguous but
    # convolutions would take it as channels-last and round differently from a streamed batch.
    return cropped.clone(memory_format=torch.contiguous_format)


def horizontal_flip(images: torch.Tensor, u: torch.Tensor, args: Any, black: torch.Tensor) -> torch.Tensor:
    return _flip(images, u, args.p, -1)


def vertical_flip(images: torch.Tensor, u: torch.Tensor, args: Any, black: torch.Tensor) -> torch.Tensor:
    return _flip(images, u, args.p, -2)


def _flip(images: torch.Tensor, u: torch.Tensor, p: float, dim: int) -> torch.Tensor:
    chosen = (u[:, 0] < p).to(images.device)
    if not bool(chosen.any()):
        return images
    return torch.where(chosen.view(-1, 1, 1, 1), images.flip(dim), images)
