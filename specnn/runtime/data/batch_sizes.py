"""Training batches a model cannot take, refused once the training split's size is known.

A BatchNorm over one value per channel (``compiler/batch_stats.py``) needs at least two samples in
every training batch: ``batch_size: 1``, a training split of one sample, or a last batch of one
(41 samples in batches of 4) would stop the run with torch's "Expected more than 1 value per
channel when training", after the run folder is written. The trainer checks it before anything is
written; ``specnn validate --data`` too, where it reads the whole data.
"""

from __future__ import annotations

from typing import Any

from specnn.compiler.batch_stats import one_value_per_channel
from specnn.errors import SpecError, spec_problem

BATCH_SIZE_PATH = ("train", "batch_size")


def check_batch_sizes(spec: Any, compiled: Any, samples: int, batch_size: int) -> None:
    """Every training batch of ``samples`` in batches of ``batch_size`` (this rank's) suits the model.

    Raises:
        SpecError: a BatchNorm over one value per channel would get a one-sample batch, located at
            ``train.batch_size``.
    """
    last = samples % batch_size or min(batch_size, samples)
    smallest = min(batch_size, samples, last)
    if smallest != 1:
        return
    norms = one_value_per_channel(compiled.graph)
    if not norms:
        return
    norm = norms[0]
    if samples == 1:
        why = "the training split holds 1 sample"
        hint = "use more data, or a smaller validation_split / test_split"
    elif batch_size == 1:
        why = "batch_size is 1"
        hint = "use a batch_size of 2 or more"
    else:
        why = f"the training split's {samples} samples in batches of {batch_size} leave a last batch of 1"
        hint = f"use a batch_size that leaves no batch of one sample, e.g. {_suggest(samples, batch_size)}"
    raise SpecError([spec_problem(
        spec, BATCH_SIZE_PATH,
        f"{norm.kind} '{norm.name}' normalizes each of its channels over the batch, one value per sample; "
        f"{why}, which it cannot normalize in training", code="batch-size", hint=hint,
    )])


def _suggest(samples: int, batch_size: int) -> int:
    """The nearest batch size to ``batch_size`` that leaves no batch of one.

    >>> _suggest(41, 4), _suggest(9, 8)
    (3, 9)
    """
    for step in range(1, samples + 1):
        for size in (batch_size + step, batch_size - step):
            if 2 <= size <= samples and samples % size != 1:
                return size
    return samples
