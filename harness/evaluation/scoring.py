"""Embedding a split once, and scoring image blocks against caption blocks through the head.

Memory stays bounded by ``chunk × chunk`` pairs of head work plus the [n_images, n_captions]
float32 result, whatever the split's size; the chunk halves on out of memory
(`harness.evaluation.memory`).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from harness.embeddings import Embeddings, concat
from harness.evaluation.memory import ScoreChunk, naming
from harness.training.feeds import gather
from harness.training.model import RetrievalModel, SplitInputs


def precision(device: torch.device, amp: bool) -> Any:
    """bfloat16 autocast on CUDA when `amp` (no loss to scale, so no float16 overflow risk); else
    full precision."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else nullcontext()


@torch.inference_mode()
def embed_split(
    model: RetrievalModel, data: SplitInputs, batch_size: int, device: torch.device, amp: bool = False
) -> tuple[Embeddings, Embeddings]:
    """Image and caption embeddings (Tensors [n, D] or `VectorSets`), float32 on `device`;
    running out of memory is one line naming ``eval.batch_size``."""
    model.eval()
    with naming("eval.batch_size", batch_size, "embedding the test split"), precision(device, amp):
        batches = data.images.batches(torch.arange(data.n_images).split(batch_size), device, train=False)
        images = [model.encode_images(inputs).float() for inputs in batches]
        texts = [
            model.encode_texts(gather(data.text_inputs, index, device)).float()
            for index in torch.arange(data.n_captions).split(batch_size)
        ]
    return concat(images), concat(texts)


@torch.inference_mode()
def score_matrix(
    model: RetrievalModel, images: Embeddings, texts: Embeddings, chunk: int | ScoreChunk, amp: bool = False
) -> torch.Tensor:
    """scores [n_images, n_captions] (float32, CPU), computed block by block through the head.

    `chunk` is the block size, or a `ScoreChunk` that halves it on out of memory: a band of
    `chunk` images is then scored again, against every caption, at the smaller size.
    """
    chunk = chunk if isinstance(chunk, ScoreChunk) else ScoreChunk(chunk)
    device = images.device if isinstance(images, torch.Tensor) else images.vectors.device
    scores = torch.empty(len(images), len(texts), dtype=torch.float32)

    def band(start: int, size: int) -> int:
        for j in range(0, len(texts), size):
            scores[start : start + size, j : j + size] = model.score(images[start : start + size], texts[j : j + size]).float().cpu()
        return min(size, len(images) - start)

    with precision(device, amp):
        chunk.fit_budget(lambda size: model.score(images[:size], texts[:size]), min(len(images), len(texts)))
        start = 0
        while start < len(images):
            start += chunk.attempt(lambda size: band(start, size))
    return scores
