"""Splitting, target preparation and batching of in-memory data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specnn.runtime.data.splits import split_indices
from specnn.runtime.data.tensors import batches, prepare_targets, to_tensors
from specnn.errors import DataError


def test_split_is_deterministic_for_a_seed_and_disjoint():
    train_a, val_a, _ = split_indices(50, 0.2, 0.0, seed=7)
    train_b, val_b, _ = split_indices(50, 0.2, 0.0, seed=7)
    _, val_c, _ = split_indices(50, 0.2, 0.0, seed=8)
    assert (len(train_a), len(val_a)) == (40, 10)
    np.testing.assert_array_equal(val_a, val_b)
    np.testing.assert_array_equal(train_a, train_b)
    assert not np.array_equal(val_a, val_c)
    assert sorted(train_a.tolist() + val_a.tolist()) == list(range(50))


def test_zero_validation_split_keeps_everything_for_training():
    train, val, test = split_indices(5, 0.0, 0.0, seed=0)
    assert train.tolist() == [0, 1, 2, 3, 4] and len(val) == len(test) == 0


def test_a_split_that_leaves_no_training_data_is_an_error():
    with pytest.raises(DataError) as info:
        split_indices(1, 0.5, 0.0, seed=0)
    assert str(info.value) == "data.validation_split: 1 sample(s) leave none for training after a validation split of 0.5"


@pytest.mark.parametrize("use_dataloader", [False, True])
def test_batches_cover_every_sample_once_per_epoch(use_dataloader):
    data = to_tensors(np.arange(23, dtype=np.float32).reshape(23, 1), np.arange(23), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        got = list(batches(data, 5, shuffle=True, generator=generator, use_dataloader=use_dataloader))
        assert [len(y) for _, y in got] == [5, 5, 5, 5, 3]
        assert all(len(inputs) == 1 and len(inputs[0]) == len(y) for inputs, y in got)
        xs = torch.cat([x for (x,), _ in got])[:, 0]
        ys = torch.cat([y for _, y in got])
        assert sorted(ys.tolist()) == list(range(23))
        assert torch.equal(xs, ys.float())  # pairs stay together
        epochs.append(ys.tolist())
    assert epochs[0] != epochs[1]  # a new order each epoch


def test_unshuffled_batches_keep_the_order():
    data = to_tensors(np.zeros((7, 2), np.float32), np.arange(7), torch.device("cpu"))
    assert [y.tolist() for _, y in batches(data, 3)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_shuffled_order_is_seeded():
    data = to_tensors(np.zeros((30, 1), np.float32), np.arange(30), torch.device("cpu"))
    order = lambda seed: torch.cat([y for _, y in batches(data, 8, shuffle=True, generator=torch.Generator().manual_seed(seed))])  # noqa: E731
    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))


def test_index_targets_are_int64_and_checked_against_the_outputs():
    targets = prepare_targets(np.array([0, 2, 1]), "CrossEntropyLoss", [3])
    assert targets.dtype == np.int64 and targets.tolist() == [0, 2, 1]
    with pytest.raises(DataError) as info:
        prepare_targets(np.array([0, 3]), "CrossEntropyLoss", [3])
    assert str(info.value) == (
        "loss.CrossEntropyLoss: class label 3 is out of range for a model with 3 outputs (labels must be 0..2)"
    )


def test_fractional_targets_for_a_classification_loss_are_an_error():
    with pytest.raises(DataError) as info:
        prepare_targets(np.array([0.5, 1.0], np.float32), "NLLLoss", [2])
    assert str(info.value) == (
        "loss.NLLLoss: NLLLoss needs one integer class label per sample; the targets hold fractional values "
        "such as 0.5 (use MSELoss or another regression loss for numeric targets)"
    )


def test_float_targets_are_shaped_like_the_output():
    targets = prepare_targets(np.array([0, 1, 1]), "BCEWithLogitsLoss", [1])
    assert targets.dtype == np.float32 and targets.shape == (3, 1)
    assert prepare_targets(np.zeros((4, 2)), "MSELoss", [2]).shape == (4, 2)
    with pytest.raises(DataError) as info:
        prepare_targets(np.zeros((4, 3)), "MSELoss", [2])
    assert str(info.value) == (
        "loss.MSELoss: MSELoss needs targets shaped like the model output [2] per sample, but the data has [3] per sample"
    )
