"""SCAN scoring: the batched head against the reference's per-caption loop, in the same run.

Run with ``pytest benchmarks/test_scan_scoring.py --benchmark-only -p no:cacheprovider``.

The reference code (kuanghuei/SCAN ``xattn_score_t2i`` / ``xattn_score_i2t``, called from
``shard_xattn_*``) scores an image block by looping over the captions: each caption is repeated
once per image and one small batched attention runs per caption. `per_caption_reference` below
follows that pattern (written from a description of that code, not copied). The head scores the
same block as one tensor program per `PAIR_CHUNK` pairs. Both see the same unit-norm sets: 128
images × 36 regions × 256-d (BUTD-like region count) against 640 captions of 6–12 words.

Peak memory is *measured* with the torch profiler (``profile_memory=True``): the running sum of
the sizes of every tensor allocated and freed by torch during one call, maximised over time, i.e.
the largest extra memory the call held at once (inputs excluded). tracemalloc cannot see torch's
CPU allocations, which bypass Python's allocator.
"""

from __future__ import annotations

import itertools
import statistics
import time

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from baselines.scan.heads import StackedCrossAttentionHead
from harness.embeddings import VectorSets

N_IMAGES, N_REGIONS, DIM = 128, 36, 256
N_CAPTIONS, MIN_WORDS, MAX_WORDS = 640, 6, 12
PAIR_CHUNK = 16384
ROUNDS = 3


@pytest.fixture(scope="module")
def region_and_word_sets() -> tuple[VectorSets, VectorSets]:
    """Seeded unit-norm regions [128, 36, 256] and words [640, ≤12, 256], zero past each length."""
    generator = torch.Generator().manual_seed(0)
    regions = F.normalize(torch.randn(N_IMAGES, N_REGIONS, DIM, generator=generator), dim=-1)
    lengths = torch.randint(MIN_WORDS, MAX_WORDS + 1, (N_CAPTIONS,), generator=generator)
    words = F.normalize(torch.randn(N_CAPTIONS, MAX_WORDS, DIM, generator=generator), dim=-1)
    words = words * (torch.arange(MAX_WORDS)[None, :] < lengths[:, None])[..., None]
    return VectorSets(regions, torch.full((N_IMAGES,), N_REGIONS)), VectorSets(words, lengths)


def reference_attention(queries: torch.Tensor, contexts: torch.Tensor, lambda_softmax: float) -> torch.Tensor:
    """SCAN's func_attention with ``clipped_l2norm``: queries [B, Q, D], contexts [B, C, D] ->
    attended context vector per query [B, Q, D]."""
    affinity = F.leaky_relu(torch.bmm(contexts, queries.transpose(1, 2)), 0.1)  # [B, C, Q]
    affinity = affinity / (affinity.norm(dim=2, keepdim=True) + 1e-8)  # across queries
    attention = torch.softmax(lambda_softmax * affinity.transpose(1, 2), dim=2)  # [B, Q, C]
    return torch.bmm(attention, contexts)


def per_caption_reference(
    images: VectorSets,
    texts: VectorSets,
    *,
    direction: str,
    lambda_softmax: float,
    aggregation: str,
    lambda_lse: float,
) -> torch.Tensor:
    """scores [n_i, n_c], one caption at a time, as the reference's sharded evaluation.

    Every image has all its regions (BUTD: always 36), so only the caption is cut to its length.
    The caption is expanded over the images (the reference copies it with ``repeat``; expanding
    only makes the reference faster).
    """
    regions = images.vectors
    columns = []
    for caption, n_words in zip(texts.vectors, texts.lengths.tolist()):
        words = caption[:n_words].expand(len(regions), n_words, -1)  # the caption once per image
        if direction == "t2i":
            queries, attended = words, reference_attention(words, regions, lambda_softmax)
        else:
            queries, attended = regions, reference_attention(regions, words, lambda_softmax)
        relevance = F.cosine_similarity(queries, attended, dim=2, eps=1e-8)  # [n_i, Q]
        if aggregation == "avg":
            columns.append(relevance.mean(dim=1))
        else:
            columns.append(torch.log(torch.exp(lambda_lse * relevance).sum(dim=1)) / lambda_lse)
    return torch.stack(columns, dim=1)


def seconds_of(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def peak_bytes(function, *args, **kwargs) -> int:
    """Largest amount of torch CPU memory `function` held at once beyond its inputs (profiler)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function(*args, **kwargs)
    events = sorted(prof.events(), key=lambda event: event.time_range.start)
    return max(itertools.accumulate((event.self_cpu_memory_usage for event in events), initial=0))


@pytest.mark.parametrize(
    "direction, aggregation, lambda_softmax, lambda_lse",
    [pytest.param("t2i", "avg", 9.0, 6.0, id="t-i-avg"), pytest.param("i2t", "lse", 4.0, 20.0, id="i-t-lse")],
)
@torch.inference_mode()
def test_batched_scan_scoring_against_per_caption_loop(
    benchmark, region_and_word_sets, capsys, direction, aggregation, lambda_softmax, lambda_lse
):
    images, texts = region_and_word_sets
    options = dict(
        direction=direction, aggregation=aggregation, lambda_softmax=lambda_softmax, lambda_lse=lambda_lse
    )
    head = StackedCrossAttentionHead(None, pair_chunk=PAIR_CHUNK, **options)
    n_pairs = N_IMAGES * N_CAPTIONS

    reference = per_caption_reference(images, texts, **options)  # also the warm-up round
    reference_seconds = statistics.median(
        seconds_of(per_caption_reference, images, texts, **options) for _ in range(ROUNDS)
    )

    scores = benchmark.pedantic(head, args=(images, texts), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.median
    head_peak = peak_bytes(head, images, texts)
    reference_peak = peak_bytes(per_caption_reference, images, texts, **options)
    benchmark.extra_info.update(
        images=list(images.vectors.shape),
        captions=list(texts.vectors.shape),
        pairs=n_pairs,
        pair_chunk=PAIR_CHUNK,
        head_pairs_per_s=n_pairs / seconds,
        reference_pairs_per_s=n_pairs / reference_seconds,
        speedup=reference_seconds / seconds,
        head_peak_mb=head_peak / 1e6,
        reference_peak_mb=reference_peak / 1e6,
        peak_memory_method="torch.profiler profile_memory: max running sum of allocations",
        max_abs_difference=float((scores - reference).abs().max()),
    )
    with capsys.disabled():
        print(
            f"\nSCAN {direction} {aggregation}, {N_IMAGES}x{N_CAPTIONS} pairs: "
            f"head {n_pairs / seconds:,.0f} pairs/s (median of {ROUNDS}, peak {head_peak / 1e6:.1f} MB "
            f"at pair_chunk {PAIR_CHUNK}); per-caption loop "
            f"{n_pairs / reference_seconds:,.0f} pairs/s (median of {ROUNDS}, peak {reference_peak / 1e6:.1f} MB); "
            f"speed-up {reference_seconds / seconds:.1f}x"
        )

    torch.testing.assert_close(scores, reference, rtol=0, atol=1e-5)
