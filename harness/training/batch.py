"""What a loss may see of a training step beyond its score matrix (`Loss.reads_batch`).

Most losses need only the scores and the image ids. Some need more: a warm-up needs to know
where the step is in its stage, and a distillation loss needs the student's embeddings, the
model, and per-item inputs the score matrix does not carry (a teacher's input text for each
caption's image, D2S-VSE). The trainer hands those losses a `TrainingBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from harness.embeddings import Embeddings


@dataclass(frozen=True)
class TrainingBatch:
    """One training step, as a loss with ``reads_batch = True`` receives it.

    Attributes:
        stage: the stage's name.
        epoch: the epoch within the stage, 0 for its first (a ``restart = false`` stage counts
            from its own start too).
        step: the batch within the epoch, 0-based.
        steps: batches in this epoch (with `step`, the epoch's progress, e.g. for a linear
            warm-up ramp).
        image_ids: int64 [B], the dataset image index of each item.
        images: the image embeddings of the step (Tensor [B, D] or `VectorSets`).
        texts: the text embeddings of the items (Tensor [B, D] or `VectorSets`), without any
            generated negatives: the pass's real texts only.
        model: the `RetrievalModel` being trained.
        image_texts: ``image_texts(name)`` -> the prepared inputs of the job's text source
            `name` ({input: Tensor [B, ...]} on the step's device), row k for item k's image.
    """

    stage: str
    epoch: int
    step: int
    steps: int
    image_ids: torch.Tensor
    images: Embeddings
    texts: Embeddings
    model: Any
    image_texts: Callable[[str], Mapping[str, torch.Tensor]]
