"""What the `leaderboard`, `compare` and `slices` commands compute from an MLflow store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from harness.errors import UserError, closest
from harness.leaderboard import job_results, leaderboard_table, run_ids
from harness.statistics.board import add_statistics
from harness.statistics.paired import Difference, paired_differences
from harness.statistics.bootstrap import point_metrics
from harness.statistics.slices import DEFAULT_LENGTHS, slice_metrics, slices_of
from harness.statistics.store import fetch_ranks, require_ranks


def leaderboard_with_statistics(
    tracking_uri: str, experiment_id: str, sort_by: str = "rsum", confidence: float = 0.95, resamples: int = 1000
) -> pd.DataFrame:
    """The experiment's leaderboard with bootstrap intervals and significance marks."""
    results = job_results(tracking_uri, experiment_id)
    board = leaderboard_table(results, sort_by)
    return add_statistics(
        board, run_ids(results), lambda run_id, protocol: fetch_ranks(tracking_uri, run_id, protocol), confidence, resamples
    )


def slice_table(
    tracking_uri: str, experiment_id: str, by: str = "length", thresholds: tuple[int, int] = DEFAULT_LENGTHS
) -> pd.DataFrame:
    """t2i metrics per (dataset, protocol, method, slice), the mean over the row's seeds."""
    results = job_results(tracking_uri, experiment_id)
    frames = []
    for (dataset, protocol, method), runs in run_ids(results).items():
        per_seed = []
        for run_id in runs:
            ranks = fetch_ranks(tracking_uri, run_id, protocol)
            if ranks is not None:
                per_seed.append(slice_metrics(ranks, slices_of(ranks, by, thresholds)))
        if per_seed:
            mean = pd.concat(per_seed).groupby("slice", sort=False).mean().reset_index()
            frames.append(mean.assign(dataset=dataset, protocol=protocol, method=method, seeds=len(per_seed)))
    if not frames:
        return pd.DataFrame(columns=["dataset", "protocol", "method", "slice", "queries", "seeds"])
    table = pd.concat(frames, ignore_index=True)
    first = ["dataset", "protocol", "method", "slice", "queries", "seeds"]
    return table[first + [column for column in table.columns if column not in first]]


def compare(
    tracking_uri: str, runs_a: Sequence[str], runs_b: Sequence[str], protocol: str, resamples: int, confidence: float
) -> tuple[list[Difference], pd.DataFrame]:
    """A − B with paired intervals, and each side's seed-to-seed std of the point metrics."""
    a = [require_ranks(tracking_uri, run_id, protocol) for run_id in runs_a]
    b = [require_ranks(tracking_uri, run_id, protocol) for run_id in runs_b]
    differences = paired_differences(a, b, resamples, confidence)
    spread = pd.DataFrame(
        {side: pd.DataFrame([point_metrics(ranks) for ranks in runs]).std(ddof=1) for side, runs in (("A", a), ("B", b))}
    )
    return differences, spread


def runs_of_label(tracking_uri: str, experiment_id: str, label: str, dataset: str | None) -> tuple[list[str], str]:
    """The finished runs (newest per seed) of one leaderboard row, and its dataset."""
    results = job_results(tracking_uri, experiment_id)
    rows = results[results["method"] == label]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        raise UserError(f"no finished runs of '{label}' in this experiment{closest(label, sorted(set(results['method'])))}")
    datasets = sorted(set(rows["dataset"]))
    if len(datasets) > 1:
        raise UserError(f"'{label}' ran on several datasets ({', '.join(datasets)}); pick one with --dataset")
    return list(dict.fromkeys(rows["run_id"])), datasets[0]


@dataclass(frozen=True)
class Comparison:
    """`itr compare`'s answer: the runs on each side, the protocol, the paired differences, and
    each side's seed-to-seed std (`compare`)."""

    runs_a: list[str]
    runs_b: list[str]
    protocol: str
    differences: list[Difference]
    spread: pd.DataFrame


def compare_labels(
    a: str,
    b: str,
    experiment_name: str | None,
    dataset: str | None,
    protocol: str | None,
    results_dir: Path,
    tracking_uri: str | None,
    resamples: int,
    confidence: float,
) -> Comparison:
    """A against B: two job run ids, or with `experiment_name` two method labels of its
    leaderboard (all their seeds); `protocol` defaults to the first A was evaluated on."""
    from harness.statistics.store import first_protocol
    from harness.tracking import choose_tracking_uri, require_experiment, require_store

    uri = choose_tracking_uri(tracking_uri, None, results_dir)
    require_store(uri)
    if experiment_name is not None:
        experiment_id = require_experiment(uri, experiment_name)
        runs_a, _ = runs_of_label(uri, experiment_id, a, dataset)
        runs_b, _ = runs_of_label(uri, experiment_id, b, dataset)
    else:
        runs_a, runs_b = [a], [b]
    protocol = protocol or first_protocol(uri, runs_a[0])
    differences, spread = compare(uri, runs_a, runs_b, protocol, resamples, confidence)
    return Comparison(runs_a, runs_b, protocol, differences, spread)
