"""Where a similarity head's (or a feature-level generator's) inputs come from.

Checked on its own, a head is fed synthetic embeddings of each kind it declares
(`harness.capabilities.DeclaresInputs`: global vectors, vector sets, or vector sets with a global
summary); `synthetic_candidates` makes each kind. A head that declares none is fed the first kind
it scores without raising. Checked inside a method, the inputs are what the method's own encoders
make of synthetic features and captions (`encoded_sources`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from harness.conformance.synthetic import SyntheticData
from harness.embeddings import Embeddings
from harness.config.job_config import CAPTIONS
from harness.training.feeds import gather
from harness.training.model import prepare_texts

DEFAULT_DIM = 32
"""Embedding size of synthetic head inputs when the head has no ``embed_dim`` option."""


@dataclass(frozen=True)
class EmbeddingSource:
    """``source(n, salt)`` -> embeddings of n items; the same (n, salt) gives the same items."""

    description: str
    make: Callable[[int, int], Embeddings]

    def __call__(self, n: int, salt: int) -> Embeddings:
        return self.make(n, salt)


def synthetic_candidates(data: SyntheticData, dim: int) -> dict[str, tuple[EmbeddingSource, EmbeddingSource]]:
    """(images, captions) sources of each input kind a head may score
    (`harness.capabilities.HEAD_INPUTS`), most common first."""
    return {
        "vectors": (
            EmbeddingSource(f"global vectors [n, {dim}]", lambda n, s: data.global_embeddings(n, dim, s)),
            EmbeddingSource(f"global vectors [n, {dim}]", lambda n, s: data.global_embeddings(n, dim, s + 50)),
        ),
        "sets": (
            EmbeddingSource(f"vector sets [n, 6, {dim}]", lambda n, s: data.vector_sets(n, dim, s)),
            EmbeddingSource(f"vector sets [n, 8, {dim}]", lambda n, s: data.vector_sets(n, dim, s + 50, width=8)),
        ),
        "sets+summary": (
            EmbeddingSource(
                f"vector sets [n, 6, {dim}] + summary [n, {dim}]", lambda n, s: data.vector_sets(n, dim, s, summary=True)
            ),
            EmbeddingSource(f"vector sets [n, 8, {dim}]", lambda n, s: data.vector_sets(n, dim, s + 50, width=8)),
        ),
    }


def encoded_sources(image_encoder: Any, text_encoder: Any, data: SyntheticData) -> tuple[EmbeddingSource, EmbeddingSource]:
    """Sources that run a method's encoders (evaluation mode, no gradient) on synthetic items."""

    @torch.no_grad()
    def images(n: int, salt: int) -> Embeddings:
        image_encoder.eval()
        return image_encoder(data.image_inputs(image_encoder, n, salt))

    @torch.no_grad()
    def texts(n: int, salt: int) -> Embeddings:
        text_encoder.eval()
        prepared = prepare_texts(text_encoder, data.captions(n, salt), CAPTIONS)
        return text_encoder(gather(prepared, torch.arange(n), torch.device("cpu")))

    return (
        EmbeddingSource(f"{type(image_encoder).__name__} outputs", images),
        EmbeddingSource(f"{type(text_encoder).__name__} outputs", texts),
    )
