"""Publishing an experiment's leaderboard: statistics, observer hooks, tables, slices, plots,
and their copies attached to the experiment's parent run.

`itr run` publishes after its jobs, `itr leaderboard` on demand; both call `publish_leaderboard`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import write_text_atomically


@dataclass(frozen=True)
class Published:
    """What was published: the rendered leaderboard, and the files written."""

    text: str
    tables: list[Path]
    plots: list[Path]
    folder: Path


def publish_leaderboard(
    observers: Any,
    tracking_uri: str,
    name: str,
    results_dir: Path,
    parent_run_id: str | None = None,
    sort_by: str = "rsum",
    fmt: str = "markdown",
    spread: str = "ci",
    confidence: float = 0.95,
    resamples: int = 1000,
) -> Published:
    """Build experiment `name`'s leaderboard from MLflow, let observers see it, write its tables,
    slices and plots under ``results_dir/name``, attach them to the parent run (when given), and
    return it rendered as `fmt`."""
    from harness import leaderboard
    from harness.plots import slice_bars, write_plots
    from harness.statistics.reports import leaderboard_with_statistics, slice_table
    from harness.tracking import log_artifacts, require_experiment

    experiment_id = require_experiment(tracking_uri, name)
    board = leaderboard_with_statistics(tracking_uri, experiment_id, sort_by, confidence, resamples)
    observers.on_leaderboard(board)
    folder = results_dir / name
    tables = leaderboard.write(board, folder, spread, confidence)
    slices = slice_table(tracking_uri, experiment_id)
    tables.append(write_text_atomically(folder / "slices_length.csv", slices.to_csv(index=False, float_format="%.2f")))
    plots = write_plots(board, folder / "plots") + slice_bars(slices, folder / "plots", "length")
    if parent_run_id is not None:
        log_artifacts(tracking_uri, parent_run_id, tables, artifact_path="leaderboard")
        log_artifacts(tracking_uri, parent_run_id, plots, artifact_path="plots")
    return Published(leaderboard.render(board, fmt, spread, confidence), tables, plots, folder)


def publish_slices(tracking_uri: str, name: str, results_dir: Path, by: str, thresholds: tuple[int, int]) -> tuple[Any, Path, list[Path]]:
    """(t2i recall by caption slice, its CSV, its plots) of experiment `name`."""
    from harness.plots import slice_bars
    from harness.statistics.reports import slice_table
    from harness.tracking import require_experiment

    table = slice_table(tracking_uri, require_experiment(tracking_uri, name), by, thresholds)
    folder = results_dir / name
    csv_path = write_text_atomically(folder / f"slices_{by}.csv", table.to_csv(index=False, float_format="%.2f"))
    return table, csv_path, slice_bars(table, folder / "plots", by)
