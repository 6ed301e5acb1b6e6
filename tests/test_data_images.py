"""Image folders: a CNN learns two shapes from root/<class>/*.png, in memory and streamed by two
DataLoader workers, with the same result for one seed; predict takes an image or a folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from specnn.errors import DataError, SpecError
from specnn.launch import train
from specnn.runtime.data.augment import Augment, uniforms
from specnn.runtime.runs.predict import predict
from specnn.spec.loader import load_spec

Image = pytest.importorskip("PIL.Image")

SPEC = """\
specnn: 1
name: shapes
seed: 0
model:
  input: [1, 16, 16]
  layers:
    - Conv2d: {{out_channels: 8, kernel_size: 3, padding: 1}}
    - ReLU:
    - MaxPool2d: {{kernel_size: 2}}
    - Conv2d: {{out_channels: 16, kernel_size: 3, padding: 1}}
    - ReLU:
    - AdaptiveMaxPool2d: {{output_size: 1}}
    - Flatten:
    - Linear: {{out_features: 2}}
data:
  images:
    path: shapes
    channels: 1
    augment:
      - RandomCrop: {{padding: 2}}
      - RandomHorizontalFlip:
  validation_split: 0.2
  test_split: 0.1
  stratify: true
{loader}loss:
  CrossEntropyLoss:
optimizer:
  Adam: {{lr: 0.01}}
train: {{epochs: 12, batch_size: 32, device: cpu}}
"""


def draw(shape: str, rng: np.random.Generator) -> np.ndarray:
    """A 16x16 gray image: a filled square or a ring, at a random place and size, with noise."""
    y, x = np.mgrid[:16, :16]
    cy, cx, r = rng.uniform(5, 11), rng.uniform(5, 11), rng.uniform(3, 4.5)
    if shape == "square":
        inside = (np.abs(y - cy) <= r) & (np.abs(x - cx) <= r)
    else:
        inside = np.abs(np.hypot(y - cy, x - cx) - r) <= 1.0
    pixels = 40 + 180 * inside + rng.normal(0, 15, (16, 16))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_folder(root: Path, per_class: int = 150) -> Path:
    rng = np.random.default_rng(0)
    for shape in ("ring", "square"):
        (root / "shapes" / shape).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(draw(shape, rng)).save(root / "shapes" / shape / f"{i:03d}.png")
    return root / "shapes"


def write_spec(folder: Path, loader: str = "") -> Path:
    spec = folder / "shapes.yaml"
    spec.write_text(SPEC.format(loader=loader))
    return spec


@pytest.mark.slow
def test_a_cnn_learns_an_image_folder_alike_in_memory_and_streamed_by_two_workers(tmp_path):
    make_folder(tmp_path)
    in_memory = train(load_spec(write_spec(tmp_path)), tmp_path / "memory", quiet=True)
    streamed = train(load_spec(write_spec(tmp_path, "  loader: {in_memory: false, workers: 2}\n")),
                     tmp_path / "streamed", quiet=True)
    last = [json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1]) for run in (in_memory, streamed)]
    assert last[0]["val_accuracy"] >= 0.95
    assert last[0] == {**last[1], "seconds": last[0]["seconds"]}  # the same run, bit for bit
    for name, weight in in_memory.model.state_dict().items():
        assert torch.equal(weight, streamed.model.state_dict()[name]), name
    test = json.loads((in_memory.path / "test.json").read_text())
    assert test["samples"] == 30 and test["metrics"]["accuracy"] >= 0.9
    stored = json.loads((in_memory.path / "preprocess.json").read_text())["image"]
    assert stored["size"] == [16, 16] and stored["channels"] == 1 and 0 < stored["mean"][0] < 1
    # predict: one image, or a folder of them, named by file
    one = predict(in_memory.path, tmp_path / "shapes" / "square" / "000.png")
    assert one.labels == ["square"]
    folder = predict(streamed.path, tmp_path / "shapes")
    assert folder.names[0] == "ring/000.png" and len(folder) == 300
    assert np.mean([label == name.split("/")[0] for label, name in zip(folder.labels, folder.names)]) >= 0.95
    assert folder.to_csv().splitlines()[:2] == ["file,prediction", "ring/000.png,ring"]


def test_augmentation_is_a_function_of_seed_and_sample_so_batches_and_workers_agree():
    from specnn.catalog.transforms import Transform

    augment = Augment([Transform.model_validate({"RandomCrop": {"padding": 2}}),
                       Transform.model_validate({"RandomHorizontalFlip": None})], black=[-1.0])
    images = torch.arange(4 * 25, dtype=torch.float32).reshape(4, 1, 5, 5)
    batch = augment(images, 11, np.arange(4))
    alone = torch.cat([augment(images[i:i + 1], 11, np.array([i])) for i in range(4)])
    assert torch.equal(batch, alone)
    in_a_worker = np.concatenate([augment(images[i:i + 1].numpy(), 11, np.array([i])) for i in range(4)])
    assert torch.equal(batch, torch.from_numpy(in_a_worker))
    assert not torch.equal(batch, augment(images, 12, np.arange(4)))  # another epoch, other crops
    assert (batch == -1).any()  # the padding is the normalized black
    assert uniforms(3, np.arange(1000), 1).mean() == pytest.approx(0.5, abs=0.05)
    many = uniforms(2**62 + 5, np.arange(70_000, 70_003), 4)  # numpy's path; one image takes plain ints
    assert all((many[i] == uniforms(2**62 + 5, np.array([70_000 + i]), 4)[0]).all() for i in range(3))


def test_image_folder_problems_are_located(tmp_path):
    spec = write_spec(tmp_path)
    with pytest.raises(DataError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    assert str(info.value) == (f"{tmp_path / 'shapes'}: image folder not found "
                               "(give a folder with one subfolder of images per class)")
    make_folder(tmp_path, per_class=3)
    Image.fromarray(np.zeros((20, 16), np.uint8)).save(tmp_path / "shapes" / "ring" / "big.png")
    with pytest.raises(DataError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    assert str(info.value) == (f"{tmp_path / 'shapes' / 'ring' / 'big.png'}: the image is 20x16 (height x width), "
                               "the first one is 16x16 (set images.size: [16, 16] to resize them all)")
    (tmp_path / "shapes" / "ring" / "big.png").unlink()
    text = spec.read_text().replace("input: [1, 16, 16]", "input: [3, 16, 16]")
    spec.write_text(text)
    with pytest.raises(DataError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    line = text.splitlines().index("  input: [3, 16, 16]") + 1
    assert str(info.value) == (f"{spec}:{line}:3: model.input: the data has [1, 16, 16] features per sample but the "
                               "model input is [3, 16, 16]")
    spec.write_text(text.replace("    channels: 1\n", "    channels: 1\n    normalize: {mean: [0.5, 0.5], std: [1, 1]}\n"))
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert "normalize.mean has 2 values for 1 channel(s)" in str(info.value)
