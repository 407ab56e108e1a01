"""Image preprocessing for the TF-Lite-trained EfficientNet-Lite weights, in PIL and numpy only.

torchvision does not import beside the pinned CPU torch (``RuntimeError: operator torchvision::nms
does not exist``), so the usual ``transforms.Compose`` pipeline is rebuilt here: RGB, bicubic
resize of the short side, centre crop, then the TF-Lite normalisation ``(x - 127) / 128`` the Lite
checkpoints were trained with (not the ImageNet mean/std).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from harness.errors import UserError

PREPROCESSING_VERSION = "rgb/bicubic-short-side/centre-crop/tflite-norm/v1"
"""Identity of this pipeline for feature-cache keys: change it whenever the pixels change."""


def load_image(path: Path, size: int = 224) -> np.ndarray:
    """One image as the network input: float32 [3, size, size], values in [-0.9921875, 1.0].

    The short side is resized to `size` (bicubic), then the centre `size` x `size` square is
    kept, so a non-square photo loses its edges rather than being squashed.

    Raises:
        UserError: the file is missing, not an image, or truncated.
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot read image ({str(exc) or type(exc).__name__})") from exc
    width, height = rgb.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    resized = rgb.resize((new_width, new_height), Image.Resampling.BICUBIC)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    cropped = resized.crop((left, top, left + size, top + size))
    pixels = np.asarray(cropped, dtype=np.float32)  # [size, size, 3], 0..255
    return ((pixels - 127.0) / 128.0).transpose(2, 0, 1)


def load_image_batch(paths: Sequence[Path], size: int = 224) -> np.ndarray:
    """Images stacked for the network: float32 [N, 3, size, size] (see `load_image`)."""
    batch = np.empty((len(paths), 3, size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        batch[i] = load_image(path, size)
    return batch
