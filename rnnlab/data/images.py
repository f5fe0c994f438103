"""Images for the captioner: decoded, cropped to their centre square, resized to 64 x 64, normalised.

pixels = load_image("dog.jpg")                 # (3, 64, 64) uint8
x = normalise(np.stack([pixels]), mean, std)   # (1, 3, 64, 64) float, per-channel statistics
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rnnlab.data.text import check_regular_file
from rnnlab.errors import DataError
from rnnlab.extras import require

IMAGE_SIZE = 64
MAX_PIXELS = 50_000_000  # a header claiming more (a decompression bomb) is refused before decoding


def load_image(path: str | Path) -> np.ndarray:
    """(3, 64, 64) uint8: the centre square of the image, resized."""
    Image = require("PIL.Image", "vision")  # noqa: N806
    UnidentifiedImageError = Image.UnidentifiedImageError  # noqa: N806

    check_regular_file(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(f"{path}: {im.width} x {im.height} pixels, more than rnnlab decodes ({MAX_PIXELS:,})")
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            im = im.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
            im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def pixel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images (N, 3, H, W), in [0, 1]; a channel
    that never varies gets std 1 (nothing to scale)."""
    pixels = images.astype(np.float32) / 255.0
    std = pixels.std((0, 2, 3))
    return pixels.mean((0, 2, 3)), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def normalise(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).float() / 255.0
    return (x - torch.from_numpy(mean)[:, None, None]) / torch.from_numpy(std)[:, None, None]


def grid_statistics(images: np.ndarray) -> np.ndarray:
    """(N, 96): per-channel means and standard deviations over a 4 x 4 grid (a crude image descriptor)."""
    x = images.astype(np.float32).reshape(len(images), 3, 4, IMAGE_SIZE // 4, 4, IMAGE_SIZE // 4)
    return np.concatenate([x.mean((3, 5)).reshape(len(images), -1), x.std((3, 5)).reshape(len(images), -1)], 1)
