"""Publishing an experiment's leaderboard: statistics, observer hooks, tables, slices, plots,
the report page (`harness.report`), and their copies attached to the experiment's parent run.

`itr run` publishes after its jobs, `itr leaderboard` on demand; both call `publish_leaderboard`.
`itr slices` publishes one more slicing; the report shows it from the next `itr leaderboard` on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.atomic import write_text_atomically

if TYPE_CHECKING:
    import pandas as pd

    from harness.report import JobRun, Slices

SLICES_PREFIX = "slices_"


@dataclass(frozen=True)
class Published:
    """What was published: the rendered leaderboard, and the files written."""

    text: str
    tables: list[Path]
    plots: list[Path]
    report: Path
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
    slices, plots and report page under ``results_dir/name``, attach them to the parent run (when
    given), and return it rendered as `fmt`."""
    from harness import leaderboard
    from harness.plots import method_colours, slice_bars, write_plots
    from harness.report import Report, write_report
    from harness.statistics.reports import leaderboard_with_statistics, slice_table
    from harness.tracking import log_artifacts, require_experiment

    experiment_id = require_experiment(tracking_uri, name)
    board = leaderboard_with_statistics(tracking_uri, experiment_id, sort_by, confidence, resamples)
    observers.on_leaderboard(board)
    folder = results_dir / name
    tables = leaderboard.write(board, folder, spread, confidence)
    slices = slice_table(tracking_uri, experiment_id)
    tables.append(_write_slices(folder, "length", slices))
    colours = method_colours(board["method"])
    figures = write_plots(board, folder / "plots", colours, spread, confidence)
    plots = figures + slice_bars(slices, folder / "plots", "length", colours)
    report = Report(
        name,
        tracking_uri,
        experiment_id,
        leaderboard.render(board, "html", spread, confidence),
        figures,
        _published_slices(folder),
        _job_runs(tracking_uri, experiment_id),
    )
    report_path = write_report(report, folder)
    if parent_run_id is not None:
        log_artifacts(tracking_uri, parent_run_id, tables, artifact_path="leaderboard")
        log_artifacts(tracking_uri, parent_run_id, plots, artifact_path="plots")
        log_artifacts(tracking_uri, parent_run_id, [report_path], artifact_path="report")
    return Published(leaderboard.render(board, fmt, spread, confidence), tables, plots, report_path, folder)


def publish_slices(tracking_uri: str, name: str, results_dir: Path, by: str, thresholds: tuple[int, int]) -> tuple[Any, Path, list[Path]]:
    """(t2i recall by caption slice, its CSV, its plots) of experiment `name`; methods keep the
    colours of the leaderboard's figures."""
    from harness.leaderboard import job_results
    from harness.plots import method_colours, slice_bars
    from harness.statistics.reports import slice_table
    from harness.tracking import require_experiment

    experiment_id = require_experiment(tracking_uri, name)
    table = slice_table(tracking_uri, experiment_id, by, thresholds)
    folder = results_dir / name
    colours = method_colours(job_results(tracking_uri, experiment_id)["method"])
    return table, _write_slices(folder, by, table), slice_bars(table, folder / "plots", by, colours)


def _write_slices(folder: Path, by: str, table: pd.DataFrame) -> Path:
    return write_text_atomically(folder / f"{SLICES_PREFIX}{by}.csv", table.to_csv(index=False, float_format="%.2f"))


def _published_slices(folder: Path) -> list[Slices]:
    """Every slicing published under `folder` (``slices_<by>.csv``, by `itr run` or `itr slices`),
    with its figures."""
    import pandas as pd

    from harness.plots import slice_plot_prefix
    from harness.report import Slices

    found = []
    for path in sorted(folder.glob(f"{SLICES_PREFIX}*.csv")):
        by = path.stem.removeprefix(SLICES_PREFIX)
        found.append(Slices(by, pd.read_csv(path), sorted((folder / "plots").glob(f"{slice_plot_prefix(by)}*.png"))))
    return found


def _job_runs(tracking_uri: str, experiment_id: str) -> list[JobRun]:
    """The runs behind the leaderboard's rows, one per (row, seed), with their configuration."""
    import mlflow

    from harness.leaderboard import FINISHED_JOBS, job_results
    from harness.report import JobRun

    runs = mlflow.MlflowClient(tracking_uri).search_runs([experiment_id], filter_string=FINISHED_JOBS, max_results=50000)
    params = {run.info.run_id: run.data.params for run in runs}
    jobs = job_results(tracking_uri, experiment_id).drop_duplicates(subset="run_id").sort_values(["dataset", "method", "seed"])
    return [JobRun(row.method, row.dataset, str(row.seed), row.run_id, params.get(row.run_id, {})) for row in jobs.itertuples()]
