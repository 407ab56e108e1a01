"""Chunked global scoring at COCO-5K scale against one unchunked matrix product (same run).

The evaluator never hands a head more than ``chunk`` images by ``chunk`` captions, so the head's
working memory is bounded by the chunk whatever the test set size; this suite measures what that
costs in time against the single 5,000 x 25,000 product, and checks the bound and the result.
"""

from __future__ import annotations

import time

import pytest
import torch

from baselines.heads.cosine import CosineHead
from harness.evaluation.scoring import score_matrix
from harness.training.model import RetrievalModel

N_IMAGES, N_CAPTIONS, DIM, CHUNK = 5000, 25000, 256, 1024


class RecordingHead(CosineHead):
    """The cosine head, recording the largest block it was asked to score."""

    def __init__(self) -> None:
        super().__init__(None, normalize=False)
        self.largest = (0, 0)

    def forward(self, images, texts):
        self.largest = max(self.largest, (len(images), len(texts)))
        return super().forward(images, texts)


@pytest.fixture(scope="module")
def embeddings():
    generator = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(N_IMAGES, DIM, generator=generator), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(N_CAPTIONS, DIM, generator=generator), dim=-1)
    return images, texts


def test_chunked_scoring_matches_one_product_within_the_chunk_bound(benchmark, embeddings):
    images, texts = embeddings
    head = RecordingHead()
    model = RetrievalModel(torch.nn.Identity(), torch.nn.Identity(), head)
    chunked = benchmark.pedantic(score_matrix, args=(model, images, texts, CHUNK), rounds=3, iterations=1)

    start = time.perf_counter()
    reference = images @ texts.T
    reference_seconds = time.perf_counter() - start

    torch.testing.assert_close(chunked, reference, rtol=0, atol=1e-5)
    assert head.largest == (CHUNK, CHUNK)
    block_mb = CHUNK * CHUNK * 4 / 2**20
    benchmark.extra_info.update(
        reference_seconds=reference_seconds,
        ratio_to_reference=benchmark.stats.stats.median / reference_seconds,
        head_block_mb=block_mb,
        full_matrix_mb=N_IMAGES * N_CAPTIONS * 4 / 2**20,
    )
    print(
        f"\nchunked {benchmark.stats.stats.median:.2f} s vs one product {reference_seconds:.2f} s "
        f"(x{benchmark.stats.stats.median / reference_seconds:.2f}); head block {block_mb:.0f} MB"
    )
