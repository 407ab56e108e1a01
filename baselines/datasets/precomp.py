"""The SCAN / VSE++ ``precomp`` layout: precomputed image features plus caption text.

See docs/real-data.md, precomp. A directory (``data/coco_precomp``, ``data/f30k_precomp``) holds,
per split (``train``, ``dev``, ``test``, COCO's ``testall``):

- ``{split}_ims.npy``: float32 or float16 [n_rows, R, D] region features (BUTD: R = 36, D = 2048) or
  [n_rows, D] single vectors (vsepp's VGG / ResNet precomp);
- ``{split}_caps.txt``: one caption per line, the captions of an image on consecutive lines,
  images in row order (5 per image in the released data);
- ``{split}_ids.txt`` (optional): the image ids, one per image row, or one per caption
  (LAPS's dev/testall copies list each id 5×); COCO image ids in SCAN's release. With the
  option ``captions_json`` (a COCO ``captions_*.json``), each caption's annotation id is matched
  from it by image (`baselines.datasets.coco_captions`).

Features are opened with ``np.load(mmap_mode="r")`` (COCO train is 33 GB; the reference loaders
read it into RAM) and offered under the names the image backbones use: [n, R, D] as
``regions``, [n, D] as ``pooled``. Only what the file stores is offered, never a pooled mean
of the regions: an eager mean would read the whole file, and a lazy one would be read next to
``regions`` for every batch, because the trainer gathers every offered feature. Encoders that
need one vector per image average the regions themselves (`LinearImageEncoder` with
``feature = "regions"``, i.e. VSE∞'s AvgPool VSE++ baseline).

Pairing, the reference loaders' ``im_div`` rule: the caption count must be a multiple k of the
image row count, and caption c belongs to row c // k. Equal counts mean one caption per row, as
in the reference code (im_div = 1), unless the ids file says the rows are the same image
repeated: ids in runs of k equal lines make every k rows one image (its first row is used), so
a 5×-duplicated layout is not scored as 5 distinct images with one caption each.

``dev`` keeps only its first `dev_images` images and their captions, as every reference loader
does (1,000 images).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from baselines.datasets.captioned_images import utf8_text
from baselines.datasets.coco_captions import UNMATCHED_SPLITS, with_caption_ids
from harness.errors import UserError, closest
from harness.interfaces import RetrievalSplit

SPLITS = ("train", "dev", "test", "testall")
SPLIT_ALIASES = {"val": "dev"}
FEATURE_OF_RANK = {2: "pooled", 3: "regions"}
FEATURE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
ZIP_MAGIC = b"PK\x03\x04"
"""How an .npz archive (a zip file) starts."""
HEADER_READERS = {
    (1, 0): npy_format.read_array_header_1_0,
    (2, 0): npy_format.read_array_header_2_0,
    (3, 0): npy_format.read_array_header_2_0,  # 3.0 differs only in UTF-8 field names, which float arrays have none of
}
CHECK_CHUNK_BYTES = 64 << 20
"""Feature bytes read per step of the NaN / inf scan, so memory stays bounded on any file size."""


def precomp(*, path: str, name: str | None = None, dev_images: int | None = 1000, captions_json: str | None = None) -> PrecompDataset:
    """The ``precomp`` dataset factory (registered as ``precomp``).

    Args:
        path: the directory holding ``{split}_ims.npy`` / ``{split}_caps.txt`` / ``{split}_ids.txt``.
        name: the dataset's name in results and messages (default: the directory's name).
        dev_images: keep the first N images of ``dev`` (reference loaders: 1000); None keeps all
            (TOML has no null: an experiment file keeps all with any N ≥ the dev size).
        captions_json: a COCO ``captions_*.json`` file: each caption's annotation id is matched
            from it by image (the ids file's COCO image ids), for the eccv-caption and cxc protocols.
    """
    if dev_images is not None and dev_images < 1:
        raise UserError(f"dataset 'precomp' at {path}: option dev_images must be at least 1 (got {dev_images})")
    root = Path(path).expanduser()
    return PrecompDataset(name or root.name, root, dev_images=dev_images, captions_json=Path(captions_json).expanduser() if captions_json else None)


class PrecompDataset:
    """Reads and validates the splits of one precomp directory (see the module docstring)."""

    def __init__(self, name: str, root: Path, *, dev_images: int | None = 1000, captions_json: Path | None = None) -> None:
        self.name = name
        self.root = Path(root)
        self.dev_images = dev_images
        self.captions_json = captions_json

    def _files(self, split: str) -> tuple[Path, Path, Path]:
        return self.root / f"{split}_ims.npy", self.root / f"{split}_caps.txt", self.root / f"{split}_ids.txt"

    def splits(self) -> list[str]:
        """The splits whose features and captions are both present."""
        return [split for split in SPLITS if all(path.is_file() for path in self._files(split)[:2])]

    def source(self, split: str) -> str:
        """Where the data lies, for the MLflow run input: the directory."""
        return str(self.root.resolve())

    def load(self, split: str) -> RetrievalSplit:
        """Read one split, validated; every problem is a one-line `UserError` naming the file.

        ``image_features`` is {"regions": memmap [n, R, D]} or {"pooled": memmap [n, D]}.
        """
        if not self.root.is_dir():
            raise UserError(f"{self.root}: precomp directory not found")
        split = SPLIT_ALIASES.get(split, split)
        present = ", ".join(self.splits()) or "none"
        if split not in SPLITS:
            raise UserError(
                f"{self.root}: unknown precomp split '{split}'{closest(split, SPLITS)}; "
                f"precomp splits are {', '.join(SPLITS)} (present: {present})"
            )
        ims_path, caps_path, ids_path = self._files(split)
        for path in (ims_path, caps_path):
            if not path.is_file():
                raise UserError(f"{path}: not found; splits present in {self.root}: {present}")
        stored = _open_features(ims_path)
        captions = _read_lines(caps_path, "caption")
        if not captions:
            raise UserError(f"{caps_path}: empty split: no captions")
        if len(captions) % len(stored):
            raise UserError(
                f"{caps_path}: {len(captions)} captions for {len(stored)} images in {ims_path.name}; "
                "the caption count must be a multiple of the image count (k consecutive captions per image)"
            )
        ids = _read_lines(ids_path, "image id") if ids_path.is_file() else None
        rows_per_image, image_ids = _pair(ids_path, ids, len(stored), len(captions))
        captions_per_image = len(captions) * rows_per_image // len(stored)
        features = stored[::rows_per_image]
        if split == "dev" and self.dev_images is not None:
            features, image_ids = features[: self.dev_images], image_ids[: self.dev_images]
            captions = captions[: len(features) * captions_per_image]
        _check_finite(ims_path, stored, rows_per_image, len(features))
        loaded = RetrievalSplit(
            dataset=self.name,
            split=split,
            image_ids=tuple(image_ids),
            captions=tuple(captions),
            image_of_caption=np.arange(len(captions), dtype=np.int64) // captions_per_image,
            image_features={FEATURE_OF_RANK[features.ndim]: features},
        )
        if self.captions_json is None or split in UNMATCHED_SPLITS:
            return loaded
        if ids is None:
            raise UserError(f"{ids_path}: not found; option captions_json matches captions by COCO image id, one per image or caption")
        return with_caption_ids(loaded, self.captions_json)


def _open_features(path: Path) -> np.memmap:
    """The features memory-mapped, after checking the .npy header against the file.

    The header is read first, so every problem is named before anything is mapped: float32 or
    float16 (float16 halves COCO's 33 GB training file on disk, and every batch is cast to
    float32 as it is read), rank 2 or 3 with at least one image row and one value per row, row-major order
    (an image's features are one contiguous read), and data whose size is exactly the header's
    shape. A download cut short names the image row it stops in; bytes beyond the last row (a
    file appended to, or a header rewritten for fewer rows) are refused, not ignored as
    `np.load` would.
    """
    shape, fortran_order, dtype, offset, file_bytes = _read_header(path)
    if dtype == np.dtype(object):
        raise UserError(
            f"{path}: dtype object (an array of per-image arrays, e.g. a different region count per image); "
            "expected one float32 or float16 array: pad every image to the same number of regions"
        )
    if dtype not in FEATURE_DTYPES:
        raise UserError(f"{path}: dtype {dtype}; expected float32 or float16 features (convert with .astype('float32'))")
    if len(shape) not in FEATURE_OF_RANK:
        raise UserError(
            f"{path}: array of rank {len(shape)} {shape}; expected rank 2 [images, dim] "
            "or rank 3 [images, regions, dim]"
        )
    if fortran_order:
        raise UserError(f"{path}: a column-major (Fortran-order) array; expected row-major (save np.ascontiguousarray(features))")
    if shape[0] == 0:
        raise UserError(f"{path}: empty split: no image rows (shape {shape})")
    if 0 in shape[1:]:
        raise UserError(f"{path}: array of shape {shape} has no values per image row; expected regions and dim of at least 1")
    row_bytes = math.prod(shape[1:]) * dtype.itemsize
    data_bytes, expected_bytes = file_bytes - offset, shape[0] * row_bytes
    if data_bytes < expected_bytes:
        raise UserError(
            f"{path}: truncated in image row {data_bytes // row_bytes}: its header declares {shape[0]} rows of "
            f"{shape[1:]} {dtype} ({expected_bytes} bytes of data), the file holds {data_bytes}; save or download it again"
        )
    if data_bytes > expected_bytes:
        raise UserError(
            f"{path}: {data_bytes - expected_bytes} bytes after image row {shape[0] - 1}, the last of the {shape[0]} rows "
            f"its header declares (shape {shape}): a file appended to, or a damaged header"
        )
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _read_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int, int]:
    """``(shape, fortran_order, dtype, data offset, file size in bytes)`` from a .npy header."""
    try:
        with open(path, "rb") as handle:
            if handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
                raise UserError(f"{path}: expected one .npy array, found an .npz archive")
            handle.seek(0)
            version = npy_format.read_magic(handle)
            if version not in HEADER_READERS:
                raise UserError(f"{path}: not a readable .npy array (format version {version[0]}.{version[1]})")
            shape, fortran_order, dtype = HEADER_READERS[version](handle)
            if any(dim < 0 for dim in shape):
                raise UserError(f"{path}: not a readable .npy array (bad header: shape {shape})")
            return shape, fortran_order, dtype, handle.tell(), os.fstat(handle.fileno()).st_size
    except ValueError as exc:
        raise UserError(f"{path}: not a readable .npy array (bad header: {exc})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _read_lines(path: Path, what: str) -> list[str]:
    """The stripped lines of a UTF-8 text file (universal newlines); an empty line is an error.

    Splitting on newlines only (not `str.splitlines`, which also splits on U+2028 and friends)
    keeps the line count, and with it the caption -> image pairing, equal to the reference's.
    """
    text = utf8_text(path.read_bytes(), str(path))
    lines = [line.strip() for line in io.StringIO(text, newline=None)]
    for number, line in enumerate(lines, start=1):
        if not line:
            raise UserError(f"{path}: line {number} is empty (expected one {what} per line)")
    return lines


def _pair(ids_path: Path, ids: list[str] | None, n_rows: int, n_captions: int) -> tuple[int, list[str]]:
    """Feature rows per image and one id per image, from the counts and the optional ids file.

    Returns ``(rows_per_image, image_ids)``. rows_per_image is 1 unless the counts are equal and
    the ids repeat in runs of k > 1 lines (k rows per image). Without an ids file the ids are the
    row numbers.
    """
    if ids is None:
        return 1, [str(row) for row in range(n_rows)]
    if len(ids) not in (n_rows, n_captions):
        raise UserError(
            f"{ids_path}: {len(ids)} ids for {n_rows} image rows and {n_captions} captions; "
            "expected one id per image row or one per caption"
        )
    if len(ids) == n_rows != n_captions:
        return 1, ids
    # One id per caption. With more captions than rows the ids repeat and the rows do not (LAPS);
    # with equal counts, ids repeating on consecutive lines mean the rows repeat too.
    run = n_captions // n_rows if n_rows != n_captions else _first_run_length(ids)
    if run == 1:
        return 1, ids
    broken = next((line for line in range(len(ids)) if ids[line] != ids[line - line % run]), None)
    if broken is not None or len(ids) % run:
        line = (broken if broken is not None else len(ids) - len(ids) % run) + 1  # else: the last run is short
        raise UserError(f"{ids_path}: line {line}: expected each image id on {run} consecutive lines (one per caption)")
    return (run if n_rows == n_captions else 1), ids[::run]


def _first_run_length(ids: list[str]) -> int:
    """How many lines the first id repeats on (1 when the second line differs)."""
    return next((line for line, value in enumerate(ids) if value != ids[0]), len(ids))


def _check_finite(path: Path, features: np.memmap, rows_per_image: int, n_images: int) -> None:
    """Raise naming the first file row with a NaN or inf among the first `n_images` images.

    Reads `CHECK_CHUNK_BYTES` at a time with plain file reads rather than through the memory
    map: a mapped page that was read stays in the process's resident set, so scanning the map
    would make a job's memory grow with the split (17 GB for COCO train in float16). The row
    named is the file's row, ``image * rows_per_image``.
    """
    row_bytes = features[0].nbytes
    step = max(1, CHECK_CHUNK_BYTES // max(1, row_bytes * rows_per_image)) * rows_per_image
    last_row = n_images * rows_per_image
    with open(path, "rb") as handle:
        for start in range(0, last_row, step):
            handle.seek(features.offset + start * row_bytes)
            count = min(step, last_row - start)
            rows = np.fromfile(handle, dtype=features.dtype, count=count * features[0].size).reshape(count, -1)
            bad = np.flatnonzero(~np.isfinite(rows[::rows_per_image]).all(axis=1))
            if bad.size:
                raise UserError(f"{path}: NaN or inf in the features of image row {start + int(bad[0]) * rows_per_image}")
