"""Image folders: ``root/<class>/*.png|jpg`` read with Pillow (``pip install "specnn[images]"``).

Class names are the subfolder names, sorted (index i is class i), kept for predict. Every image
is decoded the same way wherever it is decoded (in memory at start-up, in a DataLoader worker
when streamed, or by predict): converted to grayscale or RGB, resized to ``size`` when one is
given, scaled to [0, 1] and normalized per channel with a mean and standard deviation computed
on the training split (or given in the spec). Augmentation (``augment.py``) applies to training
batches only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from specnn.catalog.sources import ImageNormalize, ImagesArgs
from specnn.errors.texts import needs_extra
from specnn.runtime.data.csv_table import data_error
from specnn.runtime.data.sources import Arrays, resolve_path

__all__ = ["IMAGE_SUFFIXES", "ImageFiles", "ImageSettings", "list_images", "load_images", "decode", "normalize",
           "channel_stats", "image_files_in"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass
class ImageSettings:
    """How a run turns an image file into a model input; stored in ``preprocess.json`` (``image``)."""

    size: tuple[int, int]
    channels: int
    resize: bool
    mean: list[float]
    std: list[float]

    def to_json(self) -> dict[str, Any]:
        return {"size": list(self.size), "channels": self.channels, "resize": self.resize, "mean": self.mean,
                "std": self.std}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ImageSettings":
        return cls(tuple(data["size"]), int(data["channels"]), bool(data["resize"]), list(data["mean"]),
                   list(data["std"]))

    @property
    def black(self) -> list[float]:
        """A black pixel, normalized (what crop padding fills with)."""
        return [(0.0 - m) / s for m, s in zip(self.mean, self.std)]


@dataclass
class ImageFiles:
    """Image files and their class indices: a data set streamed from disk rather than held in memory."""

    files: list[Path]
    targets: np.ndarray
    classes: Optional[list[str]] = None

    def __len__(self) -> int:
        return len(self.files)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        message, hint = needs_extra("the images data source", "images")
        raise data_error("images", message, code="missing-extra", hint=hint) from None
    return Image


def list_images(args: ImagesArgs, base_dir: Path) -> tuple[ImageFiles, tuple[int, int]]:
    """Every image under ``root/<class>/``, sorted, with the size they are decoded at.

    Raises:
        DataError: the folder is missing or holds no class folder with images.
    """
    root = resolve_path(args.path, base_dir)
    if not root.is_dir():
        raise data_error(root, "image folder not found" if not root.exists() else "not a folder", code="file",
                         hint="give a folder with one subfolder of images per class")
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise data_error(root, f"cannot read the folder: {e.strerror or e}", code="file") from None
    files, labels, classes = [], [], []
    for folder in folders:
        found = image_files_in(folder)
        if found:
            labels += [len(classes)] * len(found)
            classes.append(folder.name)
            files += found
    if len(classes) < 1:
        raise data_error(root, f"no class folders with images ({', '.join(IMAGE_SUFFIXES)}) in it", code="empty",
                         hint="lay the images out as root/<class name>/<image>")
    size = tuple(args.size) if args.size is not None else _size_of(files[0])
    return ImageFiles(files, np.array(labels, dtype=np.int64), classes), size


def image_files_in(folder: Path) -> list[Path]:
    """The images directly in ``folder``, sorted by name."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as e:
        raise data_error(folder, f"cannot read the folder: {e.strerror or e}", code="file") from None


def _size_of(path: Path) -> tuple[int, int]:
    image = _pillow()
    try:
        with image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, ValueError) as e:
        raise data_error(path, f"cannot read the image: {e}", code="file") from None


def decode(path: Path, size: Sequence[int], channels: int, resize: bool) -> np.ndarray:
    """One image as uint8 (channels, height, width).

    Raises:
        DataError: not an image Pillow reads; a size that differs when the spec gives none.
    """
    image = _pillow()
    try:
        with image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size[1], size[0]):
                if not resize:
                    raise data_error(path, f"the image is {im.size[1]}x{im.size[0]} (height x width), the first "
                                           f"one is {size[0]}x{size[1]}", code="image-size",
                                     hint=f"set images.size: [{size[0]}, {size[1]}] to resize them all")
                im = im.resize((size[1], size[0]), image.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise data_error(path, f"cannot read the image: {e}", code="file") from None
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def normalize(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 images (B, C, H, W) as float32 ``(x / 255 - mean) / std`` per channel.

    Each of the 256 values of a channel is computed once (in float32) and looked up, so one image
    gives the same numbers alone in a DataLoader worker as in a whole in-memory batch, cheaply.
    """
    levels = np.arange(256, dtype=np.float32) / np.float32(255)
    table = (levels[None, :] - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    out = np.empty(pixels.shape, np.float32)
    for c in range(pixels.shape[1]):
        np.take(table[c], pixels[:, c], out=out[:, c])
    return out


def channel_stats(images: Iterable[np.ndarray], channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of pixels in [0, 1], summed image by image in float64."""
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for pixels in images:
        flat = pixels.reshape(channels, -1).astype(np.float64) / 255.0
        total += flat.sum(axis=1)
        squares += (flat * flat).sum(axis=1)
        count += flat.shape[1]
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean * mean, 0.0))
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


def settings_for(args: ImagesArgs, size: tuple[int, int], stats: Optional[tuple[list[float], list[float]]]) -> ImageSettings:
    """The spec's image settings, with the training split's statistics for ``normalize: auto``."""
    if isinstance(args.normalize, ImageNormalize):
        mean, std = list(args.normalize.mean), list(args.normalize.std)
    elif args.normalize == "none" or stats is None:
        mean, std = [0.0] * args.channels, [1.0] * args.channels
    else:
        mean, std = stats
    return ImageSettings(size, args.channels, args.size is not None, mean, std)


def load_images(args: ImagesArgs, base_dir: Path, seed: int = 0) -> Arrays:
    """Every image decoded into memory: uint8 (N, C, H, W) features and class-index targets."""
    listing, size = list_images(args, base_dir)
    pixels = np.empty((len(listing), args.channels, *size), np.uint8)
    for i, path in enumerate(listing.files):
        pixels[i] = decode(path, size, args.channels, args.size is not None)
    return Arrays(pixels, listing.targets, listing.classes)
