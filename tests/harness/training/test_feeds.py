"""Image feeds: decoded, augmented pixels for encoders that read them, features for the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import UserError
from harness.interfaces import PixelSpec
from harness.pixels import eval_pixels, training_pixels
from harness.training.feeds import PIXELS, FeatureFeed, PixelFeed, as_feed

DEMO_IMAGES = sorted((Path(__file__).resolve().parents[3] / "baselines" / "datasets" / "coco_demo" / "images").glob("*.jpg"))
CPU = torch.device("cpu")


def all_batches(feed, batches, train=True, epoch=0):
    return [inputs[PIXELS] for inputs in feed.batches(batches, CPU, train=train, epoch=epoch)]


@pytest.mark.parametrize("crop", ["resized", "sides"])
def test_views_have_the_encoders_size_and_normalisation(crop):
    spec = PixelSpec(size=40, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop=crop, scale=(0.3, 1.0))
    view = eval_pixels(DEMO_IMAGES[0], spec)
    assert view.shape == (3, 40, 40) and view.dtype == np.float32
    assert view.min() >= (0 - 0.5) / 0.25 and view.max() <= (1 - 0.5) / 0.25
    crops = [training_pixels(DEMO_IMAGES[0], spec, np.random.default_rng(seed)) for seed in range(4)]
    assert all(c.shape == (3, 40, 40) for c in crops)
    assert len({c.tobytes() for c in crops}) == 4, "each draw crops differently"
    assert np.array_equal(eval_pixels(DEMO_IMAGES[0], spec), view), "the test view is deterministic"


def test_the_centre_crop_keeps_the_aspect_and_sides_squash_the_whole_image(tmp_path):
    from PIL import Image

    half = np.zeros((20, 40, 3), np.uint8)
    half[:, :10] = 255  # a white left quarter the centre crop cuts away
    Image.fromarray(half).save(tmp_path / "wide.png")
    centre = eval_pixels(tmp_path / "wide.png", PixelSpec(size=20, mean=(0, 0, 0), std=(1, 1, 1)))
    whole = eval_pixels(tmp_path / "wide.png", PixelSpec(size=20, mean=(0, 0, 0), std=(1, 1, 1), crop="sides"))
    assert centre[:, :, :3].max() < 0.1, "the centre 20 x 20 square of the 20 x 40 image misses the white quarter"
    assert whole[:, :, :3].min() > 0.9, "the squashed whole image keeps it"


def test_augmentation_does_not_depend_on_the_number_of_workers():
    spec = PixelSpec(size=32)
    batches = [torch.tensor([0, 3, 1]), torch.tensor([2, 0])]
    alone = all_batches(PixelFeed(DEMO_IMAGES[:4], spec, seed=7, workers=0), batches)
    pooled = all_batches(PixelFeed(DEMO_IMAGES[:4], spec, seed=7, workers=2), batches)
    assert [b.shape for b in alone] == [(3, 3, 32, 32), (2, 3, 32, 32)]
    assert all(torch.equal(a, b) for a, b in zip(alone, pooled))
    next_epoch = all_batches(PixelFeed(DEMO_IMAGES[:4], spec, seed=7), batches, epoch=1)
    assert not torch.equal(next_epoch[0], alone[0]), "a new epoch draws new crops"
    assert not torch.equal(alone[1][1], alone[0][0]), "image 0 twice in an epoch: two crops"


def test_an_unreadable_image_in_a_worker_is_one_line(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    feed = PixelFeed([DEMO_IMAGES[0], broken], PixelSpec(size=16), workers=1)
    with pytest.raises(UserError) as error:
        all_batches(feed, [torch.tensor([0, 1])], train=False)
    assert str(error.value).startswith(f"{broken}: cannot read image") and "\n" not in str(error.value)


def test_features_pass_through_a_feature_feed():
    features = {"pooled": np.arange(12, dtype=np.float16).reshape(4, 3)}
    feed = as_feed(features)
    assert isinstance(feed, FeatureFeed) and len(feed) == 4 and as_feed(feed) is feed
    (rows,) = list(feed.batches([torch.tensor([2, 0])], CPU, train=True))
    assert rows["pooled"].dtype == torch.float32 and rows["pooled"].tolist() == [[6, 7, 8], [0, 1, 2]]
