"""The Recall@K / rSum leaderboard, built from MLflow runs.

Rows come from finished job runs of one experiment; for each config hash only the newest run
counts (a rerun replaces, never duplicates). Seeds of the same cell are summarised as mean and
standard deviation, with the number of seeds shown. Grid cells carry their axis values as
columns (``axis:similarity_head.u1``). There is one table per (dataset, protocol), sorted by any
metric (rSum by default, best first). `harness.statistics.board` adds bootstrap intervals and
marks the rows not significantly different from the best; cells read ``value ± spread``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from harness.atomic import write_text_atomically
from harness.errors import UserError, closest
from harness.metrics import MEDIAN_RANKS, RECALLS, RSUM
from harness.tracking import JOB_KIND

RECALL_COLUMNS = [*RECALLS, RSUM]
RANK_COLUMNS = list(MEDIAN_RANKS)
METRIC_COLUMNS = [*RECALL_COLUMNS, *RANK_COLUMNS]
LOWER_IS_BETTER = frozenset(RANK_COLUMNS)
KEY_COLUMNS = ["dataset", "protocol", "method"]
AXIS_PREFIX = "axis:"
FORMATS = ("markdown", "csv", "html")


def job_results(tracking_uri: str, experiment_id: str) -> pd.DataFrame:
    """One row per (finished job run, protocol, metric), newest run per config hash, with the
    cell's group and axis values."""
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
        return pd.DataFrame(columns=[*KEY_COLUMNS, "group", "seed", "run_id", "metric", "value"])
    runs = runs.drop_duplicates(subset="tags.itr.config_hash", keep="first")
    if "tags.itr.group" not in runs:
        runs["tags.itr.group"] = runs["tags.itr.label"]
    axis_tags = [column for column in runs.columns if column.startswith("tags.itr.axis.")]
    metric_columns = [c for c in runs.columns if c.startswith("metrics.") and "/" in c and not c.startswith("metrics.train/")]
    identity = ["run_id", "tags.itr.label", "tags.itr.group", "tags.itr.dataset", "tags.itr.seed", *axis_tags]
    long = runs[identity + metric_columns].melt(id_vars=identity, var_name="metric", value_name="value").dropna(subset=["value"])
    split = long["metric"].str.removeprefix("metrics.").str.split("/", n=1, expand=True)
    frame = pd.DataFrame(
        {
            "dataset": long["tags.itr.dataset"],
            "protocol": split[0],
            "method": long["tags.itr.label"],
            "group": long["tags.itr.group"].fillna(long["tags.itr.label"]),
            "seed": long["tags.itr.seed"],
            "run_id": long["run_id"],
            "metric": split[1],
            "value": long["value"].astype(float),
        }
    )
    for tag in axis_tags:
        frame[AXIS_PREFIX + tag.removeprefix("tags.itr.axis.")] = long[tag]
    return frame


def leaderboard_table(results: pd.DataFrame, sort_by: str = "rsum") -> pd.DataFrame:
    """Per (dataset, protocol, cell): axis values, seeds, the mean of every metric and its
    standard deviation over seeds (``<metric>_std``, empty for one seed); best `sort_by` first."""
    if sort_by not in METRIC_COLUMNS:
        raise UserError(f"--sort {sort_by}: unknown metric{closest(sort_by, METRIC_COLUMNS)}; metrics: {', '.join(METRIC_COLUMNS)}")
    axes = sorted(column for column in results.columns if column.startswith(AXIS_PREFIX))
    columns = [*KEY_COLUMNS, *axes, "group", "seeds", *METRIC_COLUMNS, *(f"{m}_std" for m in METRIC_COLUMNS)]
    if results.empty:
        return pd.DataFrame(columns=columns)
    cell = [*KEY_COLUMNS, "group", *axes]
    keyed = results.fillna({axis: "" for axis in axes})
    per_seed = keyed.pivot_table(index=[*cell, "seed"], columns="metric", values="value", aggfunc="first")
    grouped = per_seed.groupby(level=cell)
    board = grouped.mean().join(grouped.std(ddof=1).add_suffix("_std")).join(grouped.size().rename("seeds")).reset_index()
    board = board.reindex(columns=columns)
    return board.sort_values(
        ["dataset", "protocol", sort_by], ascending=[True, True, sort_by in LOWER_IS_BETTER], ignore_index=True
    )


def run_ids(results: pd.DataFrame) -> dict[tuple[str, str, str], list[str]]:
    """(dataset, protocol, method) -> the runs (one per seed) behind that leaderboard row."""
    if results.empty:
        return {}
    unique = results.drop_duplicates(subset=[*KEY_COLUMNS, "run_id"])
    return {key: list(rows["run_id"]) for key, rows in unique.groupby(KEY_COLUMNS, sort=False)}


def sections(board: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(``dataset / protocol``, its rows) for each table of the leaderboard, in order."""
    for (dataset, protocol), rows in board.groupby(["dataset", "protocol"], sort=False):
        yield f"{dataset} / {protocol}", rows


def display_frame(rows: pd.DataFrame, spread: str = "ci") -> pd.DataFrame:
    """One table as people read it: ``value ± spread`` cells (`spread`: ``ci``, the bootstrap
    interval half-width over queries, or ``std`` over seeds), **best** in bold, ``≈`` on rows not
    significantly different from the best, and only the axes this table varies."""
    axes = [column for column in rows.columns if column.startswith(AXIS_PREFIX) and (rows[column].fillna("") != "").any()]
    shown = rows[["method", *axes, "seeds"]].rename(columns={axis: axis.removeprefix(AXIS_PREFIX) for axis in axes})
    for metric in METRIC_COLUMNS:
        spreads = rows.get(f"{metric}_ci" if spread == "ci" else f"{metric}_std", pd.Series(np.nan, index=rows.index))
        marks = rows.get(f"{metric}_mark", pd.Series("", index=rows.index)).fillna("")
        shown[metric] = [_cell(value, width, mark) for value, width, mark in zip(rows[metric], spreads, marks)]
    return shown.reset_index(drop=True)


def legend(spread: str, confidence: float) -> str:
    what = f"{confidence:.0%} bootstrap interval half-width over queries" if spread == "ci" else "std over seeds"
    return f"± {what}; **bold**: best; ≈: not significantly different from the best (paired bootstrap)."


def _cell(value: float, spread: float, mark: str) -> str:
    if pd.isna(value):
        return ""
    text = f"{value:.1f}" if pd.isna(spread) else f"{value:.1f} ± {spread:.1f}"
    return f"**{text}**" if mark == "best" else f"{text} ≈" if mark == "tied" else text


def render(board: pd.DataFrame, fmt: str = "markdown", spread: str = "ci", confidence: float = 0.95) -> str:
    """The leaderboard as text: Markdown tables (one per dataset/protocol), CSV or HTML."""
    from tabulate import tabulate

    if fmt == "csv":
        return board.to_csv(index=False, float_format="%.2f")
    parts = []
    for title, rows in sections(board):
        shown = display_frame(rows, spread)
        note = legend(spread, confidence)
        if fmt == "html":
            parts.append(f"<h2>{html.escape(title)}</h2>\n{shown.to_html(index=False, escape=True)}\n<p>{html.escape(note)}</p>")
        else:
            table = tabulate(shown, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
            parts.append(f"### {title}\n\n{table}\n\n{note}")
    if not parts:
        return "(no finished jobs)"
    return "\n\n".join(parts)


def write(board: pd.DataFrame, folder: Path, spread: str = "ci", confidence: float = 0.95) -> list[Path]:
    """Write ``leaderboard.csv``, ``.md`` and ``.html`` under `folder`, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, suffix in (("csv", "csv"), ("markdown", "md"), ("html", "html")):
        path = folder / f"leaderboard.{suffix}"
        paths.append(write_text_atomically(path, render(board, fmt, spread, confidence) + ("" if fmt == "csv" else "\n")))
    return paths
