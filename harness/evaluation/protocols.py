"""The built-in evaluation protocols: which slices of the test score matrix are ranked, and how
they average.

The published tables use three protocols; comparing numbers across them is the field's most
common mistake, so a protocol checks the split it is given:

- ``coco-1k``: the 5,000 COCO test images in 5 folds of 1,000 (by image order); each fold is
  ranked on its own; every metric is the mean over folds and rSum is recomputed from the means
  (equal to the mean of fold rSums; the "rsum" that SCAN's and VSE++'s 5-fold evaluation code
  prints sums the last fold's recalls instead, and is wrong).
- ``coco-5k``: all 5,000 images against all 25,000 captions.
- ``f30k-1k``: the 1,000 Flickr30K test images.
- ``full``: whatever the split holds, unchecked (small or custom datasets).

They are registered through ``register_protocols`` like any plugin's (`harness.evaluation.plugin`);
a plugin adds its own protocol by registering an object with the same three methods
(`harness.interfaces.EvaluationProtocol`). A protocol whose positives are keyed by dataset ids
(``eccv-caption``, ``cxc``: `harness.evaluation.extended`) also has ``for_split``
(`harness.interfaces.ReadsSplitIds`), and `bind_protocols` hands it the test split first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from harness.errors import UserError
from harness.interfaces import EvaluationProtocol, ReadsSplitIds, RetrievalSplit
from harness.metrics import RECALLS, RSUM, metrics_from_ranks, positive_ranks


def image_folds(image_of_caption: np.ndarray, n_images: int, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image indices, caption indices) of each of `folds` consecutive, near-equal image folds;
    a caption belongs to its image's fold. One fold: the whole split."""
    image_of_caption = np.asarray(image_of_caption)
    return [
        (images, np.flatnonzero(np.isin(image_of_caption, images)))
        for images in np.array_split(np.arange(n_images), folds)
    ]


def bind_protocols(protocols: Mapping[str, EvaluationProtocol], split: RetrievalSplit) -> dict[str, EvaluationProtocol]:
    """The protocols ready to rank `split`: each that reads dataset ids (`ReadsSplitIds`, e.g.
    ECCV Caption) bound to the split's ids, the others as they are."""
    return {name: protocol.for_split(split) if isinstance(protocol, ReadsSplitIds) else protocol for name, protocol in protocols.items()}


@dataclass(frozen=True)
class RecallAtK:
    """Recall@K, median and mean rank of both directions, over consecutive folds of images.

    Attributes:
        name: the key in experiment files and MLflow metric names (``coco-1k/rsum``).
        n_images: the number of test images the protocol is defined on (None: any).
        folds: consecutive equal folds of images ranked separately and averaged.
        captions_per_image: required captions per image (None: any).
    """

    name: str
    n_images: int | None = None
    folds: int = 1
    captions_per_image: int | None = None

    def check(self, split: RetrievalSplit) -> None:
        """Refuse a split the protocol is not defined on, naming the dataset and split."""
        where = f"protocol '{self.name}' on {split.dataset}:{split.split}"
        if self.n_images is not None and split.n_images != self.n_images:
            raise UserError(f"{where}: needs {self.n_images} test images, the split has {split.n_images}")
        if self.captions_per_image is not None:
            counts = np.bincount(split.image_of_caption, minlength=split.n_images)
            if (counts != self.captions_per_image).any():
                bad = int(np.flatnonzero(counts != self.captions_per_image)[0])
                raise UserError(
                    f"{where}: needs {self.captions_per_image} captions per image, image {split.image_ids[bad]} has {counts[bad]}"
                )

    def query_ranks(self, scores: np.ndarray, image_of_caption: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-query ranks as `metrics` counts them (optimistic ties, within each fold):
        ``(i2t_rank, i2t_image, t2i_rank)``, t2i in caption order."""
        image_of_caption = np.asarray(image_of_caption)
        i2t_ranks, i2t_images = [], []
        t2i_rank = np.empty(len(image_of_caption), dtype=np.int64)
        for images, captions in image_folds(image_of_caption, scores.shape[0], self.folds):
            fold_i2t, t2i_rank[captions] = positive_ranks(
                scores[images[0] : images[-1] + 1][:, captions], image_of_caption[captions] - images[0]
            )
            i2t_ranks.append(fold_i2t)
            i2t_images.append(images[np.bincount(image_of_caption[captions] - images[0], minlength=len(images)) > 0])
        return np.concatenate(i2t_ranks), np.concatenate(i2t_images), t2i_rank

    def metrics(self, scores: np.ndarray, image_of_caption: np.ndarray, ties: str = "optimistic") -> dict[str, float]:
        """Metrics of the protocol from the split's score matrix [n_images, n_captions]."""
        n_images = scores.shape[0]
        if self.folds == 1:
            return metrics_from_ranks(*positive_ranks(scores, image_of_caption, ties=ties))
        per_fold = []
        for images, captions in image_folds(image_of_caption, n_images, self.folds):
            fold_scores = scores[images[0] : images[-1] + 1][:, captions]
            per_fold.append(
                metrics_from_ranks(*positive_ranks(fold_scores, image_of_caption[captions] - images[0], ties=ties))
            )
        means = {key: float(np.mean([fold[key] for fold in per_fold])) for key in per_fold[0]}
        means[RSUM] = sum(means[key] for key in RECALLS)
        return means


def full() -> RecallAtK:
    """Whatever the test split holds, unchecked."""
    return RecallAtK("full")


def coco_1k() -> RecallAtK:
    """The 5,000 COCO test images in 5 folds of 1,000, averaged."""
    return RecallAtK("coco-1k", n_images=5000, folds=5, captions_per_image=5)


def coco_5k() -> RecallAtK:
    """All 5,000 COCO test images against their 25,000 captions."""
    return RecallAtK("coco-5k", n_images=5000, captions_per_image=5)


def f30k_1k() -> RecallAtK:
    """The 1,000 Flickr30K test images against their 5,000 captions."""
    return RecallAtK("f30k-1k", n_images=1000, captions_per_image=5)
