"""Evaluation: embed a split, score every image against every caption in chunks, rank.

Embeddings are computed once per split; the score matrix is filled chunk by chunk through the
method's similarity head, so memory stays bounded by ``chunk × chunk`` pairs of head work plus the
[n_images, n_captions] float32 result. Protocols decide which slices of the matrix are ranked.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from harness.embeddings import Embeddings, concat
from harness.protocols import Protocol
from harness.statistics.ranks import QueryRanks, caption_word_counts
from harness.training.model import RetrievalModel, SplitInputs, gather


@torch.inference_mode()
def embed_split(
    model: RetrievalModel, data: SplitInputs, batch_size: int, device: torch.device
) -> tuple[Embeddings, Embeddings]:
    """Image and caption embeddings (Tensors [n, D] or `VectorSets`), float32 on `device`."""
    model.eval()
    images = [
        model.encode_images(gather(data.image_features, index, device)).float()
        for index in torch.arange(data.n_images).split(batch_size)
    ]
    texts = [
        model.encode_texts(gather(data.text_inputs, index, device)).float()
        for index in torch.arange(data.n_captions).split(batch_size)
    ]
    return concat(images), concat(texts)


@torch.inference_mode()
def score_matrix(model: RetrievalModel, images: Embeddings, texts: Embeddings, chunk: int) -> torch.Tensor:
    """scores [n_images, n_captions] (float32, CPU), computed block by block through the head."""
    scores = torch.empty(len(images), len(texts), dtype=torch.float32)
    for i in range(0, len(images), chunk):
        for j in range(0, len(texts), chunk):
            scores[i : i + chunk, j : j + chunk] = model.score(images[i : i + chunk], texts[j : j + chunk]).float().cpu()
    return scores


@dataclass
class Evaluation:
    """Metrics keyed ``"{protocol}/{metric}"`` and, per protocol, the rank of every query."""

    metrics: dict[str, float]
    ranks: dict[str, QueryRanks]


def evaluate(
    model: RetrievalModel,
    data: SplitInputs,
    protocols: list[Protocol],
    *,
    batch_size: int,
    chunk: int,
    device: torch.device,
) -> dict[str, float]:
    """Metrics for every protocol (see `evaluate_split`)."""
    scores = split_scores(model, data, batch_size=batch_size, chunk=chunk, device=device)
    return protocol_metrics(scores, data.image_of_caption.numpy(), protocols)


def evaluate_split(
    model: RetrievalModel,
    data: SplitInputs,
    protocols: list[Protocol],
    *,
    batch_size: int,
    chunk: int,
    device: torch.device,
    caption_tags: Mapping[str, Sequence[str]] | None = None,
) -> Evaluation:
    """Metrics for every protocol and the per-query ranks behind them (for confidence intervals,
    paired comparisons and slices: `harness.statistics`); `caption_tags` label each caption."""
    scores = split_scores(model, data, batch_size=batch_size, chunk=chunk, device=device)
    image_of_caption = data.image_of_caption.numpy()
    words = caption_word_counts(data.captions)
    tags = {name: np.asarray(values, dtype=str) for name, values in (caption_tags or {}).items()}
    ranks = {}
    for protocol in protocols:
        i2t_rank, i2t_image, t2i_rank = protocol.query_ranks(scores.numpy(), image_of_caption)
        ranks[protocol.name] = QueryRanks(scores.shape[0], i2t_rank, i2t_image, t2i_rank, image_of_caption, words, tags)
    return Evaluation(protocol_metrics(scores, image_of_caption, protocols), ranks)


def split_scores(model: RetrievalModel, data: SplitInputs, *, batch_size: int, chunk: int, device: torch.device) -> torch.Tensor:
    """The split's score matrix [n_images, n_captions], float32 on the CPU."""
    images, texts = embed_split(model, data, batch_size, device)
    if getattr(model.head, "reads_pairing_labels", False):
        print("warning: the similarity head reads the ground-truth pairing: these scores leak", file=sys.stderr)
        return model.head.score_with_pairing(images, texts, data.image_of_caption.to(device)).float().cpu()
    return score_matrix(model, images, texts, chunk)


def protocol_metrics(scores: torch.Tensor, image_of_caption: np.ndarray, protocols: list[Protocol]) -> dict[str, float]:
    """Metrics for every protocol, keyed ``"{protocol}/{metric}"`` (e.g. ``coco-1k/rsum``).

    Recalls count ties in the query's favour, as the papers do; ``{protocol}/rsum_tie_gap`` is
    how much rSum that rule gained over counting ties against the query. It is 0 for any model
    whose scores do not tie, and large for a collapsed one, which would otherwise look perfect.
    """
    metrics: dict[str, float] = {}
    for protocol in protocols:
        optimistic = protocol.metrics(scores, image_of_caption)
        pessimistic = protocol.metrics(scores, image_of_caption, ties="pessimistic")
        metrics.update({f"{protocol.name}/{key}": value for key, value in optimistic.items()})
        gap = optimistic["rsum"] - pessimistic["rsum"]
        metrics[f"{protocol.name}/rsum_tie_gap"] = gap
        if gap > 0:
            print(
                f"warning: {protocol.name}: tied scores lift rSum by {gap:.1f} (pessimistic rSum {pessimistic['rsum']:.1f})",
                file=sys.stderr,
            )
    return metrics
