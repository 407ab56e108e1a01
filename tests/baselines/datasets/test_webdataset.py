"""The ``webdataset`` reader: tar shards of images and captions, streamed, images kept by content."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.datasets.webdataset import expand_braces, webdataset
from harness.errors import UserError
from harness.plugin_manager import PluginHost
from tests.helpers import itr_in_process


def encoded(colour: tuple[int, int, int], image_format: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 8), colour).save(out, format=image_format)
    return out.getvalue()


def write_shard(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


RED, GREEN, BLUE = (
    encoded((200, 0, 0), "JPEG"),
    encoded((0, 200, 0), "PNG"),
    encoded((0, 0, 200), "WEBP"),
)


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """Two shards in CLIP_benchmark's layout: test/0.tar (a .jpg with two captions, a .png with a
    JSON list) and test/1.tar (a .webp with a JSON object)."""
    write_shard(
        tmp_path / "test" / "0.tar",
        [
            ("s0000000.jpg", RED),
            ("s0000000.txt", b"a red square\nsomething red\n"),
            ("s0000001.png", GREEN),
            ("s0000001.json", json.dumps(["a green square"]).encode()),
        ],
    )
    write_shard(
        tmp_path / "test" / "1.tar",
        [
            ("s0000002.webp", BLUE),
            ("s0000002.cls", b"3"),
            ("s0000002.json", json.dumps({"caption": "a blue square"}).encode()),
        ],
    )
    return tmp_path


def dataset(root: Path, pattern: str = "test/{0..1}.tar"):
    return webdataset(
        splits={"test": str(root / pattern)},
        name="squares",
        image_store=str(root / "store"),
    )


def test_samples_are_read_in_shard_order_with_their_captions(shards):
    split = dataset(shards).load("test")
    assert split.dataset == "squares" and split.image_ids == (
        "s0000000",
        "s0000001",
        "s0000002",
    )
    assert split.captions == (
        "a red square",
        "something red",
        "a green square",
        "a blue square",
    )
    np.testing.assert_array_equal(split.image_of_caption, [0, 0, 1, 2])


def test_each_image_is_a_file_holding_the_members_bytes(shards):
    paths = dataset(shards).load("test").image_paths
    assert [path.read_bytes() for path in paths] == [RED, GREEN, BLUE]
    assert [path.suffix for path in paths] == [".jpg", ".png", ".webp"]
    assert all(path.is_relative_to(shards / "store") for path in paths)


def test_a_second_load_finds_the_images_already_kept(shards):
    first = dataset(shards).load("test").image_paths
    mtimes = [path.stat().st_mtime_ns for path in first]
    assert dataset(shards).load("test").image_paths == first
    assert [path.stat().st_mtime_ns for path in first] == mtimes
    assert len([p for p in (shards / "store").rglob("*") if p.is_file()]) == 3


def test_a_split_takes_a_list_of_patterns_and_a_gzipped_shard(shards):
    (shards / "test" / "1.tar.gz").write_bytes(
        gzip.compress((shards / "test" / "1.tar").read_bytes())
    )
    split = webdataset(
        splits={"test": [str(shards / "test/0.tar"), str(shards / "test/1.tar.gz")]},
        image_store=str(shards / "store"),
    ).load("test")
    assert split.n_images == 3 and split.dataset == "webdataset"


def test_brace_patterns_count_with_padding_and_list_choices():
    assert expand_braces("wds/{000..002}.tar") == [
        "wds/000.tar",
        "wds/001.tar",
        "wds/002.tar",
    ]
    assert expand_braces("{a,b}-{0..1}.tar") == [
        "a-0.tar",
        "a-1.tar",
        "b-0.tar",
        "b-1.tar",
    ]
    assert expand_braces("plain.tar") == ["plain.tar"]


def test_registered_as_webdataset(shards):
    spec = PluginHost().registry.get("dataset", "webdataset")
    built = spec.build(
        {
            "splits": {"test": str(shards / "test/0.tar")},
            "image_store": str(shards / "store"),
        },
        "x.toml: datasets.0",
    )
    assert built.splits() == ["test"] and built.load("test").n_images == 2
    assert built.source("test") == str(shards / "test" / "0.tar")


def _shard(members):
    return lambda root: write_shard(root / "test" / "1.tar", members)


BAD_INPUT = {
    # case: (break the fixture, the problem in the message)
    "a sample without captions": (
        _shard([("s0000002.webp", BLUE)]),
        "1.tar: sample 's0000002' has no caption; expected a .txt or .json member",
    ),
    "captions without an image": (
        _shard([("s0000002.txt", b"lost")]),
        "1.tar: sample 's0000002' has no image; expected one",
    ),
    "two images in a sample": (
        _shard([("k.png", GREEN), ("k.jpg", RED), ("k.txt", b"x")]),
        "1.tar: sample 'k' has 2 images (jpg, png)",
    ),
    "an empty caption file": (
        _shard([("k.png", GREEN), ("k.txt", b"\n \n")]),
        "1.tar: sample 'k' (k.txt): no caption",
    ),
    "invalid JSON": (
        _shard([("k.png", GREEN), ("k.json", b"{oops")]),
        "1.tar: sample 'k' (k.json): invalid JSON at line 1",
    ),
    "JSON without captions": (
        _shard([("k.png", GREEN), ("k.json", b'{"width": 3}')]),
        "(k.json): an object without 'captions' or 'caption'",
    ),
    "JSON of the wrong shape": (
        _shard([("k.png", GREEN), ("k.json", b"[1, 2]")]),
        "(k.json): expected a caption (a string) or a list of strings, got list",
    ),
    "captions not UTF-8": (
        _shard([("k.png", GREEN), ("k.txt", b"\xff\xfe")]),
        "(k.txt): not UTF-8 text (byte 0)",
    ),
    "an image that is not one": (
        _shard([("k.png", b"not a png"), ("k.txt", b"x")]),
        "1.tar: k.png: not a readable image",
    ),
    "a truncated image": (
        _shard([("k.jpg", RED[:-2]), ("k.txt", b"x")]),
        "1.tar: k.jpg: truncated JPEG file",
    ),
    "a key in two shards": (
        _shard([("s0000000.png", GREEN), ("s0000000.txt", b"x")]),
        "1.tar: sample 's0000000' appears twice (first in ",
    ),
    "a shard that is not a tar": (
        lambda root: (root / "test" / "1.tar").write_bytes(b"garbage" * 200),
        "1.tar: not a readable tar archive",
    ),
    "a missing shard": (
        lambda root: (root / "test" / "1.tar").unlink(),
        "1.tar: shard not found (split 'test' of dataset 'squares')",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_naming_the_shard_and_member(shards, case):
    breaks, problem = BAD_INPUT[case]
    breaks(shards)
    with pytest.raises(UserError) as caught:
        dataset(shards).load("test")
    message = str(caught.value)
    assert (
        problem in message and str(shards / "test") in message and "\n" not in message
    )


def test_an_unknown_split_names_the_ones_there(shards):
    with pytest.raises(
        UserError,
        match=r"no split 'tset' \(did you mean 'test'\?\); option splits names test",
    ):
        dataset(shards).load("tset")


def test_the_cli_refuses_a_shard_without_captions_with_exit_2(shards):
    write_shard(shards / "test" / "1.tar", [("s0000002.webp", BLUE)])
    splits = json.dumps({"test": str(shards / "test/{0..1}.tar")})
    result = itr_in_process(
        "features",
        "webdataset",
        "--option",
        f"splits={splits}",
        "--option",
        f"image_store={shards / 'store'}",
        "--no-text",
    )
    assert result.code == 2, result.stderr
    assert (
        "1.tar: sample 's0000002' has no caption" in result.stderr
        and "Traceback" not in result.stderr
    )
