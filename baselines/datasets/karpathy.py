"""Karpathy-split caption files (``dataset_coco.json``, ``dataset_flickr30k.json``, ...).

The layout every image-text retrieval paper uses for raw images: a JSON document whose ``images``
list has, per image, ``filename`` (plus ``filepath`` for COCO), ``split`` (train / val / test /
restval) and ``sentences`` with the ``raw`` caption text. Captions keep dataset order, so the
caption -> image mapping is explicit rather than the positional "5 per image" rule. An image's
id is its ``cocoid`` (else ``imgid``, else its file name); caption ids come from a COCO captions
file when one is given (``captions_json``).
"""

from __future__ import annotations

import json
from pathlib import Path

from baselines.datasets.captioned_images import CaptionedImage, retrieval_split, utf8_text
from baselines.datasets.coco_captions import with_caption_ids
from harness.errors import UserError
from harness.interfaces import RetrievalSplit

SPLIT_ALIASES = {"dev": "val"}
ID_KEYS = ("cocoid", "imgid")
"""The keys an image's id is read from, the first present; without either, its file name is the id."""


def karpathy(
    *, annotations: str, image_root: str, name: str | None = None, restval_in_train: bool = True, captions_json: str | None = None
) -> KarpathyDataset:
    """The ``karpathy`` dataset factory (registered as ``karpathy``).

    Args:
        annotations: path of the ``dataset_*.json`` file.
        image_root: folder the ``filepath/filename`` of each image is relative to.
        name: the dataset's name in results and messages (default: the JSON file's stem).
        restval_in_train: count ``restval`` images as training images (the usual COCO recipe).
        captions_json: a COCO ``captions_*.json`` file: each caption's annotation id is matched
            from it (`baselines.datasets.coco_captions`), for the eccv-caption and cxc protocols.
    """
    annotations_path = Path(annotations).expanduser()
    return KarpathyDataset(
        name or annotations_path.stem,
        annotations_path,
        Path(image_root).expanduser(),
        restval_in_train=restval_in_train,
        captions_json=Path(captions_json).expanduser() if captions_json else None,
    )


class KarpathyDataset:
    """Reads one Karpathy JSON file and its image folder.

    The whole document is checked when first read (every record an object with ``split``,
    ``filename`` and at least one ``sentences[].raw`` with text, ids an integer or a string, no
    image listed twice), that the image files of a split exist when the split is loaded (their
    contents are checked by the driver's preflight, `harness.image_files`), so a broken file
    stops the run before any training, with a message naming the record (``images[i]``).

    Args:
        name: the dataset's name in results.
        annotations: path of the ``dataset_*.json`` file.
        image_root: folder the ``filepath/filename`` of each image is relative to.
        restval_in_train: count ``restval`` images as training images (the usual COCO recipe).
        captions_json: a COCO captions file the caption ids are matched from, or None.
    """

    def __init__(
        self, name: str, annotations: Path, image_root: Path, *, restval_in_train: bool = True, captions_json: Path | None = None
    ) -> None:
        self.name = name
        self.annotations = Path(annotations)
        self.image_root = Path(image_root)
        self.restval_in_train = restval_in_train
        self.captions_json = captions_json
        self._images: list[dict] | None = None

    def _records(self) -> list[dict]:
        if self._images is None:
            try:
                data = self.annotations.read_bytes()
            except FileNotFoundError:
                raise UserError(f"{self.annotations}: annotation file not found") from None
            except OSError as exc:
                raise UserError(f"{self.annotations}: cannot be read ({exc.strerror or exc})") from None
            try:
                document = json.loads(utf8_text(data, str(self.annotations)))
            except json.JSONDecodeError as exc:
                raise UserError(f"{self.annotations}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
            images = document.get("images") if isinstance(document, dict) else None
            if not isinstance(images, list):
                raise UserError(f"{self.annotations}: expected a JSON object with an 'images' list")
            for index, record in enumerate(images):
                self._check_record(index, record)
            self._check_unique(images)
            self._images = images
        return self._images

    def _check_record(self, index: int, record: object) -> None:
        """Raise naming ``images[index]`` (and its file name) if the record cannot be loaded.

        Names must be printable, as they are printed in one-line messages and joined into paths;
        a caption must have text, as the text encoders cannot encode an empty one.
        """
        where = f"{self.annotations}: images[{index}]"
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected an object, got {type(record).__name__}")
        for key in ("filename", "split"):
            _check_name(record, key, where)
        where = f"{where} ({record['filename']})"
        if "filepath" in record:
            _check_name(record, "filepath", where, may_be_empty=True)
        for key in ID_KEYS:
            value = record.get(key)
            if key in record and (isinstance(value, bool) or not isinstance(value, (int, str)) or value == ""):
                raise UserError(f"{where}: key '{key}' must be an integer or a non-empty string, got {value!r}")
        if "sentences" not in record:
            raise UserError(f"{where}: missing key 'sentences' (a list of objects with 'raw')")
        sentences = record["sentences"]
        if not isinstance(sentences, list):
            raise UserError(f"{where}: key 'sentences' must be a list of objects with 'raw', got {type(sentences).__name__}")
        if not sentences:
            raise UserError(f"{where}: no sentences; every image needs at least one caption")
        for number, sentence in enumerate(sentences):
            if not isinstance(sentence, dict):
                raise UserError(f"{where}: sentences[{number}] must be an object with 'raw', got {type(sentence).__name__}")
            if "raw" not in sentence:
                raise UserError(f"{where}: sentences[{number}] is missing key 'raw' (the caption text)")
            if not isinstance(sentence["raw"], str):
                raise UserError(f"{where}: sentences[{number}].raw must be a string (the caption text), got {type(sentence['raw']).__name__}")
            if not sentence["raw"].strip():
                raise UserError(f"{where}: sentences[{number}].raw is empty; every caption needs text")

    def _check_unique(self, images: list[dict]) -> None:
        """Raise naming the later of two records that are one image: the same image id, or
        (without ids) the same file. Such a pair would be scored as two images, and across
        splits it puts a test image into training."""
        first: dict[str, int] = {}
        for index, record in enumerate(images):
            identity = _identity(record)
            if identity in first:
                raise UserError(
                    f"{self.annotations}: images[{index}] ({record['filename']}): duplicate {identity}, "
                    f"also images[{first[identity]}]'s"
                )
            first[identity] = index

    def _split_of(self, record: dict) -> str:
        split = record["split"]
        return "train" if split == "restval" and self.restval_in_train else split

    def splits(self) -> list[str]:
        return sorted({self._split_of(record) for record in self._records()})

    def source(self, split: str) -> str:
        """Where the data lies, for the MLflow run input: the annotation file."""
        return str(self.annotations.resolve())

    def load(self, split: str) -> RetrievalSplit:
        """Read one split: every image file must exist (all are checked, the first missing named)."""
        requested, split = split, SPLIT_ALIASES.get(split, split)
        indexed = [(index, record) for index, record in enumerate(self._records()) if self._split_of(record) == split]
        if not indexed:
            raise UserError(
                f"{self.annotations}: no images in split '{requested}'; splits present: {', '.join(self.splits())}"
            )
        paths = [self.image_root / _relative_path(record) for _, record in indexed]
        missing = [(index, path) for (index, _), path in zip(indexed, paths) if not path.is_file()]
        if missing:
            index, path = missing[0]
            raise UserError(
                f"{self.annotations}: {len(missing)} of {len(paths)} image files of split '{split}' are missing "
                f"under {self.image_root}; first: {path} (images[{index}])"
            )
        images = [
            CaptionedImage(
                image_id=_image_id(record),
                path=path,
                captions=tuple(sentence["raw"] for sentence in record["sentences"]),
            )
            for (_, record), path in zip(indexed, paths)
        ]
        loaded = retrieval_split(self.name, split, images)
        return with_caption_ids(loaded, self.captions_json) if self.captions_json else loaded


def _check_name(record: dict, key: str, where: str, *, may_be_empty: bool = False) -> None:
    """Raise naming `key` unless ``record[key]`` is a printable string (non-empty unless
    `may_be_empty`)."""
    if key not in record:
        raise UserError(f"{where}: missing key '{key}' (a string)")
    value = record[key]
    if not isinstance(value, str):
        raise UserError(f"{where}: key '{key}' must be a string, got {type(value).__name__}")
    if not value and not may_be_empty:
        raise UserError(f"{where}: key '{key}' is empty")
    if not value.isprintable():
        raise UserError(f"{where}: key '{key}' holds a control character: {value!r}")


def _relative_path(record: dict) -> Path:
    """The record's image file below the image root: ``filepath/filename``."""
    return Path(record.get("filepath", "")) / record["filename"]


def _image_id(record: dict) -> str:
    """The record's image id: its first `ID_KEYS` value, else its file name."""
    return str(next((record[key] for key in ID_KEYS if key in record), record["filename"]))


def _identity(record: dict) -> str:
    """What makes two records one image, as a message names it: the id, or without one the file."""
    if any(key in record for key in ID_KEYS):
        return f"image id {_image_id(record)!r}"
    return f"file {str(_relative_path(record))!r}"
