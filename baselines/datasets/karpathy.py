"""Karpathy-split caption files (``dataset_coco.json``, ``dataset_flickr30k.json``, ...).

The layout every image-text retrieval paper uses for raw images: a JSON document whose ``images``
list has, per image, ``filename`` (plus ``filepath`` for COCO), ``split`` (train / val / test /
restval) and ``sentences`` with the ``raw`` caption text. Captions keep dataset order, so the
caption -> image mapping is explicit rather than the positional "5 per image" rule.
"""

from __future__ import annotations

import json
from pathlib import Path

from baselines.datasets.captioned_images import CaptionedImage, retrieval_split
from harness.errors import UserError
from harness.interfaces import RetrievalSplit

SPLIT_ALIASES = {"dev": "val"}


def karpathy(*, annotations: str, image_root: str, name: str | None = None, restval_in_train: bool = True) -> KarpathyDataset:
    """The ``karpathy`` dataset factory (registered as ``karpathy``).

    Args:
        annotations: path of the ``dataset_*.json`` file.
        image_root: folder the ``filepath/filename`` of each image is relative to.
        name: the dataset's name in results and messages (default: the JSON file's stem).
        restval_in_train: count ``restval`` images as training images (the usual COCO recipe).
    """
    annotations_path = Path(annotations).expanduser()
    return KarpathyDataset(
        name or annotations_path.stem, annotations_path, Path(image_root).expanduser(), restval_in_train=restval_in_train
    )


class KarpathyDataset:
    """Reads one Karpathy JSON file and its image folder.

    The whole document is checked when first read (every record an object with ``split``,
    ``filename`` and at least one ``sentences[].raw``), the image files of a split when the split
    is loaded, so a broken file stops the run before any training.

    Args:
        name: the dataset's name in results.
        annotations: path of the ``dataset_*.json`` file.
        image_root: folder the ``filepath/filename`` of each image is relative to.
        restval_in_train: count ``restval`` images as training images (the usual COCO recipe).
    """

    def __init__(self, name: str, annotations: Path, image_root: Path, *, restval_in_train: bool = True) -> None:
        self.name = name
        self.annotations = Path(annotations)
        self.image_root = Path(image_root)
        self.restval_in_train = restval_in_train
        self._images: list[dict] | None = None

    def _records(self) -> list[dict]:
        if self._images is None:
            try:
                document = json.loads(self.annotations.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise UserError(f"{self.annotations}: annotation file not found") from None
            except json.JSONDecodeError as exc:
                raise UserError(f"{self.annotations}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
            images = document.get("images") if isinstance(document, dict) else None
            if not isinstance(images, list):
                raise UserError(f"{self.annotations}: expected a JSON object with an 'images' list")
            for index, record in enumerate(images):
                self._check_record(index, record)
            self._images = images
        return self._images

    def _check_record(self, index: int, record: object) -> None:
        """Raise naming ``images[index]`` (and its file name) if the record cannot be loaded."""
        where = f"{self.annotations}: images[{index}]"
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected an object, got {type(record).__name__}")
        for key in ("filename", "split"):
            if not isinstance(record.get(key), str):
                raise UserError(f"{where}: missing key '{key}' (a string)")
        where = f"{where} ({record['filename']})"
        sentences = record.get("sentences")
        if not isinstance(sentences, list):
            raise UserError(f"{where}: missing key 'sentences' (a list of objects with 'raw')")
        if not sentences:
            raise UserError(f"{where}: no sentences; every image needs at least one caption")
        for number, sentence in enumerate(sentences):
            if not isinstance(sentence, dict) or not isinstance(sentence.get("raw"), str):
                raise UserError(f"{where}: sentences[{number}] is missing key 'raw' (the caption text)")

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
        records = [r for r in self._records() if self._split_of(r) == split]
        if not records:
            raise UserError(
                f"{self.annotations}: no images in split '{requested}'; splits present: {', '.join(self.splits())}"
            )
        paths = [self.image_root / record.get("filepath", "") / record["filename"] for record in records]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise UserError(
                f"{self.annotations}: {len(missing)} of {len(paths)} image files of split '{split}' are missing "
                f"under {self.image_root}; first: {missing[0]}"
            )
        images = [
            CaptionedImage(
                image_id=str(record.get("cocoid", record.get("imgid", record["filename"]))),
                path=path,
                captions=tuple(sentence["raw"] for sentence in record["sentences"]),
            )
            for record, path in zip(records, paths)
        ]
        return retrieval_split(self.name, split, images)
