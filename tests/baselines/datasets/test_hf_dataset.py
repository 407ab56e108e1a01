"""The ``hf-dataset`` reader, on Hugging Face datasets built and saved inside the tests (offline)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.datasets.hf_dataset import hf_dataset
from harness.errors import UserError
from harness.plugin_manager import PluginHost
from tests.helpers import itr_in_process

datasets = pytest.importorskip(
    "datasets", reason="the hf extra (pip install 'itr-harness[hf]')"
)

COLOURS = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]


def pictures() -> list[Image.Image]:
    return [Image.new("RGB", (10, 6), colour) for colour in COLOURS]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DatasetDict saved with save_to_disk: train (2 rows, one caption each, as strings) and
    test (2 rows, a list of captions each), with an id column."""
    images = pictures()
    table = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"image": images[:2], "text": ["red", "green"], "id": ["r", "g"]}
            ),
            "test": datasets.Dataset.from_dict(
                {
                    "image": images[2:],
                    "text": [["blue", "a blue one"], ["yellow"]],
                    "id": ["b", "y"],
                }
            ),
        }
    )
    folder = tmp_path_factory.mktemp("hf") / "squares"
    table.save_to_disk(str(folder))
    return folder


@pytest.fixture(scope="module")
def one_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One saved table whose ``split`` column says train / test (the nlphuji/flickr30k layout)."""
    table = datasets.Dataset.from_dict(
        {
            "image": pictures(),
            "caption": [["red"], ["green"], ["blue"], ["yellow"]],
            "split": ["train", "test", "train", "test"],
        }
    )
    folder = tmp_path_factory.mktemp("hf") / "flickr-like"
    table.save_to_disk(str(folder))
    return folder


def open_dataset(folder: Path, tmp_path: Path, **options):
    return hf_dataset(path=str(folder), image_store=str(tmp_path / "store"), **options)


def test_a_saved_dataset_reads_its_splits_and_captions(saved, tmp_path):
    dataset = open_dataset(saved, tmp_path, caption_column="text", id_column="id")
    assert dataset.name == "squares" and dataset.splits() == ["train", "test"]
    split = dataset.load("test")
    assert split.image_ids == ("b", "y") and split.captions == (
        "blue",
        "a blue one",
        "yellow",
    )
    np.testing.assert_array_equal(split.image_of_caption, [0, 0, 1])
    assert dataset.load("train").captions == ("red", "green")


def test_images_are_decoded_by_pil_from_the_kept_files(saved, tmp_path):
    paths = (
        open_dataset(saved, tmp_path, caption_column="text").load("test").image_paths
    )
    assert all(path.is_relative_to(tmp_path / "store") for path in paths)
    for path, colour in zip(paths, COLOURS[2:]):
        with Image.open(path) as image:
            assert image.convert("RGB").getpixel((3, 3)) == colour


def test_the_splits_option_maps_harness_names_onto_the_datasets(saved, tmp_path):
    dataset = open_dataset(
        saved, tmp_path, caption_column="text", splits={"dev": "train"}
    )
    assert dataset.splits() == ["dev"] and dataset.load("dev").captions == (
        "red",
        "green",
    )


def test_a_split_column_picks_the_rows_of_each_split(one_table, tmp_path):
    dataset = open_dataset(one_table, tmp_path, split_column="split")
    assert dataset.splits() == ["test", "train"]
    assert dataset.load("test").captions == ("green", "yellow")
    assert dataset.load("train").image_ids == ("0", "1")  # row numbers within the split


def test_registered_as_hf_dataset_with_its_folder_as_source(saved, tmp_path):
    spec = PluginHost().registry.get("dataset", "hf-dataset")
    options = {
        "path": str(saved),
        "caption_column": "text",
        "image_store": str(tmp_path / "store"),
    }
    built = spec.build(options, "x.toml: datasets.0")
    assert built.load("train").n_images == 2 and built.source("train") == str(saved)


BAD_INPUT = {
    # case: (options, split, the problem in the message)
    "a missing caption column": (
        {},
        "test",
        "split 'test' has no column 'caption'; columns: image, text, id",
    ),
    "a misspelt image column": (
        {"caption_column": "text", "image_column": "imag"},
        "test",
        "no column 'imag' (did you mean 'image'?)",
    ),
    "a misspelt id column": (
        {"caption_column": "text", "id_column": "idx"},
        "test",
        "no column 'idx' (did you mean 'id'?)",
    ),
    "an image column of text": (
        {"caption_column": "id", "image_column": "text"},
        "train",
        "split 'train' row 0: column 'text': expected an image (encoded bytes or an image file path), got 'red' (not a file)",
    ),
    "an unknown split": (
        {"caption_column": "text"},
        "tset",
        "no split 'tset' (did you mean 'test'?); splits: train, test",
    ),
    "a split the option does not map": (
        {"caption_column": "text", "splits": {"test": "train"}},
        "train",
        "no split 'train'; option splits names test",
    ),
    "a split column on many tables": (
        {"caption_column": "text", "split_column": "id"},
        "test",
        "option split_column needs a dataset of one table",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_naming_the_dataset_and_column(saved, tmp_path, case):
    options, split, problem = BAD_INPUT[case]
    with pytest.raises(UserError) as caught:
        open_dataset(saved, tmp_path, **options).load(split)
    message = str(caught.value)
    assert message.startswith(str(saved)) and problem in message and "\n" not in message


def test_a_blank_caption_is_refused_naming_its_row(tmp_path):
    folder = tmp_path / "gaps"
    datasets.Dataset.from_dict(
        {"image": pictures()[:2], "caption": [["ok"], [" "]]}, split="test"
    ).save_to_disk(str(folder))
    with pytest.raises(
        UserError,
        match=r"gaps: split 'test' row 1: column 'caption': no caption; every image needs at least one",
    ):
        open_dataset(folder, tmp_path).load("test")


def test_a_row_without_an_image_is_refused_naming_it(tmp_path):
    folder = tmp_path / "holes"
    features = datasets.Features(
        {"image": datasets.Image(), "caption": datasets.Value("string")}
    )
    datasets.Dataset.from_dict(
        {"image": [pictures()[0], None], "caption": ["a", "b"]}, features=features
    ).save_to_disk(str(folder))
    with pytest.raises(
        UserError,
        match=r"holes: split 'test' row 1: column 'image': expected an image .* got NoneType",
    ):
        open_dataset(folder, tmp_path).load("test")


def test_a_folder_that_is_not_a_saved_dataset_is_refused(tmp_path):
    with pytest.raises(
        UserError, match=r"nothing-here: not a dataset written by save_to_disk"
    ):
        open_dataset(tmp_path / "nothing-here", tmp_path).load("test")


def test_hub_and_path_are_one_or_the_other(tmp_path):
    with pytest.raises(UserError, match="give either option hub .* or option path"):
        hf_dataset(hub="nlphuji/flickr30k", path=str(tmp_path))
    with pytest.raises(UserError, match="give either option hub .* or option path"):
        hf_dataset()


def test_without_the_datasets_package_it_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(
        UserError,
        match=r"needs the Hugging Face datasets package: pip install 'itr-harness\[hf\]'",
    ):
        hf_dataset(path=str(tmp_path))


def test_the_cli_refuses_a_missing_column_with_exit_2(saved, tmp_path):
    result = itr_in_process(
        "features",
        "hf-dataset",
        "--option",
        f"path={saved}",
        "--option",
        f"image_store={tmp_path}",
        "--no-text",
    )
    assert result.code == 2, result.stderr
    assert (
        f"{saved}: split 'train' has no column 'caption'" in result.stderr
        and "Traceback" not in result.stderr
    )
