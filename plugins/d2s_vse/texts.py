"""D2S-VSE's dense descriptions as a text source (docs/methods/d2s-vse.md): one long text per image.

The paper generates one LLaVA description ("Describe this image in detail.") per training image
and trains on it: stage 1 pairs images with these dense texts, stage 2 feeds them to the frozen
teacher. `dense-text` finds that text for every image of a split, from the first of:

1. ``path``: a JSON-lines file, the public code's layout (``{dataset}_{split}.jsonl``): one
   object per line with the text under ``"text"``. Lines without an ``"image_id"`` follow the
   split's image order (the code's ``train_ids`` order: line k is image k); lines that carry
   ``"image_id"`` are matched to the split's image ids instead (any order, other images' lines
   ignored). ``{split}`` in the path becomes the split's name.
2. the dataset: a split may carry its own dense text (`RetrievalSplit.image_texts`, under the
   name ``from_dataset``).
3. the stand-in (``fallback = "siblings"``): the image's own captions, each made a sentence and
   joined into one paragraph, in dataset order. It needs no generator and runs on any dataset
   (the embedded ``coco-demo`` included), but it holds exactly what the captions hold: no detail
   the captions miss. The pipeline, the two stages and the distillation run as in the paper; the
   paper's gain comes from the dense text knowing more than the captions, which this stand-in
   cannot reproduce. ``fallback = "error"`` refuses to run without real dense text.

The harness reads a text source on the training split only; evaluation never sees dense text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from harness.errors import UserError
from harness.interfaces import RetrievalSplit


class DenseText:
    """`dense-text`: one dense description per image (see the module docstring for the order).

    Options:
        path: JSON-lines file of dense texts; ``{split}`` is replaced by the split name. Relative
            paths are relative to the directory `itr` runs from.
        text_field: the key holding the text in each line (the code: ``text``).
        id_field: the key that, if present on every line, names the image instead of the line order.
        from_dataset: the name under which a dataset's split carries dense text.
        fallback: without a file or dataset text, ``siblings`` (the captions stand-in) or ``error``.
        max_words: keep the first N words of every text (the code's stage-1 file is a version cut
            to about 200, ``*_short200.jsonl``); None keeps everything.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        text_field: str = "text",
        id_field: str = "image_id",
        from_dataset: str = "dense",
        fallback: Literal["siblings", "error"] = "siblings",
        max_words: int | None = None,
    ) -> None:
        if max_words is not None and max_words < 1:
            raise UserError(f"dense-text: max_words must be at least 1 (got {max_words})")
        self.path = path
        self.text_field = text_field
        self.id_field = id_field
        self.from_dataset = from_dataset
        self.fallback = fallback
        self.max_words = max_words

    def image_texts(self, split: RetrievalSplit) -> list[str]:
        """One text per image of `split`, in image order."""
        if self.path is not None:
            texts = self._read_file(Path(self.path.replace("{split}", split.split)).expanduser(), split)
        elif self.from_dataset in split.image_texts:
            texts = list(split.image_texts[self.from_dataset])
            if len(texts) != split.n_images:
                raise UserError(
                    f"dataset {split.dataset} split '{split.split}': {len(texts)} '{self.from_dataset}' texts "
                    f"for {split.n_images} images"
                )
        elif self.fallback == "siblings":
            texts = sibling_paragraphs(split)
        else:
            raise UserError(
                f"dataset {split.dataset} split '{split.split}' carries no '{self.from_dataset}' text and "
                "dense-text has no path; set the text source's path to a JSON-lines file of dense "
                "descriptions, or fallback = \"siblings\" for the captions stand-in"
            )
        return [self._cut(text) for text in texts]

    def _cut(self, text: str) -> str:
        return text if self.max_words is None else " ".join(text.split()[: self.max_words])

    def _read_file(self, path: Path, split: RetrievalSplit) -> list[str]:
        records = _read_json_lines(path, self.text_field)
        with_id = [self.id_field in record for _, record in records]
        if records and all(with_id):
            return self._by_id(path, records, split)
        if any(with_id):
            line = records[with_id.index(False)][0]
            raise UserError(f"{path}:{line}: no '{self.id_field}'; either every line names its image or none does")
        if len(records) != split.n_images:
            raise UserError(
                f"{path}: {len(records)} texts for the {split.n_images} images of split '{split.split}'; "
                f"without '{self.id_field}' fields, line k is image k of the split"
            )
        return [record[self.text_field] for _, record in records]

    def _by_id(self, path: Path, records: list[tuple[int, dict]], split: RetrievalSplit) -> list[str]:
        by_id: dict[str, str] = {}
        for line, record in records:
            image_id = str(record[self.id_field])
            if image_id in by_id:
                raise UserError(f"{path}:{line}: image {image_id!r} has a second text")
            by_id[image_id] = record[self.text_field]
        missing = [image_id for image_id in split.image_ids if image_id not in by_id]
        if missing:
            raise UserError(
                f"{path}: no text for {len(missing)} of the {split.n_images} images of split '{split.split}'; "
                f"first: {missing[0]!r}"
            )
        return [by_id[image_id] for image_id in split.image_ids]


def _read_json_lines(path: Path, text_field: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; each must hold a string `text_field`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such dense-text file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read dense-text file ({exc})") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise UserError(f"{path}:{number}: expected an object with a string '{text_field}'")
        records.append((number, record))
    return records


def as_sentence(caption: str) -> str:
    """A caption stripped and ended with a full stop unless it already ends a sentence."""
    caption = caption.strip()
    return caption if not caption or caption[-1] in ".!?" else caption + "."


def sibling_paragraphs(split: RetrievalSplit) -> list[str]:
    """The captions stand-in: every image's captions as sentences of one paragraph, in order."""
    paragraphs: list[list[str]] = [[] for _ in range(split.n_images)]
    for caption, image in zip(split.captions, split.image_of_caption.tolist()):
        paragraphs[image].append(as_sentence(caption))
    return [" ".join(sentences) for sentences in paragraphs]
