"""Is A really better than B? A paired bootstrap on the same queries.

Both runs' metrics are recomputed under the same resamples of images, so the spread of the
difference reflects only which queries the test set happened to contain, not noise that the two
runs share. The p-value is two-sided: twice the smaller share of resampled differences on either
side of zero (capped at 1); identical runs give a zero difference and p = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import UserError
from harness.statistics.bootstrap import image_weights, point_metrics, recall_samples, two_sided_p
from harness.statistics.ranks import QueryRanks


@dataclass(frozen=True)
class Difference:
    """A − B for one metric: the observed difference, its interval and p-value."""

    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float


def paired_differences(
    a: list[QueryRanks], b: list[QueryRanks], resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> list[Difference]:
    """A − B for every R@K and rSum. With several seeds per side, each side's metric is its mean
    over seeds, resampled together (every run must rank the same queries)."""
    reference = a[0]
    for ranks in [*a, *b]:
        if not ranks.same_queries(reference):
            raise UserError("the runs were evaluated on different queries (dataset, split or protocol); a paired comparison needs the same ones")
    weights = image_weights(reference.n_images, resamples, np.random.default_rng(seed))
    tail = (1 - confidence) / 2
    side_a, side_b = _mean_over_seeds(a, weights), _mean_over_seeds(b, weights)
    point_a, point_b = _mean_points(a), _mean_points(b)
    result = []
    for metric, samples_a in side_a.items():
        delta = samples_a - side_b[metric]
        low, high = np.quantile(delta, [tail, 1 - tail])
        p_value = two_sided_p(delta)
        observed = point_a[metric] - point_b[metric]
        result.append(Difference(metric, point_a[metric], point_b[metric], observed, float(low), float(high), p_value))
    return result


def _mean_over_seeds(runs: list[QueryRanks], weights: np.ndarray) -> dict[str, np.ndarray]:
    per_run = [recall_samples(ranks, weights) for ranks in runs]
    return {metric: np.mean([samples[metric] for samples in per_run], axis=0) for metric in per_run[0]}


def _mean_points(runs: list[QueryRanks]) -> dict[str, float]:
    per_run = [point_metrics(ranks) for ranks in runs]
    return {metric: float(np.mean([points[metric] for points in per_run])) for metric in per_run[0]}
