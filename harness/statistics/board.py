"""Confidence intervals and significance marks for the leaderboard.

Every row of one table (dataset, protocol) was evaluated on the same queries, so all rows are
resampled with the same image multiplicities: a row's metric under a resample is its mean over
seeds, its interval the percentile interval of that, and a row is "not significantly different"
from the best row of a column when the paired bootstrap p-value of their difference is at least
1 − confidence.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from harness.metrics import RECALLS, RSUM
from harness.statistics.bootstrap import image_weights, recall_samples, two_sided_p
from harness.statistics.ranks import QueryRanks

METRICS = [*RECALLS, RSUM]
BEST, TIED = "best", "tied"

RanksOf = Callable[[str, str], "QueryRanks | None"]
"""(run id, protocol) -> that run's per-query ranks, or None."""


def add_statistics(
    board: pd.DataFrame, run_ids: dict[tuple[str, str, str], list[str]], ranks_of: RanksOf,
    confidence: float = 0.95, resamples: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """`board` with ``<metric>_ci`` (interval half-width) and ``<metric>_mark`` (best / tied / "")
    for every R@K and rSum; `run_ids` maps (dataset, protocol, method) to the row's runs."""
    board = board.copy()
    for metric in METRICS:
        board[f"{metric}_ci"] = np.nan
        board[f"{metric}_mark"] = ""
    tail = (1 - confidence) / 2
    for (_, protocol), rows in board.groupby(["dataset", "protocol"], sort=False):
        per_row = {index: [ranks_of(run_id, protocol) for run_id in run_ids.get((row.dataset, row.protocol, row.method), [])]
                   for index, row in rows.iterrows()}
        per_row = {index: runs for index, runs in per_row.items() if runs and all(r is not None for r in runs)}
        if not per_row:
            continue
        reference = next(iter(per_row.values()))[0]
        if not all(r.same_queries(reference) for runs in per_row.values() for r in runs):
            continue
        weights = image_weights(reference.n_images, resamples, np.random.default_rng(seed))
        samples = {index: _seed_mean(runs, weights) for index, runs in per_row.items()}
        for metric in METRICS:
            for index, row_samples in samples.items():
                low, high = np.quantile(row_samples[metric], [tail, 1 - tail])
                board.loc[index, f"{metric}_ci"] = (high - low) / 2
            best = max(samples, key=lambda index: board.loc[index, metric])
            board.loc[best, f"{metric}_mark"] = BEST
            for index, row_samples in samples.items():
                if index != best and two_sided_p(samples[best][metric] - row_samples[metric]) >= 1 - confidence:
                    board.loc[index, f"{metric}_mark"] = TIED
    return board


def _seed_mean(runs: list[QueryRanks], weights: np.ndarray) -> dict[str, np.ndarray]:
    per_run = [recall_samples(ranks, weights) for ranks in runs]
    return {metric: np.mean([samples[metric] for samples in per_run], axis=0) for metric in METRICS}
