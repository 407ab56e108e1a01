"""The Karpathy-split reader (``dataset_*.json`` + image folder), its validation, and the demo set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.datasets.coco_demo import coco_demo
from baselines.datasets.karpathy import karpathy
from harness.errors import UserError
from harness.plugin_manager import PluginHost


def record(filename: str, split: str, captions: list[str], filepath: str = "", **extra) -> dict:
    return {"filepath": filepath, "filename": filename, "split": split, "sentences": [{"raw": c} for c in captions], **extra}


def write_images(root: Path, names: list[str]) -> None:
    for index, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 16), (40 * index, 90, 200 - 30 * index)).save(root / name)


@pytest.fixture
def flickr_like(tmp_path: Path) -> Path:
    """2 train + 1 restval + 1 val + 2 test images (PNG and JPEG, one in a sub-folder)."""
    images = [
        record("a.jpg", "train", ["a dog", "a brown dog"], imgid=0),
        record("b.png", "train", ["a cat"], imgid=1),
        record("c.jpg", "restval", ["a horse", "a pony", "a foal"], filepath="val2014", imgid=2),
        record("d.jpg", "val", ["a bird"], imgid=3),
        record("e.jpg", "test", ["a red car", "a car"], cocoid=42, imgid=4),
        record("f.png", "test", ["a boat"], imgid=5),
    ]
    write_images(tmp_path / "images", ["a.jpg", "b.png", "val2014/c.jpg", "d.jpg", "e.jpg", "f.png"])
    annotations = tmp_path / "dataset_flickr.json"
    annotations.write_text(json.dumps({"dataset": "flickr", "images": images}, indent=1))
    return annotations


def load(annotations: Path, split: str, **options):
    return karpathy(annotations=str(annotations), image_root=str(annotations.parent / "images"), **options).load(split)


def test_captions_keep_dataset_order_and_name_their_image(flickr_like):
    split = load(flickr_like, "test")
    assert split.captions == ("a red car", "a car", "a boat")
    np.testing.assert_array_equal(split.image_of_caption, [0, 0, 1])
    assert split.image_of_caption.dtype == np.int64
    assert split.image_ids == ("42", "5")  # cocoid when present, else imgid
    assert [p.name for p in split.image_paths] == ["e.jpg", "f.png"] and split.image_features is None


def test_restval_counts_as_train_by_default(flickr_like):
    split = load(flickr_like, "train")
    assert split.n_images == 3 and split.n_captions == 6
    assert split.image_paths[2] == flickr_like.parent / "images" / "val2014" / "c.jpg"
    np.testing.assert_array_equal(split.image_of_caption, [0, 0, 1, 2, 2, 2])


def test_restval_is_its_own_split_when_asked(flickr_like):
    dataset = karpathy(annotations=str(flickr_like), image_root=str(flickr_like.parent / "images"), restval_in_train=False)
    assert dataset.splits() == ["restval", "test", "train", "val"]
    assert dataset.load("train").n_images == 2


def test_dev_reads_val(flickr_like):
    split = load(flickr_like, "dev")
    assert split.split == "val" and split.captions == ("a bird",)


def test_name_defaults_to_the_annotation_file_stem(flickr_like):
    assert load(flickr_like, "test").dataset == "dataset_flickr"
    assert load(flickr_like, "test", name="f30k-tiny").dataset == "f30k-tiny"


def test_registered_as_karpathy(flickr_like):
    spec = PluginHost().registry.get("dataset", "karpathy")
    options = {"annotations": str(flickr_like), "image_root": str(flickr_like.parent / "images")}
    assert spec.build(options, "x.toml: datasets.0.options").load("test").n_images == 2


def test_the_demo_set_still_loads_both_splits():
    dataset = coco_demo()
    assert dataset.name == "coco-demo" and dataset.splits() == ["test", "train"]
    for split, n_images in (("train", 27), ("test", 20)):
        loaded = dataset.load(split)
        assert (loaded.n_images, loaded.n_captions) == (n_images, 5 * n_images)
        np.testing.assert_array_equal(np.bincount(loaded.image_of_caption), [5] * n_images)
        assert all(path.is_file() for path in loaded.image_paths)


def _edit(change):
    """Rewrite the annotation file's image list with `change(images)`."""

    def apply(annotations: Path) -> None:
        document = json.loads(annotations.read_text())
        change(document["images"])
        annotations.write_text(json.dumps(document, indent=1))

    return apply


def _delete_images(*names):
    return lambda annotations: [(annotations.parent / "images" / name).unlink() for name in names]


BAD_INPUT = {
    # case: (break the fixture, split to load, the problem in the message)
    "unknown split": (None, "valid", "no images in split 'valid'; splits present: test, train, val"),
    "missing image files": (
        _delete_images("e.jpg", "f.png"),
        "test",
        "2 of 2 image files of split 'test' are missing under {root}/images; first: {root}/images/e.jpg",
    ),
    "one missing image file": (_delete_images("val2014/c.jpg"), "train", "1 of 3 image files of split 'train' are missing under {root}/images; first: {root}/images/val2014/c.jpg"),
    "corrupt JSON": (lambda a: a.write_text('{"images": [\n  {"filename": "a.jpg",\n  oops}\n]}'), "test", "invalid JSON at line 3: "),
    "not an images list": (lambda a: a.write_text('{"imgs": []}'), "test", "expected a JSON object with an 'images' list"),
    "record without filename": (_edit(lambda images: images[4].pop("filename")), "test", "images[4]: missing key 'filename' (a string)"),
    "record without split": (_edit(lambda images: images[2].pop("split")), "test", "images[2]: missing key 'split' (a string)"),
    "record not an object": (_edit(lambda images: images.insert(1, "a.jpg")), "test", "images[1]: expected an object, got str"),
    "record without sentences": (_edit(lambda images: images[5].pop("sentences")), "test", "images[5] (f.png): missing key 'sentences'"),
    "sentence without raw": (_edit(lambda images: images[0]["sentences"][1].pop("raw")), "test", "images[0] (a.jpg): sentences[1] is missing key 'raw'"),
    "image with zero sentences": (_edit(lambda images: images[3].update(sentences=[])), "test", "images[3] (d.jpg): no sentences; every image needs at least one caption"),
    "missing annotation file": (lambda a: a.unlink(), "test", "annotation file not found"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_naming_the_file_and_the_problem(flickr_like, case):
    breaks, split, problem = BAD_INPUT[case]
    if breaks is not None:
        breaks(flickr_like)
    with pytest.raises(UserError) as caught:
        load(flickr_like, split)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{flickr_like}: "), message
    assert problem.format(root=flickr_like.parent) in message, message
