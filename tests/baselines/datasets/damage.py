"""Small valid datasets and one damage at a time, for the damaged-data tests.

A damage is a plain function that breaks a valid dataset in place (written by `write_precomp`
or `write_karpathy`) and returns what the refusal must say: the file its message starts with
and the positions (line, row, key or index) it names. The hypothesis strategies draw a valid
dataset and a damage of one kind, so every example is known to be bad; the end-to-end tests
call a few damages with fixed arguments. `TALLY` counts the distinct damaged inputs tried and
the refusals that were one line naming the file and the position (the conftest prints it).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format
from PIL import Image

from harness.errors import UserError

FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
"""Bounded and reproducible: the same examples on every run and machine."""


@dataclass(frozen=True)
class Expected:
    """What a refusal must name: its message starts with ``{file}:`` and matches every regex of `positions`."""

    file: Path
    positions: tuple[str, ...] = ()


def at(text: str) -> str:
    """A regex for `text` as a whole position: ``row 1`` does not match ``row 12``."""
    return re.escape(text) + r"(?!\d)"


@dataclass
class Tally:
    """Distinct damaged inputs (by their bytes) tried, and those refused with a one-line error."""

    tried: set[str] = field(default_factory=set)
    one_line: set[str] = field(default_factory=set)


TALLY = Tally()


def digest_of(root: Path) -> str:
    """sha256 over the names and bytes of every file under `root`: the damaged input's identity."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode("utf-8", "surrogateescape") + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def assert_refused(load: Callable[[], object], root: Path, expected: Expected) -> str:
    """`load()` raises a one-line `UserError` naming `expected`; counted in `TALLY`. Returns the message."""
    digest = digest_of(root)
    TALLY.tried.add(digest)
    with pytest.raises(UserError) as caught:
        load()
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{expected.file}:"), (expected.file, message)
    for position in expected.positions:
        assert re.search(position, message), (position, message)
    TALLY.one_line.add(digest)
    return message


def replace_line(path: Path, number: int, new: bytes) -> None:
    """Line `number` (1-based, the line ending kept) of `path` replaced by `new`."""
    lines = path.read_bytes().splitlines(keepends=True)
    ending = lines[number - 1][len(lines[number - 1].rstrip(b"\r\n")) :]
    lines[number - 1] = new + ending
    path.write_bytes(b"".join(lines))


def insert_bytes(path: Path, number: int, column: int, data: bytes) -> None:
    """`data` inserted into line `number` before its character `column` (clamped to the line)."""
    lines = path.read_bytes().splitlines(keepends=True)
    text = lines[number - 1].decode("utf-8")
    body = text.rstrip("\r\n")
    column = min(column, len(body))
    lines[number - 1] = body[:column].encode() + data + text[column:].encode()
    path.write_bytes(b"".join(lines))


INVALID_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf5\x80\x80\x80", b"\xc3("]
"""Byte sequences no UTF-8 decoder accepts: bytes never used, a lone continuation byte, an
overlong form, a UTF-16 surrogate, a sequence cut short, a lead byte above U+10FFFF."""

captions = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=12
).filter(lambda text: text.strip() == text and text)
"""Captions as real files hold them: any script, no line breaks or control characters, no
surrounding white space (the readers strip it)."""
blanks = st.text(st.sampled_from(" \t\u00a0\u3000\x0b\x0c"), max_size=3)
"""What an empty line can hold: nothing, or white space only."""


# -- precomp --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrecompSpec:
    """One valid ``test`` split: features [n_images, *row_shape] and the caption lines, the same
    number for every image, in image order."""

    n_images: int
    row_shape: tuple[int, ...]
    dtype: str
    captions: tuple[str, ...]
    newline: str
    ids: bool
    seed: int

    def features(self) -> np.ndarray:
        """The feature array, [n_images, *row_shape] in `dtype`, finite."""
        return np.random.default_rng(self.seed).standard_normal((self.n_images, *self.row_shape)).astype(self.dtype)


@st.composite
def precomp_specs(draw, min_images: int = 1) -> PrecompSpec:
    """Small valid precomp splits: pooled [n, D] or regions [n, R, D], float32 or float16,
    1 to 5 captions per image, ``\\n`` or ``\\r\\n`` endings, with or without an ids file."""
    n_images = draw(st.integers(min_images, 6))
    row_shape = draw(st.sampled_from([(), (1,), (3,)])) + (draw(st.integers(1, 6)),)
    per_image = draw(st.integers(1, 5))
    return PrecompSpec(
        n_images=n_images,
        row_shape=row_shape,
        dtype=draw(st.sampled_from(["float32", "float16"])),
        captions=tuple(draw(st.lists(captions, min_size=n_images * per_image, max_size=n_images * per_image))),
        newline=draw(st.sampled_from(["\n", "\r\n"])),
        ids=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def write_precomp(root: Path, spec: PrecompSpec) -> Path:
    """`spec` as ``root/test_ims.npy``, ``test_caps.txt`` and (if it has ids) ``test_ids.txt``."""
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "test_ims.npy", spec.features())
    (root / "test_caps.txt").write_bytes("".join(c + spec.newline for c in spec.captions).encode())
    if spec.ids:
        (root / "test_ids.txt").write_bytes("".join(f"{1000 + i}{spec.newline}" for i in range(spec.n_images)).encode())
    return root


def npy_bytes(array: np.ndarray) -> bytes:
    """The .npy file `np.save` writes for `array`."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype, int, int]:
    """``(shape, dtype, data offset, bytes per row)`` of a valid .npy file."""
    with open(path, "rb") as handle:
        npy_format.read_magic(handle)
        shape, _, dtype = npy_format.read_array_header_1_0(handle)
        return shape, dtype, handle.tell(), int(np.prod(shape[1:])) * dtype.itemsize


def truncate_features(root: Path, keep: int) -> Expected:
    """The feature file cut to its first `keep` bytes: in the header, or in an image row."""
    path = root / "test_ims.npy"
    _, _, offset, row_bytes = npy_layout(path)
    path.write_bytes(path.read_bytes()[:keep])
    return Expected(path, ("bad header",) if keep < offset else (at(f"truncated in image row {(keep - offset) // row_bytes}"),))


def append_to_features(root: Path, extra: bytes) -> Expected:
    """Bytes after the last row the header declares (an appended or half-rewritten file)."""
    path = root / "test_ims.npy"
    shape, _, _, _ = npy_layout(path)
    path.write_bytes(path.read_bytes() + extra)
    return Expected(path, (at(f"bytes after image row {shape[0] - 1}"),))


def redeclare_rows(root: Path, rows: int) -> Expected:
    """The header rewritten to declare `rows` image rows, the data left as it is: more rows than
    the file holds (the row it stops in is named), fewer (the last declared row is named), or a
    negative count (a bad header)."""
    path = root / "test_ims.npy"
    shape, dtype, offset, _ = npy_layout(path)
    data = path.read_bytes()[offset:]
    with open(path, "wb") as handle:
        header = {"descr": npy_format.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, *shape[1:])}
        npy_format.write_array_header_1_0(handle, header)
        handle.write(data)
    if rows <= 0:
        return Expected(path, ("bad header",) if rows else ("empty split: no image rows",))
    if rows > shape[0]:
        return Expected(path, (at(f"truncated in image row {shape[0]}"),))
    return Expected(path, (at(f"bytes after image row {rows - 1}"),))


def resave_features(root: Path, change: Callable[[np.ndarray], np.ndarray], position: str) -> Expected:
    """The features replaced by ``change(features)``, saved as `np.save` writes them."""
    path = root / "test_ims.npy"
    np.save(path, change(np.load(path)), allow_pickle=True)
    return Expected(path, (position,))


def as_dtype(dtype: str, features: np.ndarray) -> np.ndarray:
    return features.astype(dtype)


def as_ragged(features: np.ndarray) -> np.ndarray:
    """One array per image with a different region count each: an object array."""
    ragged = np.empty(len(features), dtype=object)
    for row, image in enumerate(features):
        ragged[row] = np.repeat(image.reshape(1, -1), row + 1, axis=0)
    return ragged


def reshaped(shape: tuple[int, ...], features: np.ndarray) -> np.ndarray:
    return np.resize(features, shape)


def with_non_finite(rows: tuple[int, ...], value: float, features: np.ndarray) -> np.ndarray:
    """`value` (NaN or ±inf) at one place in each of `rows`."""
    features = features.copy()
    for row in rows:
        features[row].reshape(-1)[row % features[row].size] = value
    return features


def recount_captions(root: Path, count: int) -> Expected:
    """The caption file holding `count` lines (the first ones, repeated if need be)."""
    path = root / "test_caps.txt"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[index % len(lines)] for index in range(count)))
    return Expected(path, (at(f"{count} captions for"),))


def undecodable_line(root: Path, name: str, number: int, column: int, data: bytes) -> Expected:
    """Bytes that are not UTF-8 inside line `number` of ``test_caps.txt`` or ``test_ids.txt``."""
    insert_bytes(root / name, number, column, data)
    return Expected(root / name, (at(f"line {number}:"), "not UTF-8"))


def blank_line(root: Path, name: str, number: int, blank: str) -> Expected:
    """Line `number` of ``test_caps.txt`` or ``test_ids.txt`` emptied (or white space only)."""
    replace_line(root / name, number, blank.encode())
    return Expected(root / name, (at(f"line {number} is empty"),))


# -- karpathy -------------------------------------------------------------------------------

ANNOTATIONS = "dataset_fuzz.json"
IMAGES = "images"
ID_KEYS = ("cocoid", "imgid")


@st.composite
def karpathy_documents(draw) -> dict:
    """Small valid Karpathy documents: 1 to 5 images (at least one in ``test``), PNG or JPEG,
    some below a ``filepath``, ids from ``cocoid``, ``imgid`` or (without either) the file
    name, 1 to 5 captions each."""
    n_images = draw(st.integers(1, 5))
    id_key = draw(st.sampled_from([*ID_KEYS, None]))
    ids = draw(st.lists(st.integers(0, 10**6), min_size=n_images, max_size=n_images, unique=True))
    records = []
    for index in range(n_images):
        record = {
            "filename": f"im{index}.{draw(st.sampled_from(['png', 'jpg']))}",
            "split": draw(st.sampled_from(["test", "train", "val", "restval"])),
            "sentences": [{"raw": caption, "tokens": caption.split()} for caption in draw(st.lists(captions, min_size=1, max_size=5))],
        }
        if draw(st.booleans()):
            record["filepath"] = draw(st.sampled_from(["", "val2014"]))
        if id_key is not None:
            record[id_key] = ids[index] if draw(st.booleans()) else str(ids[index])
        records.append(record)
    records[draw(st.integers(0, n_images - 1))]["split"] = "test"
    return {"dataset": "fuzz", "images": records}


def image_path(root: Path, record: dict) -> Path:
    return root / IMAGES / record.get("filepath", "") / record["filename"]


def write_karpathy(root: Path, document: dict) -> Path:
    """`document` as ``root/dataset_fuzz.json`` (UTF-8, one key per line), each image a small
    picture under ``root/images``; returns the annotation file."""
    for index, record in enumerate(document["images"]):
        path = image_path(root, record)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 8), (37 * index % 256, 90, 200)).save(path)
    return write_document(root, document)


def write_document(root: Path, document: object) -> Path:
    path = root / ANNOTATIONS
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def edit_document(root: Path, change: Callable[[dict], tuple[str, ...]]) -> Expected:
    """The annotation file rewritten after ``change(document)``, which returns the positions."""
    path = root / ANNOTATIONS
    document = json.loads(path.read_text(encoding="utf-8"))
    positions = change(document)
    write_document(root, document)
    return Expected(path, positions)


def loaded_indices(document: dict) -> list[int]:
    """The records a ``test`` load reads (the driver checks their image files)."""
    return [index for index, record in enumerate(document["images"]) if record["split"] == "test"]


def without_key(index: int, key: str, sentence: int | None, document: dict) -> tuple[str, ...]:
    """Key `key` dropped from ``images[index]``, or from its ``sentences[sentence]``."""
    record = document["images"][index]
    if sentence is None:
        del record[key]
        return (at(f"images[{index}]"), f"missing key '{key}'")
    del record["sentences"][sentence][key]
    return (at(f"images[{index}]"), at(f"sentences[{sentence}]"), f"missing key '{key}'")


def without_images(document: dict) -> tuple[str, ...]:
    """The ``images`` list renamed: a document of something else."""
    document["imgs"] = document.pop("images")
    return ("'images' list",)


def with_value(index: int, key: str, sentence: int | None, value: object, document: dict) -> tuple[str, ...]:
    """``images[index][key]`` (or its ``sentences[sentence][key]``) set to a value of the wrong type."""
    record = document["images"][index]
    if sentence is None:
        record[key] = value
        return (at(f"images[{index}]"), f"'{key}'")
    record["sentences"][sentence][key] = value
    return (at(f"images[{index}]"), at(f"sentences[{sentence}]"), key)


def with_sentence(index: int, sentence: int, value: object, document: dict) -> tuple[str, ...]:
    """``images[index].sentences[sentence]`` replaced by a non-object."""
    document["images"][index]["sentences"][sentence] = value
    return (at(f"images[{index}]"), at(f"sentences[{sentence}]"))


def with_record(index: int, value: object, document: dict) -> tuple[str, ...]:
    """``images[index]`` replaced by a non-object."""
    document["images"][index] = value
    return (at(f"images[{index}]"), "expected an object")


def duplicated(source: int, copy: int, document: dict) -> tuple[str, ...]:
    """``images[copy]`` made the same image as ``images[source]`` (source < copy): its id, or
    without ids its file."""
    original, record = document["images"][source], document["images"][copy]
    keys = [key for key in ID_KEYS if key in original] or ["filepath", "filename"]
    for key in keys:
        record.pop(key, None)
        if key in original:
            record[key] = original[key]
    return (at(f"images[{copy}]"), at(f"images[{source}]"), "duplicate")


def missing_image(root: Path, index: int) -> Expected:
    """The image file of ``images[index]`` (a test image) deleted."""
    document = json.loads((root / ANNOTATIONS).read_text(encoding="utf-8"))
    path = image_path(root, document["images"][index])
    path.unlink()
    return Expected(root / ANNOTATIONS, (at(f"images[{index}]"), re.escape(str(path)), "missing"))


def broken_image(root: Path, index: int, content: Callable[[bytes], bytes]) -> Expected:
    """The image file of ``images[index]`` (a test image) replaced by ``content(its bytes)``."""
    document = json.loads((root / ANNOTATIONS).read_text(encoding="utf-8"))
    path = image_path(root, document["images"][index])
    path.write_bytes(content(path.read_bytes()))
    return Expected(path)


def cut_to(keep: int, data: bytes) -> bytes:
    return data[: min(keep, len(data) - 1)]


def replaced_by(new: bytes, data: bytes) -> bytes:
    return new


def truncate_document(root: Path, keep: int) -> Expected:
    """The annotation file cut to its first `keep` characters (before its last one)."""
    path = root / ANNOTATIONS
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: min(keep, len(text) - 1)], encoding="utf-8")
    return Expected(path, (r"invalid JSON at line \d+",))


def undecodable_document(root: Path, number: int, column: int, data: bytes) -> Expected:
    """Bytes that are not UTF-8 inside line `number` of the annotation file."""
    path = root / ANNOTATIONS
    insert_bytes(path, number, column, data)
    return Expected(path, (at(f"line {number}:"), "not UTF-8"))
