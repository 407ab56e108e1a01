"""COCO caption annotation ids for a split, matched from a ``captions_*.json`` file.

Karpathy files and the precomp layout carry COCO image ids but not the ids of the captions
(Karpathy's ``sentids`` are its own numbering), and the protocols with extended positives
(ECCV Caption, CxC) name captions by COCO annotation id. COCO's ``captions_train2014.json`` /
``captions_val2014.json`` list every annotation as ``{"id", "image_id", "caption"}``, so each
caption of an image is matched to one annotation of that image with the same normalised text:
lower case, alphanumeric tokens only (precomp captions are tokenised and lower-cased, Karpathy's
``raw`` ones are COCO's text). Identical captions of one image take its matching annotations
in order.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import replace
from functools import cache
from pathlib import Path

from baselines.datasets.captioned_images import utf8_text
from harness.errors import UserError
from harness.interfaces import RetrievalSplit

TOKEN = re.compile(r"[a-z0-9]+")
UNMATCHED_SPLITS = frozenset({"train"})
"""Splits left without caption ids: nothing evaluates them by COCO id, and COCO's Karpathy
training split mixes train2014 and val2014 images, which no single captions file lists."""


def normalised(text: str) -> str:
    """The caption as matching compares it: lower-case alphanumeric tokens joined by spaces."""
    return " ".join(TOKEN.findall(text.lower()))


@cache
def annotations_by_image(path: Path) -> dict[int, list[tuple[str, int]]]:
    """image id -> [(normalised caption, annotation id)] of a COCO captions file, in file order."""
    try:
        document = json.loads(utf8_text(path.read_bytes(), str(path)))
    except FileNotFoundError:
        raise UserError(f"{path}: captions_json file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    annotations = document.get("annotations") if isinstance(document, dict) else None
    if not isinstance(annotations, list):
        raise UserError(f"{path}: expected a COCO captions file: an object with an 'annotations' list")
    by_image: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for index, annotation in enumerate(annotations):
        fields = annotation if isinstance(annotation, dict) else {}
        ids = [fields.get(key) for key in ("id", "image_id")]
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in ids) or not isinstance(fields.get("caption"), str):
            raise UserError(f"{path}: annotations[{index}]: expected an object with integer 'id' and 'image_id' and a string 'caption'")
        by_image[ids[1]].append((normalised(fields["caption"]), ids[0]))
    return dict(by_image)


def with_caption_ids(split: RetrievalSplit, captions_json: str | Path) -> RetrievalSplit:
    """`split` with ``caption_ids``: each caption's COCO annotation id, matched per image
    (`split` as it is for a training split, `UNMATCHED_SPLITS`).

    Raises a one-line `UserError` naming the image and the caption that has no match."""
    if split.split in UNMATCHED_SPLITS:
        return split
    path = Path(captions_json).expanduser()
    annotations = annotations_by_image(path)
    unused: dict[int, list[tuple[str, int]]] = {}
    caption_ids = []
    for caption, image in zip(split.captions, split.image_of_caption.tolist()):
        image_id = split.image_ids[image]
        try:
            coco_id = int(image_id)
        except ValueError:
            raise UserError(f"{path}: {split.dataset}:{split.split} image {image} has id {image_id!r}, not a COCO image id") from None
        if coco_id not in unused:
            unused[coco_id] = list(annotations.get(coco_id, ()))
        text = normalised(caption)
        match = next((index for index, (candidate, _) in enumerate(unused[coco_id]) if candidate == text), None)
        if match is None:
            raise UserError(f"{path}: no unused caption of image {coco_id} matches {split.dataset}:{split.split} caption {caption!r}")
        caption_ids.append(str(unused[coco_id].pop(match)[1]))
    return replace(split, caption_ids=tuple(caption_ids))
