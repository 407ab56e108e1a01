"""The composed retrieval model and the per-split tensors it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from harness.capabilities import READS_TEXT_SOURCE, claims
from harness.training.feeds import ImageFeed, as_feed


@dataclass
class SplitInputs:
    """Everything a model reads for one split, indexable by image / caption.

    Attributes:
        image_features: {name: array [n_images, ...]}, numpy (possibly memory-mapped) or
            tensors; or, for an image encoder that reads pixels, a `harness.training.feeds.PixelFeed`.
        text_inputs: {name: Tensor or array [n_captions, ...]} from `TextEncoder.prepare`
            (numpy arrays may be memory-mapped: only the rows of a batch are read).
        image_of_caption: int64 [n_captions].
        captions: the caption strings, for text-level sample generators.
        image_texts: {source: {name: Tensor [n_images, ...]}}, the prepared inputs of each of
            the job's text sources (`prepare_texts`), one row per image; training only.
    """

    image_features: Mapping[str, np.ndarray | torch.Tensor] | ImageFeed
    text_inputs: Mapping[str, np.ndarray | torch.Tensor]
    image_of_caption: torch.Tensor
    captions: Sequence[str] = ()
    image_texts: Mapping[str, Mapping[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def images(self) -> ImageFeed:
        """The images as the trainer and the evaluation read them, batch by batch."""
        return as_feed(self.image_features)

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_captions(self) -> int:
        return len(self.image_of_caption)


def prepare_texts(text_encoder: Any, texts: Sequence[str], source: str) -> dict[str, torch.Tensor]:
    """``text_encoder.prepare(texts)``, telling the encoder the text source (``"captions"`` or a
    text source's name) when it declares `harness.capabilities.ReadsTextSource`."""
    if claims(text_encoder, READS_TEXT_SOURCE):
        return text_encoder.prepare(texts, source=source)
    return text_encoder.prepare(texts)


class RetrievalModel(nn.Module):
    """Image encoder + text encoder + similarity head, as one module to train and checkpoint."""

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.head = head

    def encode_images(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.image_encoder(features)

    def encode_texts(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.text_encoder(inputs)

    def score(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """[n_i, ...] x [n_c, ...] -> [n_i, n_c]."""
        return self.head(images, texts)
