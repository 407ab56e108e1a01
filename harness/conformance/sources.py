"""Where a similarity head's (or a feature-level generator's) inputs come from.

Checked on its own, a head does not say what it scores: global vectors, vector sets, or vector
sets with a global summary. `synthetic_candidates` offers the three kinds and the head's
interface check keeps the first it accepts. Checked inside a method, the inputs are what the
method's own encoders make of synthetic features and captions (`encoded_sources`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from harness.conformance.synthetic import SyntheticData
from harness.embeddings import Embeddings
from harness.config.job_config import CAPTIONS
from harness.training.model import gather, prepare_texts

DEFAULT_DIM = 32
"""Embedding size of synthetic head inputs when the head has no ``embed_dim`` option."""


@dataclass(frozen=True)
class EmbeddingSource:
    """``source(n, salt)`` -> embeddings of n items; the same (n, salt) gives the same items."""

    description: str
    make: Callable[[int, int], Embeddings]

    def __call__(self, n: int, salt: int) -> Embeddings:
        return self.make(n, salt)


def synthetic_candidates(data: SyntheticData, dim: int) -> list[tuple[EmbeddingSource, EmbeddingSource]]:
    """(images, captions) sources of each embedding kind a head may score, most common first."""
    return [
        (
            EmbeddingSource(f"global vectors [n, {dim}]", lambda n, s: data.global_embeddings(n, dim, s)),
            EmbeddingSource(f"global vectors [n, {dim}]", lambda n, s: data.global_embeddings(n, dim, s + 50)),
        ),
        (
            EmbeddingSource(f"vector sets [n, 6, {dim}]", lambda n, s: data.vector_sets(n, dim, s)),
            EmbeddingSource(f"vector sets [n, 8, {dim}]", lambda n, s: data.vector_sets(n, dim, s + 50, width=8)),
        ),
        (
            EmbeddingSource(
                f"vector sets [n, 6, {dim}] + summary [n, {dim}]", lambda n, s: data.vector_sets(n, dim, s, summary=True)
            ),
            EmbeddingSource(f"vector sets [n, 8, {dim}]", lambda n, s: data.vector_sets(n, dim, s + 50, width=8)),
        ),
    ]


def encoded_sources(image_encoder: Any, text_encoder: Any, data: SyntheticData) -> tuple[EmbeddingSource, EmbeddingSource]:
    """Sources that run a method's encoders (evaluation mode, no gradient) on synthetic items."""

    @torch.no_grad()
    def images(n: int, salt: int) -> Embeddings:
        image_encoder.eval()
        return image_encoder(data.image_features(n, salt))

    @torch.no_grad()
    def texts(n: int, salt: int) -> Embeddings:
        text_encoder.eval()
        prepared = prepare_texts(text_encoder, data.captions(n, salt), CAPTIONS)
        return text_encoder(gather(prepared, torch.arange(n), torch.device("cpu")))

    return (
        EmbeddingSource(f"{type(image_encoder).__name__} outputs", images),
        EmbeddingSource(f"{type(text_encoder).__name__} outputs", texts),
    )
