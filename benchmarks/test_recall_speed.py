"""`recall_metrics` at COCO-5K scale against the per-query argsort of the VSE evaluation code.

Run with ``pytest benchmarks/test_recall_speed.py --benchmark-only -p no:cacheprovider``.
The reference sorts every query (5,000 image queries over 25,000 captions, 25,000 caption
queries over 5,000 images); it is timed on a slice of the queries and extrapolated per query,
so the benchmark stays affordable while comparing both in the same run on the same matrix.
"""

from __future__ import annotations

import inspect
import time

import numpy as np
import pytest

from harness.metrics import positive_ranks, recall_metrics

N_IMAGES = 5_000
CAPTIONS_PER_IMAGE = 5
I2T_REFERENCE_QUERIES = 500
T2I_REFERENCE_QUERIES = 2_000
CHUNK_SIZE = inspect.signature(positive_ranks).parameters["chunk_size"].default


@pytest.fixture(scope="module")
def coco_5k_scores() -> tuple[np.ndarray, np.ndarray]:
    """Seeded float32 scores [5000, 25000] in the VSE layout (caption c describes image c // 5).

    Positives get a +2.5 margin so ranks are spread like a trained model's, not uniform.
    """
    rng = np.random.default_rng(0)
    image_of_caption = np.repeat(np.arange(N_IMAGES), CAPTIONS_PER_IMAGE)
    scores = rng.standard_normal((N_IMAGES, image_of_caption.size), dtype=np.float32)
    scores[image_of_caption, np.arange(image_of_caption.size)] += 2.5
    return scores, image_of_caption


def argsort_i2t_ranks(scores: np.ndarray, n_queries: int) -> np.ndarray:
    """VSE `i2t`: sort each image row of scores [n_images, 5 n_images]; best position of its GT."""
    ranks = np.empty(n_queries, dtype=np.int64)
    for image in range(n_queries):
        order = np.argsort(scores[image])[::-1]
        ranks[image] = min(
            np.where(order == caption)[0][0]
            for caption in range(CAPTIONS_PER_IMAGE * image, CAPTIONS_PER_IMAGE * (image + 1))
        )
    return ranks


def argsort_t2i_ranks(scores: np.ndarray, n_queries: int) -> np.ndarray:
    """VSE `t2i`: sort each caption's column of scores [n_images, 5 n_images] (rows of `.T`)."""
    by_caption = scores.T
    ranks = np.empty(n_queries, dtype=np.int64)
    for caption in range(n_queries):
        order = np.argsort(by_caption[caption])[::-1]
        ranks[caption] = np.where(order == caption // CAPTIONS_PER_IMAGE)[0][0]
    return ranks


def test_recall_metrics_against_per_query_argsort(benchmark, coco_5k_scores, capsys):
    scores, image_of_caption = coco_5k_scores
    n_captions = image_of_caption.size

    start = time.perf_counter()
    reference_i2t = argsort_i2t_ranks(scores, I2T_REFERENCE_QUERIES)
    i2t_seconds_per_query = (time.perf_counter() - start) / I2T_REFERENCE_QUERIES
    start = time.perf_counter()
    reference_t2i = argsort_t2i_ranks(scores, T2I_REFERENCE_QUERIES)
    t2i_seconds_per_query = (time.perf_counter() - start) / T2I_REFERENCE_QUERIES
    reference_seconds = i2t_seconds_per_query * N_IMAGES + t2i_seconds_per_query * n_captions

    metrics = benchmark.pedantic(
        recall_metrics, args=(scores, image_of_caption), rounds=5, iterations=1, warmup_rounds=1
    )
    seconds = benchmark.stats.stats.median
    speedup = reference_seconds / seconds
    benchmark.extra_info.update(
        shape=list(scores.shape),
        reference_i2t_ms_per_query=1e3 * i2t_seconds_per_query,
        reference_t2i_ms_per_query=1e3 * t2i_seconds_per_query,
        reference_extrapolated_s=reference_seconds,
        recall_metrics_median_s=seconds,
        speedup=speedup,
        count_block_bytes=CHUNK_SIZE * n_captions * 4,  # the float32 block positive_ranks reuses
        rsum=metrics["rsum"],
    )
    with capsys.disabled():
        print(
            f"\nrecall_metrics {scores.shape[0]}x{n_captions}: {seconds:.3f} s (median of 5); "
            f"argsort reference {1e3 * i2t_seconds_per_query:.2f} ms/image query, "
            f"{1e3 * t2i_seconds_per_query:.2f} ms/caption query, "
            f"extrapolated {reference_seconds:.1f} s; speed-up {speedup:.0f}x"
        )

    i2t, t2i = positive_ranks(scores, image_of_caption)
    np.testing.assert_array_equal(i2t[:I2T_REFERENCE_QUERIES], reference_i2t)
    np.testing.assert_array_equal(t2i[:T2I_REFERENCE_QUERIES], reference_t2i)
