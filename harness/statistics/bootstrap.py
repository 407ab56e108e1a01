"""Bootstrap over queries, vectorised: every resample at once, no Python loop per resample.

Queries are resampled as the test set was drawn: by image, each image with all its captions
(a cluster bootstrap), so the i2t and t2i recalls of one resample come from the same images.
A resample is a row of image multiplicities W [B, n_images]; a recall is then a weighted mean,
i.e. one matrix product for all B resamples:

    R@K_i2t[b] = 100 · Σ_i W[b, i] · hit_i / Σ_i W[b, i]
    R@K_t2i[b] = 100 · Σ_i W[b, i] · hits_i / Σ_i W[b, i] · captions_i

(hits_i: the hits of image i's captions). For fold protocols (COCO 1K) the ranks are within folds
and images are resampled across folds: R@K pooled over equal folds is the fold mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.metrics import KS
from harness.statistics.ranks import QueryRanks



def image_weights(n_images: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """float32 [resamples, n_images]: how often each image is drawn in each resample."""
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    offsets = (np.arange(resamples) * n_images)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * n_images)
    return counts.reshape(resamples, n_images).astype(np.float32)


def recall_samples(ranks: QueryRanks, weights: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, np.ndarray]:
    """Every R@K and rSum under each row of `weights` [B, n_images] -> {metric: [B]}.

    A row of ones gives the plain metrics of the evaluation.
    """
    cutoffs = np.asarray(ks)
    i2t_hits = (ranks.i2t_rank[:, None] < cutoffs).astype(np.float32)  # [image queries, K]
    query_weights = weights[:, ranks.i2t_image]  # [B, image queries]
    i2t = 100 * (query_weights @ i2t_hits) / query_weights.sum(axis=1, keepdims=True)
    t2i_hits = (ranks.t2i_rank[:, None] < cutoffs).astype(np.float32)  # [captions, K]
    hits_per_image = np.stack(
        [np.bincount(ranks.t2i_image, weights=t2i_hits[:, k], minlength=ranks.n_images) for k in range(len(ks))], axis=1
    ).astype(np.float32)
    captions_per_image = np.bincount(ranks.t2i_image, minlength=ranks.n_images).astype(np.float32)
    t2i = 100 * (weights @ hits_per_image) / (weights @ captions_per_image)[:, None]
    samples = {f"i2t_r{k}": i2t[:, index] for index, k in enumerate(ks)}
    samples.update({f"t2i_r{k}": t2i[:, index] for index, k in enumerate(ks)})
    samples["rsum"] = i2t.sum(axis=1) + t2i.sum(axis=1)
    return samples


def point_metrics(ranks: QueryRanks) -> dict[str, float]:
    """The recalls and rSum of the evaluation itself."""
    return {name: float(values[0]) for name, values in recall_samples(ranks, np.ones((1, ranks.n_images), np.float32)).items()}


@dataclass(frozen=True)
class Interval:
    """A metric's value with its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def intervals(ranks: QueryRanks, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, Interval]:
    """Percentile bootstrap intervals of every R@K and rSum at `confidence`."""
    weights = image_weights(ranks.n_images, resamples, np.random.default_rng(seed))
    points = point_metrics(ranks)
    tail = (1 - confidence) / 2
    return {
        name: Interval(points[name], *map(float, np.quantile(samples, [tail, 1 - tail])))
        for name, samples in recall_samples(ranks, weights).items()
    }


def two_sided_p(delta: np.ndarray) -> float:
    """Bootstrap p-value of "no difference" from resampled differences: twice the smaller share
    on either side of zero, capped at 1 (all-zero differences give 1)."""
    return min(1.0, 2 * min(float(np.mean(delta <= 0)), float(np.mean(delta >= 0))))
