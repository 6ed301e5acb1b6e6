"""class_weight: balanced (or a list) on classification losses, from the training split only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import specnn
from specnn.errors import SpecError
from specnn.runtime.train.losses import make_loss

SPEC = """\
specnn: 1
name: imbalanced
model:
  input: [2]
  layers:
    - Linear: {out_features: 3}
data:
  csv: {path: data.csv, target: label}
  validation_split: VALIDATION
loss:
  CrossEntropyLoss: {class_weight: WEIGHT}
optimizer:
  Adam: {lr: 0.01}
train: {epochs: 1, batch_size: 128, device: cpu}  # one batch: the weighted mean is over all rows
"""


def write(tmp_path: Path, weight: str = "balanced", validation: float = 0.0, counts=(60, 30, 10)) -> Path:
    rows = ["a,b,label"] + [f"{i % 7},{i % 5},{name}" for name, n in zip("xyz", counts) for i in range(n)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.replace("WEIGHT", weight).replace("VALIDATION", str(validation)))
    return path


def test_balanced_weights_are_sklearns_rule_on_the_training_split(tmp_path):
    run = specnn.train(specnn.load_spec(write(tmp_path)), out=tmp_path / "run", quiet=True)
    # n_samples / (n_classes * count): 100 / (3 * [60, 30, 10])
    assert run.meta["class_weight"] == pytest.approx([100 / 180, 100 / 90, 100 / 30])
    loss = make_loss(run.spec, torch.device("cpu"), run.meta["class_weight"])
    torch.testing.assert_close(loss.weight, torch.tensor([100 / 180, 100 / 90, 100 / 30]))
    # evaluate scores with the weights the run trained with
    evaluated = specnn.evaluate(run, tmp_path / "data.csv")["metrics"]["loss"]
    model = run.model.eval()
    import numpy as np

    data = np.loadtxt(tmp_path / "data.csv", delimiter=",", skiprows=1, usecols=(0, 1), dtype=np.float32)
    targets = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(torch.from_numpy(data)), targets, weight=loss.weight)
    assert evaluated == pytest.approx(expected.item(), rel=1e-5)


def test_counts_come_from_the_training_split_only(tmp_path):
    run = specnn.train(specnn.load_spec(write(tmp_path, validation=0.3)), out=tmp_path / "run", quiet=True)
    assert run.meta["samples"] == {"train": 70, "validation": 30}
    weights = torch.tensor(run.meta["class_weight"])
    counts = 70 / (3 * weights)  # back from the weights: whole numbers summing to the training split
    torch.testing.assert_close(counts, counts.round(), atol=1e-4, rtol=0)
    assert counts.sum().round().item() == 70


def test_a_list_is_torchs_weight_and_its_length_is_checked(tmp_path):
    run = specnn.train(specnn.load_spec(write(tmp_path, "[1.0, 2.0, 4.0]")), out=tmp_path / "run", quiet=True)
    assert run.meta["class_weight"] == [1.0, 2.0, 4.0]
    spec = write(tmp_path, "[1.0, 2.0]")
    with pytest.raises(SpecError) as info:
        specnn.train(specnn.load_spec(spec), out=tmp_path / "run2", quiet=True)
    assert str(info.value) == (f"{spec}:11:22: loss.CrossEntropyLoss.class_weight: gives 2 weights for 3 classes "
                               "(one weight per class, in class order)")
    assert not (tmp_path / "run2").exists()


def test_balanced_without_a_class_in_the_training_split_is_located(tmp_path):
    spec = write(tmp_path)  # integer labels 0, 1, 3 for 4 outputs: class 2 has no sample
    rows = ["a,b,label"] + [f"{i % 7},{i % 5},{label}" for label in (0, 1, 3) for i in range(20)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    spec.write_text(SPEC.replace("out_features: 3", "out_features: 4").replace("WEIGHT", "balanced")
                    .replace("VALIDATION", "0.0"))
    with pytest.raises(SpecError) as info:
        specnn.train(specnn.load_spec(spec), out=tmp_path / "run", quiet=True)
    assert str(info.value).endswith("loss.CrossEntropyLoss.class_weight: balanced weights need every class in the "
                                    "training split; no sample of class 2 (give a list of weights instead, or use "
                                    "more data)")


def test_weight_and_class_weight_together_are_a_spec_error(tmp_path):
    spec = write(tmp_path, "balanced")
    spec.write_text(spec.read_text().replace("{class_weight: balanced}", "{class_weight: balanced, weight: [1, 1, 1]}"))
    with pytest.raises(SpecError) as info:
        specnn.load_spec(spec)
    assert "give weight or class_weight, not both" in str(info.value)
