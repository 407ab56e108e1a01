"""Bootstrap of 1,000 resamples on COCO 5K's scale (25,000 caption queries plus 5,000 image
queries), vectorised, against a per-resample loop reference, in the same run.

Run with ``pytest benchmarks/test_bootstrap_speed.py --benchmark-only -p no:cacheprovider -s``.

The reference draws each resample's images, gathers their queries and recomputes the recalls
with `metrics_from_ranks`, one resample at a time (what a straightforward implementation does);
it runs 50 resamples and its time is scaled to 1,000. Both draw images the same way, so their
resamples agree exactly (checked below on the first resample).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.metrics import metrics_from_ranks
from harness.statistics.bootstrap import image_weights, recall_samples
from harness.statistics.ranks import QueryRanks

N_IMAGES, PER_IMAGE, RESAMPLES, REFERENCE_RESAMPLES = 5000, 5, 1000, 50


@pytest.fixture(scope="module")
def ranks() -> QueryRanks:
    rng = np.random.default_rng(0)
    n_captions = N_IMAGES * PER_IMAGE
    return QueryRanks(
        N_IMAGES, rng.geometric(0.4, N_IMAGES) - 1, np.arange(N_IMAGES), rng.geometric(0.3, n_captions) - 1,
        np.repeat(np.arange(N_IMAGES), PER_IMAGE), np.full(n_captions, 10),
    )


def loop_reference(ranks: QueryRanks, weights: np.ndarray) -> list[dict[str, float]]:
    captions_of = np.split(np.arange(len(ranks.t2i_rank)), np.cumsum(np.bincount(ranks.t2i_image))[:-1])
    results = []
    for counts in weights.astype(int):
        images = np.repeat(np.arange(ranks.n_images), counts)
        t2i = ranks.t2i_rank[np.concatenate([captions_of[image] for image in images])]
        results.append(metrics_from_ranks(ranks.i2t_rank[images], t2i))
    return results


def test_vectorised_bootstrap(benchmark, ranks):
    def run() -> dict[str, np.ndarray]:
        return recall_samples(ranks, image_weights(N_IMAGES, RESAMPLES, np.random.default_rng(1)))

    samples = benchmark.pedantic(run, rounds=3, iterations=1)
    weights = image_weights(N_IMAGES, REFERENCE_RESAMPLES, np.random.default_rng(1))
    start = time.perf_counter()
    reference = loop_reference(ranks, weights)
    loop_seconds = (time.perf_counter() - start) * RESAMPLES / REFERENCE_RESAMPLES
    assert samples["rsum"][0] == pytest.approx(reference[0]["rsum"], abs=1e-3)
    vectorised = benchmark.stats.stats.mean
    print(f"\n1,000 resamples x 30,000 queries: vectorised {vectorised:.2f} s, per-resample loop {loop_seconds:.1f} s "
          f"(scaled from {REFERENCE_RESAMPLES}), {loop_seconds / vectorised:.0f}x")
