"""A split built from images that each carry their own captions: the shape every raw-image format
(Karpathy JSON, Hugging Face rows, webdataset samples) reads into.

The formats differ in where an image and its captions are stored, not in what a split is, so each
reader lists `CaptionedImage` records and `retrieval_split` flattens them into the harness's
`RetrievalSplit`: captions in image order, each naming its image through ``image_of_caption``.
The checks every caption reader shares (precomp's caption lines included) live here too: caption
text is UTF-8 (`utf8_text`), an image has at least one non-blank caption (`caption_list`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import UserError
from harness.interfaces import RetrievalSplit


@dataclass(frozen=True)
class CaptionedImage:
    """One image file and its captions (at least one), in dataset order."""

    image_id: str
    path: Path
    captions: tuple[str, ...]


def retrieval_split(
    dataset: str, split: str, images: Sequence[CaptionedImage]
) -> RetrievalSplit:
    """The split of `images`: caption c describes image ``image_of_caption[c]`` (int64 [n_captions])."""
    return RetrievalSplit(
        dataset=dataset,
        split=split,
        image_ids=tuple(image.image_id for image in images),
        captions=tuple(caption for image in images for caption in image.captions),
        image_of_caption=np.repeat(
            np.arange(len(images)), [len(image.captions) for image in images]
        ).astype(np.int64),
        image_paths=tuple(image.path for image in images),
    )


def utf8_text(data: bytes, where: str) -> str:
    """`data` decoded as UTF-8; else a `UserError` starting with `where` (the file) that names
    the line of the first bad byte, counted as universal newlines count lines (``\\n``, ``\\r\\n``
    or a lone ``\\r`` ends one), so it is the line number an editor shows."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = 1 + before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")
        raise UserError(f"{where}: line {line}: not UTF-8 text (byte {exc.start})") from None


def caption_list(value: object, where: str) -> tuple[str, ...]:
    """A caption (a string) or a list of them as captions: stripped, blank ones dropped, at least
    one left. Raises a `UserError` starting with `where` (the file, member or cell)."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(
        isinstance(item, str) for item in values
    ):
        raise UserError(
            f"{where}: expected a caption (a string) or a list of strings, got {type(value).__name__}"
        )
    captions = tuple(item.strip() for item in values if item.strip())
    if not captions:
        raise UserError(f"{where}: no caption; every image needs at least one")
    return captions
