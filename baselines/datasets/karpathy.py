"""Karpathy-split caption files (``dataset_coco.json``, ``dataset_flickr30k.json``, ...).

The layout every image-text retrieval paper uses for raw images: a JSON document whose ``images``
list has, per image, ``filename`` (plus ``filepath`` for COCO), ``split`` (train / val / test /
restval) and ``sentences`` with the ``raw`` caption text. Captions keep dataset order, so the
caption -> image mapping is explicit rather than the positional "5 per image" rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.errors import UserError
from harness.interfaces import RetrievalSplit

SPLIT_ALIASES = {"dev": "val"}


class KarpathyDataset:
    """Reads one Karpathy JSON file and its image folder.

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
            self._images = images
        return self._images

    def _split_of(self, record: dict) -> str:
        split = record.get("split", "")
        return "train" if split == "restval" and self.restval_in_train else split

    def splits(self) -> list[str]:
        return sorted({self._split_of(record) for record in self._records()})

    def load(self, split: str) -> RetrievalSplit:
        split = SPLIT_ALIASES.get(split, split)
        records = [r for r in self._records() if self._split_of(r) == split]
        if not records:
            raise UserError(
                f"{self.annotations}: no images in split '{split}'; splits present: {', '.join(self.splits())}"
            )
        image_ids, paths, captions, image_of_caption = [], [], [], []
        for index, record in enumerate(records):
            where = f"{self.annotations}: image {record.get('imgid', index)}"
            try:
                path = self.image_root / record.get("filepath", "") / record["filename"]
                sentences = [sentence["raw"] for sentence in record["sentences"]]
            except (KeyError, TypeError) as exc:
                raise UserError(f"{where}: missing key {exc} (expected filename and sentences[].raw)") from None
            if not path.is_file():
                raise UserError(f"{where}: image file not found: {path}")
            image_ids.append(str(record.get("cocoid", record.get("imgid", record["filename"]))))
            paths.append(path)
            captions.extend(sentences)
            image_of_caption.extend([index] * len(sentences))
        return RetrievalSplit(
            dataset=self.name,
            split=split,
            image_ids=tuple(image_ids),
            captions=tuple(captions),
            image_of_caption=np.asarray(image_of_caption, dtype=np.int64),
            image_paths=tuple(paths),
        )
