"""Cross-attention heads and their inputs at benchmark shapes, shared by the benchmarks that time
the heads alone (test_cross_attention_training.py, test_cross_attention_rate.py).

The heads are the recipes' own (`make_head`); the inputs stand in for the encoders' outputs:
seeded unit-norm region and word sets (`make_sets`) and re-rank lists of k candidates per query
(`rerank_list`). `DEVICE` is where they run; `median_seconds` waits for a GPU's queued work before reading the clock.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from harness.embeddings import VectorSets

DEVICE = os.environ.get("ITR_BENCH_DEVICE", "cpu")
"""Where the issue-16 benchmarks run: ``ITR_BENCH_DEVICE=cuda`` on a GPU (default the CPU)."""


def make_head(name: str, options: dict, dim: int) -> torch.nn.Module:
    """The recipe's head, ``ascl`` (`ascl-fusion`) or ``scan`` (t-i AVG, λ1 = 9), with `options`
    on top (seeded, for the AsCL head's layers)."""
    torch.manual_seed(0)
    if name == "ascl":
        from plugins.ascl.heads import AsCLFusionHead

        return AsCLFusionHead(None, embed_dim=dim, **options)
    from baselines.scan.heads import StackedCrossAttentionHead

    return StackedCrossAttentionHead(
        None, direction="t2i", aggregation="avg", lambda_softmax=9.0, **options
    )


def make_sets(
    n_images: int,
    n_regions: int,
    n_captions: int,
    min_words: int,
    max_words: int,
    dim: int,
    *,
    summary: bool,
    device: str = "cpu",
    requires_grad: bool = False,
) -> tuple[VectorSets, VectorSets]:
    """Seeded unit-norm regions [n_i, R, D] (+ a global vector [n_i, D] for AsCL) and words
    [n_c, ≤max_words, D], zero past each length; leaves that require grad if asked."""
    generator = torch.Generator().manual_seed(0)
    regions = F.normalize(
        torch.randn(n_images, n_regions, dim, generator=generator), dim=-1
    )
    lengths = torch.randint(
        min_words, max_words + 1, (n_captions,), generator=generator
    )
    words = F.normalize(
        torch.randn(n_captions, max_words, dim, generator=generator), dim=-1
    )
    words = words * (torch.arange(max_words)[None, :] < lengths[:, None])[..., None]
    g = (
        F.normalize(torch.randn(n_images, dim, generator=generator), dim=-1)
        if summary
        else None
    )
    leaves = [
        t.to(device).requires_grad_(requires_grad) if t is not None else None
        for t in (regions, words, g)
    ]
    images = VectorSets(
        leaves[0], torch.full((n_images,), n_regions, device=device), leaves[2]
    )
    return images, VectorSets(leaves[1], lengths.to(device))


def rerank_list(
    n_queries: int, n_gallery: int, k: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Query-major pairs: query q with k distinct random gallery items, int64 [n_q · k] each."""
    queries = torch.arange(n_queries).repeat_interleave(k)
    candidates = (
        torch.rand(n_queries, n_gallery, generator=generator)
        .argsort(1)[:, :k]
        .flatten()
    )
    return queries, candidates


def median_seconds(function: Callable[..., Any], *args: Any, rounds: int = 3) -> float:
    """Median wall time of `rounds` calls after one warm-up call (CUDA work included)."""

    def call() -> float:
        start = time.perf_counter()
        function(*args)
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return time.perf_counter() - start

    call()
    return statistics.median(call() for _ in range(rounds))
