"""The Recall@K / rSum leaderboard, built from MLflow runs.

Rows come from finished job runs of one experiment; for each config hash only the newest run
counts (a rerun replaces, never duplicates). Seeds of the same method and dataset are averaged,
with the number of seeds shown. One table lists every (dataset, protocol), best rSum first.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.tracking import JOB_KIND

RECALL_COLUMNS = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"]
RANK_COLUMNS = ["i2t_medr", "t2i_medr"]
KEY_COLUMNS = ["dataset", "protocol", "method"]


def job_results(tracking_uri: str, experiment_id: str) -> pd.DataFrame:
    """One row per (finished job run, protocol, metric), newest run per config hash."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.`itr.kind` = '{JOB_KIND}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=100000,
        output_format="pandas",
    )
    if runs.empty:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "seed", "metric", "value"])
    runs = runs.drop_duplicates(subset="tags.itr.config_hash", keep="first")
    metric_columns = [c for c in runs.columns if c.startswith("metrics.") and "/" in c and not c.startswith("metrics.train/")]
    long = runs.melt(
        id_vars=["tags.itr.label", "tags.itr.dataset", "tags.itr.seed"],
        value_vars=metric_columns,
        var_name="metric",
        value_name="value",
    ).dropna(subset=["value"])
    split = long["metric"].str.removeprefix("metrics.").str.split("/", n=1, expand=True)
    return pd.DataFrame(
        {
            "dataset": long["tags.itr.dataset"],
            "protocol": split[0],
            "method": long["tags.itr.label"],
            "seed": long["tags.itr.seed"],
            "metric": split[1],
            "value": long["value"].astype(float),
        }
    )


def leaderboard_table(results: pd.DataFrame) -> pd.DataFrame:
    """Seed-averaged metrics per (dataset, protocol, method), best rSum first within each group."""
    columns = [*KEY_COLUMNS, "seeds", *RECALL_COLUMNS, *RANK_COLUMNS]
    if results.empty:
        return pd.DataFrame(columns=columns)
    table = results.pivot_table(index=[*KEY_COLUMNS, "seed"], columns="metric", values="value", aggfunc="first")
    seeds = table.groupby(level=KEY_COLUMNS).size().rename("seeds")
    means = table.groupby(level=KEY_COLUMNS).mean()
    board = means.join(seeds).reset_index()
    board = board.reindex(columns=columns)
    return board.sort_values(["dataset", "protocol", "rsum"], ascending=[True, True, False], ignore_index=True)


def render(board: pd.DataFrame) -> str:
    """The leaderboard as a plain-text table for the terminal."""
    from tabulate import tabulate

    return tabulate(board, headers="keys", tablefmt="github", floatfmt=".1f", showindex=False)


def write(board: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` under `folder` atomically; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "leaderboard.csv", folder / "leaderboard.md"
    for path, text in ((csv_path, board.to_csv(index=False, float_format="%.2f")), (md_path, render(board) + "\n")):
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_text(text, encoding="utf-8")
        staging.replace(path)
    return csv_path, md_path
