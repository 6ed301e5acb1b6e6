"""Metrics equal scikit-learn's on random data, accumulated over uneven batches."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from specnn.catalog.metrics import METRICS, AveragedArgs, TopKArgs, metric_key, task_problems
from specnn.runtime.train.metrics import MetricSet
from specnn.errors import SpecError

BATCH_SIZES = [7, 1, 30, 12]  # uneven on purpose, 50 samples
CLASSES = 5
ALL_CLASSIFICATION = [
    ("accuracy", None), ("top_k_accuracy", TopKArgs(k=2)), ("top_k_accuracy", TopKArgs(k=3)),
    ("precision", None), ("recall", None), ("f1", None),
    ("precision", AveragedArgs(average="micro")), ("recall", AveragedArgs(average="weighted")),
    ("f1", AveragedArgs(average="weighted")), ("f1", AveragedArgs(average="micro")), ("confusion_matrix", None),
]


def _in_batches(metrics: MetricSet, outputs: torch.Tensor, targets: torch.Tensor) -> dict:
    start = 0
    for size in BATCH_SIZES:
        metrics.update(outputs[start:start + size], targets[start:start + size])
        start += size
    assert start == len(outputs)
    return metrics.compute()


def _sklearn_classification(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> dict:
    labels = list(range(CLASSES))
    expected = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "top2_accuracy": skm.top_k_accuracy_score(y_true, scores, k=2, labels=labels),
        "top3_accuracy": skm.top_k_accuracy_score(y_true, scores, k=3, labels=labels),
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    for name, function in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        for average in ("macro", "micro", "weighted"):
            key = metric_key(name, AveragedArgs(average=average))
            expected[key] = function(y_true, y_pred, average=average, zero_division=0)
    return expected


def _check_classification(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    metrics = MetricSet(ALL_CLASSIFICATION, task="classification", num_classes=CLASSES)
    ours = _in_batches(metrics, outputs, targets)
    expected = _sklearn_classification(targets.numpy(), outputs.argmax(1).numpy(), outputs.numpy())
    assert set(ours) <= set(expected)
    assert ours.pop("confusion_matrix") == expected["confusion_matrix"]
    for key, value in ours.items():
        assert value == pytest.approx(expected[key], abs=1e-12), key


def test_classification_metrics_match_sklearn():
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(50, CLASSES, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, CLASSES, (50,), generator=generator)
    _check_classification(outputs, targets)


def test_class_that_never_occurs_follows_sklearn_zero_division_0():
    generator = torch.Generator().manual_seed(1)
    outputs = torch.randn(50, CLASSES, generator=generator, dtype=torch.float64)
    outputs[:, 4] = -10.0  # class 4 is never predicted...
    targets = torch.randint(0, 3, (50,), generator=generator)  # ...and never a target; class 3 only predicted
    assert 3 in outputs.argmax(1).tolist() and 3 not in targets.tolist()
    _check_classification(outputs, targets)
    # Class 3 (predicted, never true) counts as 0 in the macro average; class 4 (neither) is left out.
    metrics = MetricSet([("recall", None)], task="classification", num_classes=CLASSES)
    metrics.update(outputs, targets)
    per_class = skm.recall_score(targets, outputs.argmax(1), average=None, labels=[0, 1, 2, 3], zero_division=0)
    assert metrics.compute()["recall"] == pytest.approx(per_class.mean())


def test_accumulation_is_independent_of_batching_and_reset_starts_over():
    generator = torch.Generator().manual_seed(2)
    outputs = torch.randn(50, CLASSES, generator=generator)
    targets = torch.randint(0, CLASSES, (50,), generator=generator)
    metrics = MetricSet(ALL_CLASSIFICATION, task="classification", num_classes=CLASSES)
    metrics.update(torch.randn(9, CLASSES), torch.randint(0, CLASSES, (9,)))
    metrics.reset()
    batched = _in_batches(metrics, outputs, targets)
    metrics.reset()
    metrics.update(outputs, targets)
    assert batched == metrics.compute()


def test_ignored_targets_are_skipped():
    outputs = torch.tensor([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    metrics = MetricSet([("accuracy", None), ("top_k_accuracy", TopKArgs(k=2))], task="classification", num_classes=3)
    metrics.update(outputs, torch.tensor([0, -100, 1]))  # CrossEntropyLoss's default ignore_index
    assert metrics.compute() == {"accuracy": 0.5, "top2_accuracy": 1.0}


HITS_ONLY = [("accuracy", None), ("top_k_accuracy", TopKArgs(k=2)), ("top_k_accuracy", TopKArgs(k=3))]


@pytest.mark.parametrize("targets_in_range", [False, True])
def test_accuracy_and_top_k_alone_count_hits_and_match_sklearn(targets_in_range):
    generator = torch.Generator().manual_seed(7)
    outputs = torch.randn(50, CLASSES, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, CLASSES, (50,), generator=generator)
    metrics = MetricSet(HITS_ONLY, task="classification", num_classes=CLASSES, targets_in_range=targets_in_range)
    ours = _in_batches(metrics, outputs, targets)
    expected = _sklearn_classification(targets.numpy(), outputs.argmax(1).numpy(), outputs.numpy())
    assert ours == {key: expected[key] for key in ("accuracy", "top2_accuracy", "top3_accuracy")}
    # the same numbers, bit for bit, as when every metric is read from the confusion matrix
    assert ours == {key: value for key, value in _in_batches(
        MetricSet(ALL_CLASSIFICATION, task="classification", num_classes=CLASSES), outputs, targets).items()
        if key in ours}


def test_targets_in_range_gives_the_same_values_as_masking():
    generator = torch.Generator().manual_seed(8)
    outputs = torch.randn(50, CLASSES, generator=generator)
    targets = torch.randint(0, CLASSES, (50,), generator=generator)
    for wanted in (ALL_CLASSIFICATION, HITS_ONLY, [("accuracy", None)]):
        masked = MetricSet(wanted, task="classification", num_classes=CLASSES)
        unmasked = MetricSet(wanted, task="classification", num_classes=CLASSES, targets_in_range=True)
        assert _in_batches(masked, outputs, targets) == _in_batches(unmasked, outputs, targets)


def test_targets_above_the_class_range_are_skipped_by_hit_counts_too():
    outputs = torch.tensor([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0]])
    metrics = MetricSet(HITS_ONLY[:2], task="classification", num_classes=3)
    metrics.update(outputs, torch.tensor([0, 7, 1, -100]))
    assert metrics.compute() == {"accuracy": 0.5, "top2_accuracy": 1.0}


def test_accuracy_alone_keeps_no_class_by_class_matrix():
    metrics = MetricSet([("accuracy", None)], task="classification", num_classes=50_000)  # a vocabulary
    metrics.update(torch.zeros(2, 50_000).index_fill_(1, torch.tensor([3]), 1.0), torch.tensor([3, 4]))
    assert metrics.state_dict()["counts"].numel() == 2
    assert metrics.compute() == {"accuracy": 0.5}


@pytest.mark.parametrize("wanted", [ALL_CLASSIFICATION, HITS_ONLY])
def test_state_dict_continues_a_half_done_epoch(wanted):
    generator = torch.Generator().manual_seed(9)
    outputs = torch.randn(50, CLASSES, generator=generator)
    targets = torch.randint(0, CLASSES, (50,), generator=generator)
    first = MetricSet(wanted, task="classification", num_classes=CLASSES, targets_in_range=True)
    first.update(outputs[:20], targets[:20])
    state = {key: value.clone() if isinstance(value, torch.Tensor) else value
             for key, value in first.state_dict().items()}
    resumed = MetricSet(wanted, task="classification", num_classes=CLASSES, targets_in_range=True)
    resumed.load_state_dict(state)
    resumed.update(outputs[20:], targets[20:])
    whole = MetricSet(wanted, task="classification", num_classes=CLASSES, targets_in_range=True)
    whole.update(outputs, targets)
    assert resumed.compute() == whole.compute()


def test_per_position_outputs_are_flattened():
    generator = torch.Generator().manual_seed(3)
    outputs = torch.randn(4, CLASSES, 6, generator=generator)  # (N, C, L), as CrossEntropyLoss takes them
    targets = torch.randint(0, CLASSES, (4, 6), generator=generator)
    metrics = MetricSet([("accuracy", None), ("f1", None)], task="classification", num_classes=CLASSES)
    metrics.update(outputs, targets)
    y_pred, y_true = outputs.argmax(1).reshape(-1), targets.reshape(-1)
    assert metrics.compute() == pytest.approx({
        "accuracy": skm.accuracy_score(y_true, y_pred), "f1": skm.f1_score(y_true, y_pred, average="macro"),
    })


@pytest.mark.parametrize("threshold, outputs", [
    (0.0, torch.randn(50, 1, generator=torch.Generator().manual_seed(4))),  # logits, BCEWithLogitsLoss
    (0.5, torch.rand(50, generator=torch.Generator().manual_seed(4))),  # probabilities, BCELoss
])
def test_binary_single_output_matches_sklearn(threshold, outputs):
    targets = (torch.rand(50, generator=torch.Generator().manual_seed(5)) > 0.4).float().reshape(outputs.shape)
    wanted = [("accuracy", None), ("precision", None), ("recall", None), ("f1", None), ("confusion_matrix", None)]
    metrics = MetricSet(wanted, task="binary", binary_threshold=threshold)
    ours = _in_batches(metrics, outputs, targets)
    y_true, y_pred = targets.reshape(-1).long().numpy(), (outputs.reshape(-1) > threshold).long().numpy()
    assert ours["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist()
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert ours["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert ours["precision"] == pytest.approx(skm.precision_score(y_true, y_pred, average="macro", zero_division=0))
    assert ours["recall"] == pytest.approx(skm.recall_score(y_true, y_pred, average="macro", zero_division=0))


@pytest.mark.parametrize("outputs_shape", [(50,), (50, 1), (50, 3)])
def test_regression_metrics_match_sklearn(outputs_shape):
    generator = torch.Generator().manual_seed(6)
    # A large offset: a naive sum-of-squares variance would lose the targets' spread.
    targets = 1e6 + torch.randn(outputs_shape, generator=generator, dtype=torch.float32)
    outputs = targets + 0.5 * torch.randn(outputs_shape, generator=generator, dtype=torch.float32)
    metrics = MetricSet([("mse", None), ("mae", None), ("r2", None)], task="regression")
    ours = _in_batches(metrics, outputs, targets)
    y_true = targets.double().reshape(50, -1).numpy()
    y_pred = outputs.double().reshape(50, -1).numpy()
    assert ours["mse"] == pytest.approx(skm.mean_squared_error(y_true, y_pred), rel=1e-9)
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred), rel=1e-9)
    assert ours["r2"] == pytest.approx(skm.r2_score(y_true, y_pred), rel=1e-9)


def test_regression_targets_shaped_n_match_outputs_n_1():
    metrics = MetricSet([("mse", None)], task="regression")
    metrics.update(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 4.0]))
    assert metrics.compute() == {"mse": 2.0}


@pytest.mark.parametrize("predicted, expected", [([3.0, 3.0, 3.0], 1.0), ([3.0, 2.0, 3.0], 0.0)])
def test_r2_of_constant_target_follows_sklearn(predicted, expected):
    metrics = MetricSet([("r2", None)], task="regression")
    metrics.update(torch.tensor(predicted), torch.tensor([3.0, 3.0, 3.0]))
    assert metrics.compute()["r2"] == expected == skm.r2_score([3.0, 3.0, 3.0], predicted)


def test_metric_for_the_wrong_task_is_a_spec_error():
    with pytest.raises(SpecError) as caught:
        MetricSet([("mse", None), ("accuracy", None)], task="regression")
    assert str(caught.value) == (
        "train.metrics[1]: accuracy is a classification metric, but the loss is a regression loss"
    )


def test_task_problems_name_the_loss():
    problems = task_problems([("r2", None), ("accuracy", None)], "binary", "BCEWithLogitsLoss")
    assert [p.format() for p in problems] == [
        "train.metrics[0]: r2 is a regression metric, but BCEWithLogitsLoss is a binary loss"
    ]


@pytest.mark.parametrize("task, classes", [("classification", 3), ("binary", None)])
def test_top_k_needs_k_below_the_class_count(task, classes):
    with pytest.raises(SpecError) as caught:
        MetricSet([("accuracy", None), ("top_k_accuracy", TopKArgs(k=3))], task=task, num_classes=classes)
    assert str(caught.value) == (
        f"train.metrics[1].top_k_accuracy.k: top_k_accuracy needs k below the number of classes "
        f"({classes or 2}), got k=3"
    )


def test_no_samples_gives_nan():
    metrics = MetricSet([("accuracy", None)], task="classification", num_classes=3)
    assert np.isnan(metrics.compute()["accuracy"])
    metrics = MetricSet([("mse", None)], task="regression")
    assert np.isnan(metrics.compute()["mse"])


def test_every_table_entry_is_computed():
    regression = [(name, None) for name, d in METRICS.items() if d.task == "regression"]
    classification = [(name, None) for name, d in METRICS.items() if d.task == "classification"]
    assert {d.task for d in METRICS.values()} <= {"classification", "regression"}  # no "any" entry yet
    metrics = MetricSet(classification, task="classification", num_classes=6)
    metrics.update(torch.randn(8, 6), torch.randint(0, 6, (8,)))
    assert sorted(metrics.compute()) == sorted(metric_key(name) for name, _ in classification)
    metrics = MetricSet(regression, task="regression")
    metrics.update(torch.randn(8), torch.randn(8))
    assert sorted(metrics.compute()) == sorted(metric_key(name) for name, _ in regression)


def test_catalog_does_not_import_torch():
    code = "import sys, specnn.catalog.metrics; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
