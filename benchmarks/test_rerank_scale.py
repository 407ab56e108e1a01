"""Re-rank against full scoring for a cross-attention head at COCO test-set shapes, in one run.

Run with ``pytest benchmarks/test_rerank_scale.py --benchmark-only -p no:cacheprovider -s``;
``ITR_BENCH_FULL=1`` uses the paper's 1024-d joint space (default 256-d, to run in minutes on
two CPU cores).

Data: synthetic, COCO-shaped: 36 unit-norm regions per image, 5 captions per image of 8–12
words, each word a noisy copy of one of its image's regions, so both SCAN and the mean-pooled
prefilter can find the positives. The head is SCAN t-i AVG (λ1 = 9) with random, untrained
parameters (it has none: SCAN's head is parameter-free, the encoders carry the weights), so the
R@K difference measures what re-ranking loses on this data, not on a trained COCO model.

- 1K × 5K (COCO 1K, one fold): full scoring and re-rank at k = 128, both measured.
- 5K × 25K (COCO 5K): re-rank measured; full scoring estimated from a measured block of
  500 × 2,500 pairs, scaled by the pair count (its cost is linear in the pairs).
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from baselines.scan.heads import StackedCrossAttentionHead
from harness.config.job_config import EvalConfig
from harness.embeddings import VectorSets
from harness.evaluation.evaluate import protocol_metrics
from harness.evaluation.protocols import full
from harness.evaluation.strategies import FullScores, Rerank
from harness.training.model import RetrievalModel

DIM = 1024 if os.environ.get("ITR_BENCH_FULL") else 256
REGIONS, CAPTIONS_PER_IMAGE, K = 36, 5, 128
SAMPLE_IMAGES, SAMPLE_CAPTIONS = 500, 2500


def coco_shaped(n_images: int, seed: int = 0) -> tuple[VectorSets, VectorSets, torch.Tensor]:
    """Regions [n, 36, D], words [5n, ≤12, D] copied from their image's regions plus noise."""
    generator = torch.Generator().manual_seed(seed)
    regions = F.normalize(torch.randn(n_images, REGIONS, DIM, generator=generator), dim=-1)
    image_of_caption = torch.arange(n_images).repeat_interleave(CAPTIONS_PER_IMAGE)
    lengths = torch.randint(8, 13, (len(image_of_caption),), generator=generator)
    picked = torch.randint(REGIONS, (len(image_of_caption), 12), generator=generator)
    words = regions[image_of_caption[:, None], picked] + 1.2 * torch.randn(len(image_of_caption), 12, DIM, generator=generator) / DIM**0.5
    words = F.normalize(words, dim=-1) * (torch.arange(12)[None, :] < lengths[:, None])[..., None]
    return VectorSets(regions, torch.full((n_images,), REGIONS)), VectorSets(words, lengths), image_of_caption


def timed(function, *args):
    start = time.perf_counter()
    out = function(*args)
    return out, time.perf_counter() - start


MODEL = RetrievalModel(nn.Identity(), nn.Identity(), StackedCrossAttentionHead(None))
CFG = EvalConfig(device="cpu", mode="rerank", rerank_k=K)


def recall_difference(reranked, dense, labels) -> dict[str, float]:
    a = protocol_metrics(reranked, labels.numpy(), "full", full())
    b = protocol_metrics(dense, labels.numpy(), "full", full())
    return {key: a[f"full/{key}"] - b[f"full/{key}"] for key in ("i2t_r1", "t2i_r1", "rsum")}


def test_rerank_at_coco_1k_against_full_scoring(benchmark, capsys):
    images, texts, labels = coco_shaped(1000)
    dense, dense_seconds = timed(FullScores().score, MODEL, images, texts, labels, CFG, 1)
    reranked = benchmark.pedantic(Rerank().score, args=(MODEL, images, texts, labels, CFG, 1), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.median
    difference = recall_difference(reranked, dense, labels)
    benchmark.extra_info.update(
        dim=DIM, k=K, pairs_full=dense.pairs_scored, pairs_rerank=reranked.pairs_scored, seconds_full=dense_seconds,
        seconds_rerank=seconds, speedup=dense_seconds / seconds, recall_difference=difference, prefilter=reranked.extras,
    )
    with capsys.disabled():
        print(
            f"\nCOCO-1K shape, {DIM}-d: full {dense.pairs_scored:,} pairs in {dense_seconds:.1f} s; re-rank k={K} "
            f"{reranked.pairs_scored:,} pairs in {seconds:.1f} s ({dense.pairs_scored / reranked.pairs_scored:.1f}x fewer pairs, "
            f"{dense_seconds / seconds:.1f}x faster); R@1 and rSum difference {difference}; prefilter {reranked.extras}"
        )
    assert reranked.pairs_scored == 1000 * K + 5000 * K


def test_rerank_at_coco_5k_against_estimated_full_scoring(benchmark, capsys):
    images, texts, labels = coco_shaped(5000, seed=1)
    reranked = benchmark.pedantic(Rerank().score, args=(MODEL, images, texts, labels, CFG, 1), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.median
    with torch.inference_mode():
        _, sample_seconds = timed(MODEL.score, images[torch.arange(SAMPLE_IMAGES)], texts[torch.arange(SAMPLE_CAPTIONS)])
    full_pairs = len(images) * len(texts)
    estimated_full = sample_seconds * full_pairs / (SAMPLE_IMAGES * SAMPLE_CAPTIONS)
    benchmark.extra_info.update(
        dim=DIM, k=K, pairs_full=full_pairs, pairs_rerank=reranked.pairs_scored, seconds_rerank=seconds,
        seconds_full_estimated=estimated_full, sample_pairs=SAMPLE_IMAGES * SAMPLE_CAPTIONS, prefilter=reranked.extras,
    )
    with capsys.disabled():
        print(
            f"\nCOCO-5K shape, {DIM}-d: re-rank k={K} {reranked.pairs_scored:,} pairs in {seconds:.1f} s; full scoring "
            f"{full_pairs:,} pairs estimated at {estimated_full:.0f} s from a {SAMPLE_IMAGES}x{SAMPLE_CAPTIONS} block "
            f"({full_pairs / reranked.pairs_scored:.1f}x fewer pairs, {estimated_full / seconds:.1f}x faster); prefilter {reranked.extras}"
        )
    assert full_pairs / reranked.pairs_scored >= 30
