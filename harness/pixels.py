"""Images as a pixel-reading encoder wants them: decoded, augmented, resized and normalised.

torchvision does not import beside the pinned CPU torch, so its two standard pipelines are
written here in PIL and numpy (`harness.interfaces.PixelSpec` says which one an encoder wants).
Every random draw comes from a generator the caller seeds per image and epoch, so an image's
augmentation does not depend on which loader worker, or which process of a data-parallel job,
decodes it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import UserError
from harness.interfaces import PixelSpec

RATIO_RANGE = (3 / 4, 4 / 3)
"""Aspect ratios of the ``resized`` training crop (torchvision's RandomResizedCrop)."""


def open_rgb(path: Path, draft: int | None = None) -> Image.Image:
    """The image at `path` in RGB. `draft` lets a JPEG decode at the smallest power-of-two
    reduction whose short side is still ≥ draft (several times faster on large photos).

    Raises:
        UserError: the file is missing, not an image, or truncated (names the file).
    """
    try:
        with Image.open(path) as image:
            if draft is not None:
                image.draft("RGB", (draft, draft))
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot read image ({str(exc) or type(exc).__name__})") from exc


def training_pixels(path: Path, spec: PixelSpec, rng: np.random.Generator) -> np.ndarray:
    """A randomly cropped and flipped image: float32 [3, size, size], normalised."""
    image = open_rgb(path)
    box = _random_box(image.size, spec, rng)
    resized = image.resize((spec.size, spec.size), Image.Resampling.BILINEAR, box=box)
    if rng.random() < 0.5:
        resized = resized.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _normalised(resized, spec)


def eval_pixels(path: Path, spec: PixelSpec) -> np.ndarray:
    """The deterministic test view: float32 [3, size, size], normalised.

    ``resized``: bicubic resize of the short side to size, centre crop. ``sides``: the whole
    image resized to size × size.
    """
    if spec.crop == "sides":
        image = open_rgb(path, draft=spec.size)
        return _normalised(image.resize((spec.size, spec.size), Image.Resampling.BILINEAR), spec)
    image = open_rgb(path, draft=spec.size)
    width, height = image.size
    scale = spec.size / min(width, height)
    new_width, new_height = max(spec.size, round(width * scale)), max(spec.size, round(height * scale))
    left, top = (new_width - spec.size) // 2, (new_height - spec.size) // 2
    resized = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    return _normalised(resized.crop((left, top, left + spec.size, top + spec.size)), spec)


def _random_box(size: tuple[int, int], spec: PixelSpec, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the training crop in the source image."""
    width, height = size
    low, high = spec.scale
    if spec.crop == "sides":
        fraction = rng.uniform(low, high)
        crop_width, crop_height = max(1, int(width * fraction)), max(1, int(height * fraction))
    else:
        crop_width, crop_height = _area_crop(width, height, low, high, rng)
    left = rng.integers(0, width - crop_width + 1)
    top = rng.integers(0, height - crop_height + 1)
    return float(left), float(top), float(left + crop_width), float(top + crop_height)


def _area_crop(width: int, height: int, low: float, high: float, rng: np.random.Generator) -> tuple[int, int]:
    """torchvision's RandomResizedCrop size: up to ten tries at an area in [low, high] of the
    image and a log-uniform aspect ratio; failing those, the centre-most crop of clamped ratio."""
    area = width * height
    log_ratio = (math.log(RATIO_RANGE[0]), math.log(RATIO_RANGE[1]))
    for _ in range(10):
        target = area * rng.uniform(low, high)
        ratio = math.exp(rng.uniform(*log_ratio))
        crop_width, crop_height = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            return crop_width, crop_height
    ratio = width / height
    if ratio < RATIO_RANGE[0]:
        return width, round(width / RATIO_RANGE[0])
    if ratio > RATIO_RANGE[1]:
        return round(height * RATIO_RANGE[1]), height
    return width, height


def _normalised(image: Image.Image, spec: PixelSpec) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # [size, size, 3]
    pixels = (pixels - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))
