"""Seeded train / validation / test splits, plain or stratified by class.

The plain split draws one permutation of the samples from the spec's seed: the first
``validation`` share goes to validation, the next ``test`` share to the test set, the rest to
training (each part in file order). Without a test share this is exactly the split specnn always
made, so runs and their resumption are unchanged. A stratified split does the same within each
class, so every part keeps the class shares of the whole.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from specnn.errors import DataError, Problem

__all__ = ["split_indices", "split_parts", "part_size"]


def part_size(n: int, share: float) -> int:
    """Samples in a part of ``share``: rounded, at least one when the share is positive.

    >>> part_size(10, 0.2), part_size(3, 0.1), part_size(10, 0.0)
    (2, 1, 0)
    """
    return max(1, round(n * share)) if share > 0 else 0


def split_indices(n: int, validation: float, test: float, seed: int,
                  labels: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted sample indices of the training, validation and test parts.

    Args:
        n: samples.
        validation, test: the shares held out.
        seed: the spec's seed.
        labels: class indices to stratify by; None for the plain split.

    Raises:
        DataError: the shares leave no sample for training (located at ``data.validation_split``).

    >>> [part.tolist() for part in split_indices(6, 0.34, 0.0, seed=0)]
    [[0, 1, 4, 5], [2, 3], []]
    """
    n_val, n_test = _sizes(n, validation, test)
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        parts = order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]
    else:
        parts = _stratified(rng, labels, n_val, n_test)
    train, val, held_out = (np.sort(p) for p in parts)
    return train, val, held_out


def split_parts(n: int, validation: float, test: float, seed: int) -> np.ndarray:
    """The plain split as one byte per sample: 0 training, 1 validation, 2 test.

    The same parts as :func:`split_indices` without ``labels``, held in 1 byte per sample (and
    8 while the permutation is drawn) rather than three index arrays: how a streamed table
    (``table_stream.py``) remembers which rows it holds out.

    >>> split_parts(6, 0.34, 0.0, seed=0).tolist()
    [0, 0, 1, 1, 0, 0]
    """
    n_val, n_test = _sizes(n, validation, test)
    order = np.random.default_rng(seed).permutation(n)
    parts = np.zeros(n, np.uint8)
    parts[order[:n_val]] = 1
    parts[order[n_val:n_val + n_test]] = 2
    return parts


def _sizes(n: int, validation: float, test: float) -> tuple[int, int]:
    n_val, n_test = part_size(n, validation), part_size(n, test)
    if n - n_val - n_test < 1:
        held = f"a validation split of {validation}" + (f" and a test split of {test}" if test else "")
        raise DataError([Problem("data", f"{n} sample(s) leave none for training after {held}",
                                 ("data", "validation_split"))])
    return n_val, n_test


def _stratified(rng: np.random.Generator, labels: np.ndarray, n_val: int, n_test: int) -> tuple:
    """Each class's samples shuffled and dealt to the parts in proportion (largest remainders)."""
    n = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    val_per, test_per = _apportion(counts, n_val, n), _apportion(counts, n_test, n)
    train, val, test = [], [], []
    for c, v, t in zip(classes, val_per, test_per):
        members = rng.permutation(np.flatnonzero(labels == c))
        val.append(members[:v])
        test.append(members[v:v + t])
        train.append(members[v + t:])
    return np.concatenate(train), np.concatenate(val), np.concatenate(test)


def _apportion(counts: np.ndarray, total: int, n: int) -> np.ndarray:
    """``total`` split over classes in proportion to ``counts`` (Hamilton's method)."""
    exact = counts * total / n
    shares = np.floor(exact).astype(np.int64)
    left = total - int(shares.sum())
    if left > 0:
        shares[np.argsort(-(exact - shares), kind="stable")[:left]] += 1
    return np.minimum(shares, counts)
