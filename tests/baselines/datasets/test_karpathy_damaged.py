"""Damaged Karpathy files, fuzzed: every one is a one-line `UserError` naming the file and the
position (``images[i]``, ``sentences[j]``, the key, the line), never a traceback or a loaded split.

Each strategy draws a small valid document with its image files and one damage of its kind (see
`damage`); the split is loaded and its image files checked as the driver's preflight does.
"""

from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baselines.datasets.karpathy import karpathy
from harness.errors import UserError
from harness.image_files import check_image_files
from tests.baselines.datasets.damage import (
    FUZZ,
    IMAGES,
    INVALID_UTF8,
    Expected,
    assert_refused,
    blanks,
    broken_image,
    captions,
    cut_to,
    duplicated,
    edit_document,
    karpathy_documents,
    loaded_indices,
    missing_image,
    replaced_by,
    truncate_document,
    undecodable_document,
    with_record,
    with_sentence,
    with_value,
    without_images,
    without_key,
    write_karpathy,
)

NOT_A_STRING = (
    st.integers() | st.floats() | st.booleans() | st.none()
    | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
NOT_AN_ID = st.floats() | st.booleans() | st.none() | st.just("") | st.lists(st.integers(), max_size=2) | st.just({})
NOT_AN_OBJECT = st.text(max_size=5) | st.integers() | st.lists(st.integers(), max_size=2) | st.none()
NOT_A_LIST = st.text(max_size=5) | st.integers() | st.just({"raw": "a dog"}) | st.none()
CONTROL_CHARACTERS = "\n\r\t\x00\x1b\x7f\x85\u2028"


def load_checked(annotations: Path) -> None:
    """What preflight does with the dataset: load the test split, then check its image files."""
    split = karpathy(annotations=str(annotations), image_root=str(annotations.parent / IMAGES)).load("test")
    check_image_files(split.image_paths, "karpathy:test")


def assert_karpathy_refused(document, damage) -> str:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        annotations = write_karpathy(root, document)
        expected: Expected = damage(root)
        return assert_refused(lambda: load_checked(annotations), root, expected)


def a_record(draw, document) -> int:
    return draw(st.integers(0, len(document["images"]) - 1))


def a_sentence(draw, document, index) -> int:
    return draw(st.integers(0, len(document["images"][index]["sentences"]) - 1))


@st.composite
def missing_key(draw):
    document = draw(karpathy_documents())
    index = a_record(draw, document)
    key = draw(st.sampled_from(["filename", "split", "sentences", "raw", "images"]))
    if key == "images":
        change = without_images
    elif key == "raw":
        change = partial(without_key, index, "raw", a_sentence(draw, document, index))
    else:
        change = partial(without_key, index, key, None)
    return document, partial(edit_document, change=change)


@st.composite
def wrong_type(draw):
    document = draw(karpathy_documents())
    index = a_record(draw, document)
    where = draw(st.sampled_from(["filename", "split", "filepath", "cocoid", "imgid", "sentences", "sentence", "raw", "record"]))
    if where == "record":
        change = partial(with_record, index, draw(NOT_AN_OBJECT))
    elif where == "sentence":
        change = partial(with_sentence, index, a_sentence(draw, document, index), draw(NOT_AN_OBJECT))
    elif where == "raw":
        change = partial(with_value, index, "raw", a_sentence(draw, document, index), draw(NOT_A_STRING))
    elif where == "sentences":
        change = partial(with_value, index, "sentences", None, draw(NOT_A_LIST))
    else:
        change = partial(with_value, index, where, None, draw(NOT_AN_ID if where.endswith("id") else NOT_A_STRING))
    return document, partial(edit_document, change=change)


@st.composite
def duplicate(draw):
    document = draw(karpathy_documents().filter(lambda document: len(document["images"]) > 1))
    copy = draw(st.integers(1, len(document["images"]) - 1))
    return document, partial(edit_document, change=partial(duplicated, draw(st.integers(0, copy - 1)), copy))


@st.composite
def empty_or_unprintable(draw):
    """A caption of white space only, or a name (file name, folder, split) holding a control character."""
    document = draw(karpathy_documents())
    index = a_record(draw, document)
    if draw(st.booleans()):
        change = partial(with_value, index, "raw", a_sentence(draw, document, index), draw(blanks))
    else:
        name, where = draw(captions), draw(st.integers(0, 12))
        value = name[:where] + draw(st.sampled_from(CONTROL_CHARACTERS)) + name[where:]
        change = partial(with_value, index, draw(st.sampled_from(["filename", "filepath", "split"])), None, value)
    return document, partial(edit_document, change=change)


@st.composite
def missing_file(draw):
    document = draw(karpathy_documents())
    return document, partial(missing_image, index=draw(st.sampled_from(loaded_indices(document))))


@st.composite
def broken_file(draw):
    """A test image that is empty, not an image at all, or cut short."""
    document = draw(karpathy_documents())
    content = draw(
        st.just(partial(replaced_by, b""))
        | st.sampled_from([b"<html>404 Not Found</html>\n", b'{"error": "quota"}', b"GIF89a", b"\x89PNG\r\n\x1a\n"]).map(
            lambda data: partial(replaced_by, data)
        )
        | st.binary(min_size=1, max_size=300).map(lambda data: partial(replaced_by, data))
        | st.integers(0, 2000).map(lambda keep: partial(cut_to, keep))
    )
    return document, partial(broken_image, index=draw(st.sampled_from(loaded_indices(document))), content=content)


@st.composite
def damaged_text(draw):
    """The annotation file cut short, or bytes in it that are not UTF-8."""
    document = draw(karpathy_documents())
    text = json.dumps(document, indent=1, ensure_ascii=False)
    if draw(st.booleans()):
        return document, partial(truncate_document, keep=draw(st.integers(0, len(text) - 1)))
    number, column = draw(st.integers(1, text.count("\n") + 1)), draw(st.integers(0, 40))
    return document, partial(undecodable_document, number=number, column=column, data=draw(st.sampled_from(INVALID_UTF8)))


@FUZZ
@given(karpathy_documents())
def test_an_undamaged_document_loads(document):
    """The control: without the damage, every drawn document loads and its images pass the check."""
    with tempfile.TemporaryDirectory() as folder:
        load_checked(write_karpathy(Path(folder), document))


@FUZZ
@given(missing_key())
def test_a_missing_key_names_the_record_and_the_key(case):
    assert_karpathy_refused(*case)


@FUZZ
@given(wrong_type())
def test_a_value_of_the_wrong_type_names_the_record_and_the_key(case):
    assert_karpathy_refused(*case)


@FUZZ
@given(duplicate())
def test_one_image_listed_twice_names_both_records(case):
    assert_karpathy_refused(*case)


@FUZZ
@given(empty_or_unprintable())
def test_an_empty_caption_or_a_name_with_a_control_character_is_named(case):
    assert_karpathy_refused(*case)


@FUZZ
@given(missing_file())
def test_a_missing_image_file_names_the_record_and_the_file(case):
    assert_karpathy_refused(*case)


@FUZZ
@given(broken_file())
def test_an_empty_foreign_or_cut_image_file_is_named(case):
    assert_karpathy_refused(*case)


@FUZZ
@given(damaged_text())
def test_a_cut_or_undecodable_annotation_file_names_the_line(case):
    assert_karpathy_refused(*case)


def test_an_annotation_path_that_is_a_folder_is_one_line(tmp_path):
    folder = tmp_path / "dataset_coco.json"
    folder.mkdir()
    with pytest.raises(UserError, match=f"^{folder}: cannot be read"):
        load_checked(folder)
