"""The precomp reader: SCAN / VSE++ layout, im_div pairing, dev truncation, validation (docs/real-data.md)."""

from __future__ import annotations

import mmap
import re
from pathlib import Path

import numpy as np
import pytest

from baselines.datasets import precomp as precomp_module
from baselines.datasets.precomp import precomp
from harness.errors import UserError
from harness.plugin_manager import PluginHost


def write_split(root: Path, split: str, features: np.ndarray, captions: list[str], ids: list[str] | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / f"{split}_ims.npy", features)
    (root / f"{split}_caps.txt").write_text("".join(f"{caption}\n" for caption in captions), encoding="utf-8")
    if ids is not None:
        (root / f"{split}_ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")


def regions(n_images: int, n_regions: int = 3, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_images, n_regions, dim)).astype(np.float32)


def five_captions(n_images: int) -> list[str]:
    return [f"image {i} caption {j}" for i in range(n_images) for j in range(5)]


@pytest.fixture
def coco_like(tmp_path: Path) -> Path:
    """train 4 images (BUTD-like regions), dev 6, test 3 with an ids file; 5 captions each."""
    root = tmp_path / "coco_precomp"
    write_split(root, "train", regions(4), five_captions(4))
    write_split(root, "dev", regions(6, seed=1), five_captions(6))
    write_split(root, "test", regions(3, seed=2), five_captions(3), ids=["391895", "522418", "184613"])
    return root


def test_region_features_are_a_memmap_offered_as_regions(coco_like):
    split = precomp(path=str(coco_like)).load("train")
    features = split.image_features["regions"]
    assert set(split.image_features) == {"regions"}
    assert isinstance(features, np.memmap) and features.shape == (4, 3, 8) and features.dtype == np.float32
    np.testing.assert_array_equal(features, np.load(coco_like / "train_ims.npy"))


def test_five_consecutive_captions_belong_to_each_image(coco_like):
    split = precomp(path=str(coco_like)).load("train")
    assert (split.n_images, split.n_captions) == (4, 20)
    np.testing.assert_array_equal(split.image_of_caption, np.arange(20) // 5)
    assert split.image_of_caption.dtype == np.int64
    assert split.captions[7] == "image 1 caption 2"
    assert split.image_paths is None


def test_image_ids_come_from_the_ids_file_else_row_numbers(coco_like):
    dataset = precomp(path=str(coco_like))
    assert dataset.load("test").image_ids == ("391895", "522418", "184613")
    assert dataset.load("train").image_ids == ("0", "1", "2", "3")


def test_single_vectors_are_offered_as_pooled(tmp_path):
    write_split(tmp_path, "test", np.ones((2, 16), np.float32), five_captions(2))
    features = precomp(path=str(tmp_path)).load("test").image_features
    assert set(features) == {"pooled"} and features["pooled"].shape == (2, 16)


def test_any_whole_number_of_captions_per_image_pairs_by_position(tmp_path):
    write_split(tmp_path, "test", regions(2), ["a", "b", "c", "d", "e", "f"])
    split = precomp(path=str(tmp_path)).load("test")
    np.testing.assert_array_equal(split.image_of_caption, [0, 0, 0, 1, 1, 1])


def test_equal_counts_mean_one_caption_per_image_row(tmp_path):
    write_split(tmp_path, "test", regions(3), ["a", "b", "c"], ids=["7", "8", "9"])
    split = precomp(path=str(tmp_path)).load("test")
    assert split.n_images == 3 and split.image_ids == ("7", "8", "9")
    np.testing.assert_array_equal(split.image_of_caption, [0, 1, 2])


def test_ids_listed_once_per_caption_name_each_image_once(tmp_path):
    """LAPS's dev/testall ids files list each id 5× next to one feature row per image."""
    write_split(tmp_path, "testall", regions(2), five_captions(2), ids=["11"] * 5 + ["12"] * 5)
    split = precomp(path=str(tmp_path)).load("testall")
    assert split.image_ids == ("11", "12") and split.image_features["regions"].shape[0] == 2


def test_rows_repeated_per_caption_with_repeated_ids_are_one_image(tmp_path):
    """im_div = 1 layout: one feature row per caption, the ids file repeats each image's id."""
    rows = np.repeat(regions(2), 5, axis=0)
    write_split(tmp_path, "test", rows, five_captions(2), ids=["11"] * 5 + ["12"] * 5)
    split = precomp(path=str(tmp_path)).load("test")
    assert split.image_ids == ("11", "12")
    np.testing.assert_array_equal(split.image_of_caption, np.arange(10) // 5)
    features = split.image_features["regions"]
    assert isinstance(features, np.memmap) and features.shape == (2, 3, 8)
    np.testing.assert_array_equal(features, rows[::5])


def test_dev_keeps_its_first_dev_images_images_and_their_captions(coco_like):
    split = precomp(path=str(coco_like), dev_images=2).load("dev")
    assert (split.n_images, split.n_captions) == (2, 10)
    assert split.captions[-1] == "image 1 caption 4"
    np.testing.assert_array_equal(split.image_features["regions"], np.load(coco_like / "dev_ims.npy")[:2])


def test_dev_keeps_all_images_without_a_limit_and_val_reads_dev(coco_like):
    assert precomp(path=str(coco_like), dev_images=None).load("dev").n_images == 6
    split = precomp(path=str(coco_like), dev_images=1000).load("val")
    assert split.split == "dev" and split.n_images == 6


def test_other_splits_are_never_truncated(coco_like):
    assert precomp(path=str(coco_like), dev_images=1).load("train").n_images == 4


def test_splits_lists_the_splits_with_features_and_captions(coco_like):
    (coco_like / "testall_ims.npy").write_bytes(b"")  # no captions: not a split
    assert precomp(path=str(coco_like)).splits() == ["train", "dev", "test"]


def test_name_defaults_to_the_directory_name(coco_like):
    assert precomp(path=str(coco_like)).load("test").dataset == "coco_precomp"
    assert precomp(path=str(coco_like), name="coco-butd").load("test").dataset == "coco-butd"


def test_registered_as_precomp(coco_like):
    spec = PluginHost().registry.get("dataset", "precomp")
    dataset = spec.build({"path": str(coco_like), "dev_images": 2}, "x.toml: datasets.0.options")
    assert dataset.load("dev").n_images == 2


def test_the_nan_scan_reads_in_chunks_and_names_the_row(coco_like, monkeypatch):
    features = regions(50)
    features[37, 2, 5] = np.nan
    write_split(coco_like, "train", features, five_captions(50))
    monkeypatch.setattr(precomp_module, "CHECK_CHUNK_BYTES", features[0].nbytes * 8)
    with pytest.raises(UserError, match=r"train_ims\.npy: NaN or inf in the features of image row 37$"):
        precomp(path=str(coco_like)).load("train")


def test_float16_features_are_offered_as_stored(tmp_path):
    """float16 halves COCO's training file; the trainer casts each batch to float32."""
    write_split(tmp_path, "test", regions(3).astype(np.float16), five_captions(3))
    features = precomp(path=str(tmp_path)).load("test").image_features["regions"]
    assert isinstance(features, np.memmap) and features.dtype == np.float16 and features.shape == (3, 3, 8)


def test_the_nan_scan_leaves_no_page_of_the_map_resident(tmp_path):
    """The scan reads the file, not the map: a job's memory must not grow with its split's size."""
    write_split(tmp_path, "train", regions(400, n_regions=36, dim=256), five_captions(400))  # 14.7 MB
    features = precomp(path=str(tmp_path)).load("train").image_features["regions"]
    assert _resident_pages(features) == 0


def _resident_pages(array: np.memmap) -> int:
    """Pages of the array's mapping in this process's resident set, from /proc/self/smaps."""
    start = array.ctypes.data - array.offset % mmap.ALLOCATIONGRANULARITY
    for header, rss in re.findall(r"^([0-9a-f]+)-[0-9a-f]+ .*\n(?:.*\n)*?Rss:\s+(\d+) kB", Path("/proc/self/smaps").read_text(), re.M):
        if int(header, 16) == start:
            return int(rss) // 4
    raise AssertionError("the array's mapping is not in /proc/self/smaps")


def test_the_nan_scan_names_the_file_row_when_rows_repeat_per_image(tmp_path):
    rows = np.repeat(regions(2), 5, axis=0)
    rows[5:10, 0, 0] = np.inf
    write_split(tmp_path, "test", rows, five_captions(2), ids=["11"] * 5 + ["12"] * 5)
    with pytest.raises(UserError, match="image row 5$"):
        precomp(path=str(tmp_path)).load("test")


def test_dev_truncation_scans_only_the_kept_images(coco_like):
    features = regions(6)
    features[5] = np.nan
    write_split(coco_like, "dev", features, five_captions(6))
    assert precomp(path=str(coco_like), dev_images=5).load("dev").n_images == 5


def _features(array):
    return lambda root: np.save(root / "test_ims.npy", array)


def _captions(text):
    return lambda root: (root / "test_caps.txt").write_bytes(text.encode("utf-8") if isinstance(text, str) else text)


def _ids(lines):
    return lambda root: (root / "test_ids.txt").write_text("".join(f"{line}\n" for line in lines))


def _remove(name):
    return lambda root: (root / name).unlink()


BAD_INPUT = {
    # case: (break the coco_like directory, split to load, file the message names, the problem)
    "unknown split": (None, "valid", "coco_precomp", "unknown precomp split 'valid'; precomp splits are train, dev, test, testall (present: train, dev, test)"),
    "misspelt split": (None, "tset", "coco_precomp", "unknown precomp split 'tset' (did you mean 'test'?)"),
    "split without features": (_remove("test_ims.npy"), "test", "test_ims.npy", "not found; splits present in "),
    "split without captions": (_remove("test_caps.txt"), "test", "test_caps.txt", "not found; splits present in "),
    "absent split": (None, "testall", "testall_ims.npy", "not found; splits present in "),
    "not an npy file": (lambda root: (root / "test_ims.npy").write_text("hello"), "test", "test_ims.npy", "not a readable .npy array"),
    "rank 1": (_features(np.zeros(3, np.float32)), "test", "test_ims.npy", "array of rank 1 (3,); expected rank 2 [images, dim] or rank 3 [images, regions, dim]"),
    "rank 4": (_features(np.zeros((3, 2, 2, 2), np.float32)), "test", "test_ims.npy", "array of rank 4"),
    "integer dtype": (_features(np.zeros((3, 4), np.int64)), "test", "test_ims.npy", "dtype int64; expected float32 or float16 features"),
    "float64 dtype": (_features(np.zeros((3, 4), np.float64)), "test", "test_ims.npy", "dtype float64; expected float32 or float16 features"),
    "column-major": (_features(np.asfortranarray(np.ones((3, 4), np.float32))), "test", "test_ims.npy", "a column-major (Fortran-order) array; expected row-major"),
    "no image rows": (_features(np.zeros((0, 3, 8), np.float32)), "test", "test_ims.npy", "empty split: no image rows"),
    "no captions": (_captions(""), "test", "test_caps.txt", "empty split: no captions"),
    "caption count": (_captions("a\n" * 16), "test", "test_caps.txt", "16 captions for 3 images in test_ims.npy; the caption count must be a multiple of the image count"),
    "fewer captions than images": (_captions("a\nb\n"), "test", "test_caps.txt", "2 captions for 3 images"),
    "empty caption line": (_captions("a\n" * 6 + "  \n" + "a\n" * 8), "test", "test_caps.txt", "line 7 is empty (expected one caption per line)"),
    "trailing blank line": (_captions("a\n" * 15 + "\n"), "test", "test_caps.txt", "line 16 is empty"),
    "not utf-8": (_captions(b"a\n\xff\n" + b"a\n" * 13), "test", "test_caps.txt", "not UTF-8 text (byte 2)"),
    "ids count": (_ids(["1", "2"]), "test", "test_ids.txt", "2 ids for 3 image rows and 15 captions; expected one id per image row or one per caption"),
    "ids per caption out of step": (_ids(["1"] * 5 + ["2"] * 4 + ["3"] * 6), "test", "test_ids.txt", "line 10: expected each image id on 5 consecutive lines"),
    "empty id line": (_ids(["1", "", "3"]), "test", "test_ids.txt", "line 2 is empty (expected one image id per line)"),
    "nan": (_features(np.where(np.arange(3)[:, None] == 2, np.nan, 1.0).astype(np.float32)), "test", "test_ims.npy", "NaN or inf in the features of image row 2"),
    "inf": (_features(np.where(np.arange(3)[:, None, None] == 1, -np.inf, 1.0).astype(np.float32) * np.ones((3, 2, 2), np.float32)), "test", "test_ims.npy", "NaN or inf in the features of image row 1"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_naming_the_file_and_the_problem(coco_like, case):
    breaks, split, file_name, problem = BAD_INPUT[case]
    if breaks is not None:
        breaks(coco_like)
    with pytest.raises(UserError) as caught:
        precomp(path=str(coco_like)).load(split)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(coco_like / file_name if file_name != "coco_precomp" else coco_like) + ":"), message
    assert problem in message


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(UserError, match=f"^{tmp_path / 'nowhere'}: precomp directory not found$"):
        precomp(path=str(tmp_path / "nowhere")).load("train")


def test_rows_repeated_with_ids_out_of_step_are_refused(tmp_path):
    write_split(tmp_path, "test", regions(10), five_captions(2), ids=["1"] * 5 + ["2"] * 3 + ["3"] * 2)
    with pytest.raises(UserError, match=r"test_ids\.txt: line 9: expected each image id on 5 consecutive lines"):
        precomp(path=str(tmp_path)).load("test")


def test_dev_images_below_one_is_refused():
    with pytest.raises(UserError, match="dev_images must be at least 1"):
        precomp(path="x", dev_images=0)


def test_rows_repeated_with_a_short_last_run_of_ids_are_refused(tmp_path):
    write_split(tmp_path, "test", regions(7), [f"c{i}" for i in range(7)], ids=["1"] * 5 + ["2"] * 2)
    with pytest.raises(UserError, match=r"test_ids\.txt: line 6: expected each image id on 5 consecutive lines"):
        precomp(path=str(tmp_path)).load("test")
