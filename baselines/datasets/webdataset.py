"""``webdataset``: tar shards of images and their captions, the layout of CLIP_benchmark's test sets.

A shard is a tar archive (plain or compressed) whose members form samples by key, the webdataset
convention: a member ``dir/s0000042.webp`` belongs to sample ``dir/s0000042`` (its path up to the
first dot of its file name), and the members of a sample follow each other. A sample holds

- one image: ``.jpg``, ``.jpeg``, ``.png`` or ``.webp``;
- its captions: ``.txt``, one caption per line (CLIP_benchmark writes an image's captions joined
  by newlines), or, when there is no ``.txt``, ``.json``: a string, a list of strings, or an
  object with ``captions`` (a list) or ``caption`` (a string).

Other members (``.cls``, metadata) are ignored. Each split is a path or brace pattern
(``data/wds_flickr30k/test/{0..4}.tar``), or a list of them, read in order.

Shards are streamed (`tarfile` mode ``r|*``): one pass, member after member, never seeking, so
compressed shards work and nothing is unpacked beside them. The captions stay in memory; each
image's bytes go to the `ImageStore`, whose files are what the image backbones read.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from baselines.datasets.captioned_images import (
    CaptionedImage,
    caption_list,
    retrieval_split,
)
from baselines.datasets.image_store import ImageStore
from harness.errors import UserError, closest
from harness.interfaces import RetrievalSplit

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTENSIONS = ("txt", "json")


def webdataset(
    *,
    splits: dict[str, str | list[str]],
    name: str = "webdataset",
    image_store: str | None = None,
) -> WebDataset:
    """The ``webdataset`` dataset factory (registered as ``webdataset``).

    Args:
        splits: split name -> shard path or brace pattern, or a list of them, e.g.
            ``{test = "data/wds_flickr30k/test/{0..4}.tar"}``.
        name: the dataset's name in results and messages.
        image_store: the folder the images are kept in (default: ``images/`` in the feature cache).
    """
    patterns = {
        split: [value] if isinstance(value, str) else list(value)
        for split, value in splits.items()
    }
    if not patterns or not all(patterns.values()):
        raise UserError(
            "dataset 'webdataset': option splits needs at least one shard pattern per split"
        )
    store = ImageStore(Path(image_store) if image_store is not None else None)
    return WebDataset(name, patterns, store)


class WebDataset:
    """The splits of one set of webdataset shards (see the module docstring).

    Args:
        name: the dataset's name in results.
        patterns: split name -> its shard paths or brace patterns, in reading order.
        store: where the images of the shards are kept as files.
    """

    def __init__(
        self, name: str, patterns: Mapping[str, list[str]], store: ImageStore
    ) -> None:
        self.name = name
        self.patterns = dict(patterns)
        self.store = store

    def splits(self) -> list[str]:
        return list(self.patterns)

    def source(self, split: str) -> str:
        """Where a split's data lies, for the MLflow run input: its first shard pattern."""
        return str(Path(self.patterns[split][0]).expanduser().resolve())

    def load(self, split: str) -> RetrievalSplit:
        """Stream every shard of `split`; a broken shard or sample is one `UserError` naming it."""
        if split not in self.patterns:
            raise UserError(
                f"dataset '{self.name}': no split '{split}'{closest(split, self.patterns)}; "
                f"option splits names {', '.join(self.patterns)}"
            )
        images: list[CaptionedImage] = []
        first_shard_of: dict[str, Path] = {}
        for shard in self._shards(split):
            for sample in _samples(shard):
                if sample.key in first_shard_of:
                    raise UserError(
                        f"{shard}: sample '{sample.key}' appears twice (first in {first_shard_of[sample.key]})"
                    )
                first_shard_of[sample.key] = shard
                images.append(self._captioned(shard, sample))
        if not images:
            raise UserError(
                f"dataset '{self.name}': split '{split}' has no samples in {', '.join(self.patterns[split])}"
            )
        return retrieval_split(self.name, split, images)

    def _shards(self, split: str) -> list[Path]:
        shards = [
            Path(path).expanduser()
            for pattern in self.patterns[split]
            for path in expand_braces(pattern)
        ]
        for shard in shards:
            if not shard.is_file():
                raise UserError(
                    f"{shard}: shard not found (split '{split}' of dataset '{self.name}')"
                )
        return shards

    def _captioned(self, shard: Path, sample: _Sample) -> CaptionedImage:
        """The sample's image, kept in the store, and its captions; a sample missing either is refused."""
        where = f"{shard}: sample '{sample.key}'"
        found = [
            extension for extension in IMAGE_EXTENSIONS if extension in sample.members
        ]
        if len(found) != 1:
            problem = (
                "no image" if not found else f"{len(found)} images ({', '.join(found)})"
            )
            raise UserError(
                f"{where} has {problem}; expected one .jpg, .jpeg, .png or .webp member"
            )
        caption_extension = next(
            (
                extension
                for extension in CAPTION_EXTENSIONS
                if extension in sample.members
            ),
            None,
        )
        if caption_extension is None:
            raise UserError(f"{where} has no caption; expected a .txt or .json member")
        member = f"{where} ({sample.key}.{caption_extension})"
        captions = _captions(
            sample.members[caption_extension], caption_extension, member
        )
        image = self.store.add(
            sample.members[found[0]], f"{shard}: {sample.key}.{found[0]}"
        )
        return CaptionedImage(sample.key, image, captions)


@dataclass
class _Sample:
    """The members of one sample: extension (lower case) -> bytes."""

    key: str
    members: dict[str, bytes] = field(default_factory=dict)


def _samples(shard: Path) -> Iterator[_Sample]:
    """The samples of a shard in archive order, read in one streaming pass."""
    sample: _Sample | None = None
    try:
        with tarfile.open(shard, mode="r|*") as archive:
            for member in archive:
                path = PurePosixPath(member.name)
                stem, _, extension = path.name.partition(".")
                if (
                    not member.isfile()
                    or extension.lower() not in IMAGE_EXTENSIONS + CAPTION_EXTENSIONS
                ):
                    continue
                key = str(path.with_name(stem))
                if sample is None or key != sample.key:
                    if sample is not None:
                        yield sample
                    sample = _Sample(key)
                sample.members[extension.lower()] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(
            f"{shard}: not a readable tar archive ({str(exc) or type(exc).__name__})"
        ) from None
    if sample is not None:
        yield sample


def _captions(data: bytes, extension: str, where: str) -> tuple[str, ...]:
    """The captions of a ``.txt`` member (one per line) or a ``.json`` member, at least one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    if extension == "txt":
        return caption_list(text.splitlines(), where)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{where}: invalid JSON at line {exc.lineno}: {exc.msg}"
        ) from None
    if isinstance(document, dict):
        if not {"captions", "caption"} & document.keys():
            raise UserError(f"{where}: an object without 'captions' or 'caption'")
        document = document.get("captions", document.get("caption"))
    return caption_list(document, where)


_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"(\d+)\.\.(\d+)")


def expand_braces(pattern: str) -> list[str]:
    """Every path a brace pattern names, in order: ``{0..2}`` counts (zero-padded to the width of
    its first number, as in ``{000..099}``), ``{a,b}`` lists; the first brace varies slowest."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    numbers = _RANGE.fullmatch(match[1])
    if numbers:
        first, last = numbers.groups()
        choices = [
            str(number).zfill(len(first)) for number in range(int(first), int(last) + 1)
        ]
    else:
        choices = match[1].split(",")
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [path for choice in choices for path in expand_braces(head + choice + tail)]
