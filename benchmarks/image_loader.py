"""Streaming an image folder: specnn's loader against a hand-written torchvision-style loop.

    python benchmarks/image_loader.py                       # 4,000 RGB 32x32 PNGs, 2 workers
    python benchmarks/image_loader.py --images 20000 --size 64 --workers 4 --augment

Both read the same folder with the same workers and batch size, in a shuffled order, and decode
with Pillow, scale to [0, 1] and normalize per channel (with ``--augment``: a random crop with
4 pixels of padding and a horizontal flip per image). The baseline is what a PyTorch user
writes by hand -- a ``Dataset`` whose ``__getitem__`` opens one file, ``DataLoader(shuffle=True,
num_workers=N)`` -- no torchvision needed. Each way reads ``--epochs`` epochs after one warm-up
epoch (worker start-up is not timed); the best of ``--repeat`` interleaved trials is printed as
images per second, and the ratio baseline/specnn (target: within 1.1x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def make_folder(root: Path, images: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(10):
        (root / f"class{c}").mkdir(parents=True)
    for i in range(images):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"class{i % 10}" / f"{i:06d}.png")
    return root


class HandWritten(torch.utils.data.Dataset):
    """The textbook Dataset: one file per __getitem__, ToTensor + Normalize (+ crop and flip)."""

    def __init__(self, root: Path, augment: bool) -> None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.items = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).glob("*.png"))]
        self.mean, self.std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as im:
            x = torch.from_numpy(np.array(im.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).float() / 255
        x = (x - self.mean) / self.std
        if self.augment:
            h, w = x.shape[1:]
            padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
            top, left = torch.randint(0, 9, (2,)).tolist()
            x = padded[:, top:top + h, left:left + w]
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
        return x, label


def baseline(root: Path, args) -> float:
    loader = torch.utils.data.DataLoader(HandWritten(root, args.augment), batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)
    return _rate(lambda: iter(loader), len(loader.dataset), args.epochs)


def specnn_stream(root: Path, args) -> float:
    from specnn.compiler import compile_spec
    from specnn.runtime.train.trainer import prepare_data
    from specnn.spec.loader import load_spec_text

    augment = "    augment: [{RandomCrop: {padding: 4}}, {RandomHorizontalFlip: {}}]\n" if args.augment else ""
    spec = load_spec_text(f"""
name: bench
model: {{input: [3, {args.size}, {args.size}], layers: [Flatten: , Linear: {{out_features: 10}}]}}
data:
  images:
    path: {root}
    normalize: {{mean: {MEAN}, std: {STD}}}
{augment}  validation_split: 0
  loader: {{in_memory: false, workers: {args.workers}}}
loss: {{CrossEntropyLoss: }}
optimizer: {{SGD: {{lr: 0.1}}}}
train: {{batch_size: {args.batch_size}, device: cpu}}
""")
    prepared = prepare_data(spec, compile_spec(spec), torch.device("cpu"), say=lambda line: None)
    generator = torch.Generator().manual_seed(0)
    return _rate(lambda: prepared.train.batches(args.batch_size, True, generator), len(prepared.train), args.epochs)


def _rate(epoch, images: int, epochs: int) -> float:
    for _ in epoch():  # warm-up: workers start, files enter the page cache
        pass
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in epoch():
            pass
    return images * epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--augment", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        root = make_folder(Path(folder) / "images", args.images, args.size)
        print(f"{args.images} RGB {args.size}x{args.size} PNGs, workers {args.workers}, batch {args.batch_size}, "
              f"augment {args.augment}; cpus {os.cpu_count()}")
        best = {"hand-written": 0.0, "specnn": 0.0}
        for _ in range(args.repeat):
            best["hand-written"] = max(best["hand-written"], baseline(root, args))
            best["specnn"] = max(best["specnn"], specnn_stream(root, args))
        for way, rate in best.items():
            print(f"{way:<14}{rate:>10.0f} images/s")
        print(f"ratio hand-written/specnn {best['hand-written'] / best['specnn']:.2f}x (target 1.1x)")


if __name__ == "__main__":
    main()
