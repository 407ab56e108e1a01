"""`dense-text`: dense descriptions from a JSON-lines file, from the dataset, or the captions stand-in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import UserError
from harness.interfaces import RetrievalSplit
from harness.plugin_manager import PluginHost


@pytest.fixture(scope="module")
def dense_text():
    """The registered factory: ``dense_text(**options)`` builds through the real registry."""
    spec = PluginHost().registry.get("text-source", "dense-text")
    return lambda **options: spec.build(options, "test")


def split(image_texts=None) -> RetrievalSplit:
    return RetrievalSplit(
        dataset="toy",
        split="train",
        image_ids=("11", "22"),
        captions=("A dog runs", "a brown dog on grass.", "Two cats", "cats sleeping!"),
        image_of_caption=np.array([0, 0, 1, 1]),
        image_texts=image_texts or {},
    )


def write_lines(path, objects):
    path.write_text("".join(json.dumps(obj) + "\n" for obj in objects))
    return path


def test_without_dense_text_the_stand_in_joins_each_images_captions_as_sentences(dense_text):
    assert dense_text().image_texts(split()) == ["A dog runs. a brown dog on grass.", "Two cats. cats sleeping!"]


def test_the_public_codes_layout_is_read_in_image_order(dense_text, tmp_path):
    write_lines(tmp_path / "toy_train.jsonl", [{"text": "dense one"}, {"text": "dense two"}])
    assert dense_text(path=str(tmp_path / "toy_{split}.jsonl")).image_texts(split()) == ["dense one", "dense two"]


def test_lines_with_image_ids_are_matched_by_id_in_any_order(dense_text, tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"image_id": 22, "text": "cats"}, {"image_id": 99, "text": "other"}, {"image_id": "11", "text": "dog"}])
    assert dense_text(path=str(path)).image_texts(split()) == ["dog", "cats"]


def test_a_file_with_the_wrong_number_of_lines_is_refused_naming_the_file(dense_text, tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"text": "only one"}])
    with pytest.raises(UserError, match=r"d.jsonl: 1 texts for the 2 images of split 'train'"):
        dense_text(path=str(path)).image_texts(split())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a"}\nnot json\n', r"d.jsonl:2: invalid JSON"),
        ('{"text": "a"}\n{"caption": "b"}\n', r"d.jsonl:2: expected an object with a string 'text'"),
        ('{"image_id": 11, "text": "a"}\n{"text": "b"}\n', r"d.jsonl:2: no 'image_id'"),
        ('{"image_id": 11, "text": "a"}\n{"image_id": 11, "text": "b"}\n', r"d.jsonl:2: image '11' has a second text"),
        ('{"image_id": 11, "text": "a"}\n', r"no text for 1 of the 2 images of split 'train'; first: '22'"),
    ],
)
def test_malformed_files_are_refused_naming_the_line(dense_text, tmp_path, content, message):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        dense_text(path=str(path)).image_texts(split())


def test_a_missing_file_is_refused(dense_text, tmp_path):
    with pytest.raises(UserError, match="no such dense-text file"):
        dense_text(path=str(tmp_path / "absent.jsonl")).image_texts(split())


def test_dense_text_carried_by_the_dataset_is_used(dense_text):
    carried = split({"dense": ("the dataset's dog", "the dataset's cats")})
    assert dense_text().image_texts(carried) == ["the dataset's dog", "the dataset's cats"]


def test_max_words_cuts_every_text(dense_text):
    assert dense_text(max_words=2).image_texts(split()) == ["A dog", "Two cats."]


def test_fallback_error_refuses_to_run_on_the_stand_in(dense_text):
    with pytest.raises(UserError, match="carries no 'dense' text"):
        dense_text(fallback="error").image_texts(split())
