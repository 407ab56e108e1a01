"""COCO caption ids matched from a captions_*.json file, for the Karpathy and precomp readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from baselines.datasets.precomp import precomp
from harness.errors import UserError
from tests.baselines.datasets.test_karpathy import load, record, write_images


def captions_file(path: Path, annotations: list[tuple[int, int, str]]) -> Path:
    """A COCO captions file of (annotation id, image id, caption)."""
    path.write_text(json.dumps({"annotations": [{"id": a, "image_id": i, "caption": c} for a, i, c in annotations]}))
    return path


@pytest.fixture
def coco_like(tmp_path: Path) -> Path:
    """Two test images with cocoids; one caption repeated on an image."""
    images = [
        record("a.jpg", "test", ["A dog on a sofa.", "a dog", "a dog"], cocoid=11),
        record("b.jpg", "test", ["Two cats,  sleeping"], cocoid=12),
    ]
    write_images(tmp_path / "images", ["a.jpg", "b.jpg"])
    annotations = tmp_path / "dataset_coco.json"
    annotations.write_text(json.dumps({"images": images}))
    return annotations


def test_karpathy_captions_take_the_ids_of_their_image_annotations(coco_like, tmp_path):
    captions = captions_file(
        tmp_path / "captions_val2014.json",
        [(900, 12, "two cats sleeping"), (501, 11, "a dog."), (502, 11, "A dog on a sofa"), (503, 11, "A DOG"), (700, 13, "a dog")],
    )
    split = load(coco_like, "test", captions_json=str(captions))
    assert split.caption_ids == ("502", "501", "503", "900")  # text normalised; repeats take the image's matches in order
    assert load(coco_like, "test").caption_ids is None


def test_training_splits_are_not_matched(tmp_path):
    write_images(tmp_path / "images", ["a.jpg"])
    annotations = tmp_path / "dataset_coco.json"
    annotations.write_text(json.dumps({"images": [record("a.jpg", "restval", ["a dog"], cocoid=11)]}))
    captions = captions_file(tmp_path / "captions_val2014.json", [])  # train2014's images are not in val2014's file
    assert load(annotations, "train", captions_json=str(captions)).caption_ids is None


def test_a_caption_without_a_matching_annotation_is_named(coco_like, tmp_path):
    captions = captions_file(tmp_path / "captions.json", [(501, 11, "a dog"), (502, 11, "a dog on a sofa"), (900, 12, "two cats sleeping")])
    with pytest.raises(UserError, match=r"captions.json: no unused caption of image 11 matches dataset_coco:test caption 'a dog'$"):
        load(coco_like, "test", captions_json=str(captions))


def test_a_file_that_is_not_a_coco_captions_file_is_refused(coco_like, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"annotations": [{"id": 1, "image_id": "11", "caption": "a dog"}]}))
    with pytest.raises(UserError, match=r"broken.json: annotations\[0\]: expected an object with integer 'id' and 'image_id'"):
        load(coco_like, "test", captions_json=str(broken))


def test_precomp_matches_caption_ids_through_its_image_ids(tmp_path):
    np.save(tmp_path / "test_ims.npy", np.zeros((2, 3, 4), np.float32))
    (tmp_path / "test_caps.txt").write_text("a dog .\na dog on a sofa .\ntwo cats sleeping .\na cat .\n")
    captions = captions_file(tmp_path / "captions.json", [(1, 11, "A dog on a sofa."), (2, 11, "A dog."), (3, 12, "A cat."), (4, 12, "Two cats sleeping.")])
    (tmp_path / "test_ids.txt").write_text("11\n11\n12\n12\n")  # one id per caption
    split = precomp(path=str(tmp_path), captions_json=str(captions)).load("test")
    assert split.image_ids == ("11", "12") and split.caption_ids == ("2", "1", "4", "3")
    (tmp_path / "test_ids.txt").unlink()
    with pytest.raises(UserError, match=r"test_ids.txt: not found; option captions_json matches captions by COCO image id"):
        precomp(path=str(tmp_path), captions_json=str(captions)).load("test")
