"""Specification of the PIL/numpy preprocessing for EfficientNet-Lite."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.backbones.image_preprocessing import load_image_batch
from harness.errors import UserError


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Save uint8 [H, W, 3] pixels as a lossless PNG."""
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def solid(width: int, height: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (height, width, 3)).copy()


def test_batch_is_float32_nchw_at_224_whatever_the_input_size(tmp_path: Path) -> None:
    paths = [
        write_image(tmp_path / "wide.png", solid(300, 200, (10, 20, 30))),
        write_image(tmp_path / "tall.png", solid(90, 160, (10, 20, 30))),
    ]
    batch = load_image_batch(paths)
    assert batch.shape == (2, 3, 224, 224)
    assert batch.dtype == np.float32


def test_pixels_are_normalised_tflite_style(tmp_path: Path) -> None:
    black = write_image(tmp_path / "black.png", solid(224, 224, (0, 0, 0)))
    white = write_image(tmp_path / "white.png", solid(224, 224, (255, 255, 255)))
    batch = load_image_batch([black, white])
    np.testing.assert_array_equal(batch[0], np.full((3, 224, 224), -127.0 / 128.0, np.float32))
    np.testing.assert_array_equal(batch[1], np.ones((3, 224, 224), np.float32))


def test_channels_come_out_in_rgb_order(tmp_path: Path) -> None:
    path = write_image(tmp_path / "red.png", solid(224, 224, (255, 0, 0)))
    channel_means = load_image_batch([path])[0].mean(axis=(1, 2))
    np.testing.assert_allclose(channel_means, [1.0, -127.0 / 128.0, -127.0 / 128.0])


def test_greyscale_image_is_converted_to_three_channels(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (50, 40), color=127).save(path)
    np.testing.assert_array_equal(load_image_batch([path]), np.zeros((1, 3, 224, 224), np.float32))


@pytest.mark.parametrize("orientation", ["wide", "tall"])
def test_non_square_image_keeps_its_centre(tmp_path: Path, orientation: str) -> None:
    # 600 x 300: red in the outer 100 px at each end, green between; after the short side is
    # resized to 224 the red ends are 75 px wide and the centre crop drops 112 px per side.
    pixels = solid(600, 300, (0, 255, 0))
    pixels[:, :100] = pixels[:, -100:] = (255, 0, 0)
    if orientation == "tall":
        pixels = pixels.transpose(1, 0, 2)
    image = load_image_batch([write_image(tmp_path / "stripes.png", pixels)])[0]
    np.testing.assert_allclose(image[0], -127.0 / 128.0, atol=1e-6)  # no red left
    np.testing.assert_allclose(image[1], 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "content",
    [b"this is not an image", None],
    ids=["garbage-bytes", "truncated-jpeg"],
)
def test_unreadable_image_is_a_user_error_naming_the_file(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "broken.jpg"
    if content is None:
        Image.new("RGB", (64, 64), color=(200, 100, 50)).save(path, format="JPEG")
        content = path.read_bytes()[:300]
    path.write_bytes(content)
    with pytest.raises(UserError, match=f"^{re.escape(str(path))}: cannot read image"):
        load_image_batch([path])


def test_missing_file_is_a_user_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.jpg"
    with pytest.raises(UserError, match=f"^{re.escape(str(path))}: cannot read image"):
        load_image_batch([path])
