"""Metrics by slice of the caption queries: caption length buckets, or any per-caption tag.

Slices partition the caption queries (t2i: each caption is a query), so each slice's recalls
are those of its own queries and the query-weighted mean of the slices is the overall recall.
Image queries have no caption length, so slices report t2i metrics only. The AsCL paper studies
short queries this way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.errors import UserError
from harness.statistics.bootstrap import KS
from harness.statistics.ranks import QueryRanks

DEFAULT_LENGTHS = (9, 12)
"""Short: ≤ 9 words, medium: 10–12, long: ≥ 13 (COCO captions average about 10.5 words)."""


def length_buckets(words: np.ndarray, thresholds: tuple[int, int] = DEFAULT_LENGTHS) -> np.ndarray:
    """Each caption's bucket, ``short (≤a)``, ``medium (a+1–b)`` or ``long (≥b+1)``."""
    short, long = thresholds
    if not 0 < short < long:
        raise UserError(f"caption length thresholds must be 0 < short < long, got {short}, {long}")
    labels = np.array([f"short (≤{short})", f"medium ({short + 1}–{long})", f"long (≥{long + 1})"])
    return labels[np.digitize(words, [short + 0.5, long + 0.5])]


def slice_metrics(ranks: QueryRanks, labels: np.ndarray, ks: tuple[int, ...] = KS) -> pd.DataFrame:
    """One row per slice (length buckets short to long, other labels sorted): queries and t2i R@K."""
    rows = []
    for label in sorted(np.unique(labels), key=_bucket_order):
        chosen = ranks.t2i_rank[labels == label]
        rows.append({"slice": str(label), "queries": len(chosen), **{f"t2i_r{k}": 100 * float(np.mean(chosen < k)) for k in ks}})
    return pd.DataFrame(rows)


def slices_of(ranks: QueryRanks, by: str, thresholds: tuple[int, int] = DEFAULT_LENGTHS) -> np.ndarray:
    """The slice label of every caption query: ``by = "length"`` or a tag the dataset provides."""
    if by == "length":
        return length_buckets(ranks.caption_words, thresholds)
    if by not in ranks.caption_tags:
        known = ", ".join(["length", *ranks.caption_tags]) or "length"
        raise UserError(f"no per-caption tag '{by}' in this evaluation; slices by: {known}")
    return ranks.caption_tags[by]


def _bucket_order(label: str) -> tuple[int, str]:
    for index, prefix in enumerate(("short", "medium", "long")):
        if label.startswith(prefix):
            return (index, label)
    return (3, label)
