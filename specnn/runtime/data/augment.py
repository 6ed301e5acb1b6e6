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


_MASK = (1 << 64) - 1


def uniforms(seed: int, indices: np.ndarray, draws: int, offset: int = 0) -> np.ndarray:
    """Numbers in [0, 1), shape (len(indices), draws): a pure function of its arguments.

    >>> a = uniforms(7, np.array([3, 5]), 2)
    >>> bool((a == uniforms(7, np.array([5, 3]), 2)[::-1]).all()), a.shape
    (True, (2, 2))
    >>> bool((uniforms(7, np.arange(9), 3) == uniforms(7, np.arange(9), 3, offset=0)).all())
    True
    """
    if len(indices) <= 2:  # a worker's image: plain integers beat numpy's per-call overhead
        return np.array([[_splitmix(seed, (int(i) << 16) + k) for k in range(offset, offset + draws)]
                         for i in indices], dtype=np.float64).reshape(len(indices), draws)
    with np.errstate(over="ignore"):
        counter = (np.asarray(indices, dtype=np.uint64)[:, None] * np.uint64(1 << 16)
                   + np.arange(offset, offset + draws, dtype=np.uint64)[None, :])
        z = np.uint64(seed & _MASK) + (counter + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _splitmix(seed: int, counter: int) -> float:
    """One SplitMix64 output as a float in [0, 1): the numpy path above, for one counter."""
    z = ((seed & _MASK) + ((counter + 1) * 0x9E3779B97F4A7C15 & _MASK)) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    return (z >> 11) * 2.0**-53


class Augment:
    """The spec's transforms in order, with the normalized value of a black pixel (crop padding)."""

    def __init__(self, entries: Sequence[Any], black: Sequence[float]) -> None:
        self.steps = [(resolve(d.apply), d.draws, args) for d, args in map(chosen_transform, entries)]
        self.black = torch.tensor(list(black), dtype=torch.float32)

    def __call__(self, images: Any, seed: int, indices: np.ndarray) -> Any:
        """Augment ``images`` (B, C, H, W), sample ``indices[b]`` of the epoch seeded ``seed``.

        A batch is a tensor (in memory, on the device); one image in a DataLoader worker is a
        numpy array, moved by plain slicing. Both only move pixels, so they agree exactly.
        """
        u = uniforms(seed, indices, sum(draws for _, draws, _ in self.steps))
        if isinstance(images, np.ndarray):
            black = self.black.numpy()
        else:
            u, black = torch.from_numpy(u), self.black.to(images.device)
        offset = 0
        for apply, draws, args in self.steps:
            images = apply(images, u[:, offset:offset + draws], args, black)
            offset += draws
        return images


def random_crop(images: torch.Tensor, u: torch.Tensor, args: Any, black: torch.Tensor) -> torch.Tensor:
    """Pad every side by ``padding`` (black), then crop back to H x W at a random offset per image."""
    p = args.padding
    if p == 0:
        return images
    b, c, h, w = images.shape
    if isinstance(images, np.ndarray):  # a worker's image: black, then the part the window still shows
        out = np.empty_like(images)
        out[:] = black.reshape(1, c, 1, 1)
        for i in range(b):
            t = min(int(u[i, 0] * (2 * p + 1)), 2 * p) - p
            s = min(int(u[i, 1] * (2 * p + 1)), 2 * p) - p
            out[i, :, max(0, -t):h - max(0, t), max(0, -s):w - max(0, s)] = \
                images[i, :, max(0, t):h + min(0, t), max(0, s):w + min(0, s)]
        return out
    top = (u[:, 0] * (2 * p + 1)).long().clamp(max=2 * p)
    left = (u[:, 1] * (2 * p + 1)).long().clamp(max=2 * p)
    padded = black.view(1, c, 1, 1).expand(b, c, h + 2 * p, w + 2 * p).clone()
    padded[:, :, p:p + h, p:p + w] = images
    top, left = top.to(images.device), left.to(images.device)
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


def _flip(images: Any, u: Any, p: float, dim: int) -> Any:
    chosen = u[:, 0] < p
    if isinstance(images, np.ndarray):  # a worker's image
        return np.where(chosen.reshape(-1, 1, 1, 1), np.flip(images, dim), images)
    if not bool(chosen.any()):
        return images
    return torch.where(chosen.to(images.device).view(-1, 1, 1, 1), images.flip(dim), images)
