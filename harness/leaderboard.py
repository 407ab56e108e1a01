"""The Recall@K / rSum leaderboard, built from MLflow runs.

Rows come from finished job runs of one experiment; for each config hash only the newest run
counts (a rerun replaces, never duplicates). Seeds of the same cell are summarised as mean and
standard deviation, with the number of seeds shown. Grid cells carry their axis values as
columns (``axis:similarity_head.u1``), each the value the cell ran with (an ``include`` cell's
recipe value too, `harness.experiment.grid.ran_with`). There is one table per (dataset,
protocol), sorted by any metric (rSum by default, best first). `harness.statistics.board` adds bootstrap intervals and
marks the rows not significantly different from the best; cells read ``value ± spread``, the best
in bold (Markdown ``**…**``, HTML ``<strong>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from harness.atomic import write_text_atomically
from harness.errors import UserError, closest
from harness.experiment.grid import NOT_APPLICABLE
from harness.markup import Html, escape, page, strong, table
from harness.metrics import MEDIAN_RANKS, RECALLS, RSUM
from harness.tracking import JOB_KIND, NON_PROTOCOL_PREFIXES

RECALL_COLUMNS = [*RECALLS, RSUM]
RANK_COLUMNS = list(MEDIAN_RANKS)
METRIC_COLUMNS = [*RECALL_COLUMNS, *RANK_COLUMNS]
LOWER_IS_BETTER = frozenset(RANK_COLUMNS)
KEY_COLUMNS = ["dataset", "protocol", "method"]
AXIS_PREFIX = "axis:"
AXIS_TAG = "tags.itr.axis."
FORMATS = ("markdown", "csv", "html")
FINISHED_JOBS = f"tags.`itr.kind` = '{JOB_KIND}' and attributes.status = 'FINISHED'"
"""The MLflow filter of the runs a leaderboard is built from."""


def job_results(tracking_uri: str, experiment_id: str) -> pd.DataFrame:
    """One row per (finished job run, protocol, metric), newest run per config hash, with the
    cell's group and axis values."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=FINISHED_JOBS,
        order_by=["attributes.start_time DESC"],
        max_results=100000,
        output_format="pandas",
    )
    if runs.empty:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "group", "seed", "run_id", "metric", "value"])
    runs = runs.drop_duplicates(subset="tags.itr.config_hash", keep="first")
    if "tags.itr.group" not in runs:
        runs["tags.itr.group"] = runs["tags.itr.label"]
    axis_tags = [column for column in runs.columns if column.startswith(AXIS_TAG)]
    _fill_untagged_axes(runs, axis_tags)
    metric_columns = [c for c in runs.columns if c.startswith("metrics.") and "/" in c and not c.removeprefix("metrics.").startswith(NON_PROTOCOL_PREFIXES)]
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
        frame[AXIS_PREFIX + tag.removeprefix(AXIS_TAG)] = long[tag]
    return frame


def _fill_untagged_axes(runs: pd.DataFrame, axis_tags: list[str]) -> None:
    """Give each run of a grid a value for every axis of its block. Runs logged by older
    versions tagged an ``include`` cell with the keys it set only; the value it ran with for the
    others is in its params (the resolved config: a component by its ``.name``)."""
    blocks = runs["tags.itr.group"].fillna(runs["tags.itr.label"])
    for tag in axis_tags:
        key = tag.removeprefix(AXIS_TAG)
        untagged = runs[tag].isna() & runs[tag].notna().groupby(blocks).transform("any")
        if not untagged.any():
            continue
        value = pd.Series(NOT_APPLICABLE, index=runs.index, dtype=object)
        for column in (f"params.{key}.name", f"params.{key}"):
            if column in runs:
                value = runs[column].where(runs[column].notna(), value)
        runs.loc[untagged, tag] = value[untagged]


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


def _markdown_bold(text: str) -> str:
    return f"**{text}**"


def spreads(rows: pd.DataFrame, metric: str, spread: str = "ci") -> pd.Series:
    """`metric`'s spread in each row: ``ci``, the bootstrap interval half-width over queries
    (there for one seed too), or ``std`` over seeds (empty for one seed); NaN where unknown."""
    return rows.get(f"{metric}_ci" if spread == "ci" else f"{metric}_std", pd.Series(np.nan, index=rows.index))


def display_frame(rows: pd.DataFrame, spread: str = "ci", bold: Callable[[str], str] = _markdown_bold) -> pd.DataFrame:
    """One table as people read it: ``value ± spread`` cells (`spreads`), the best `bold`,
    ``≈`` on rows not significantly different from the best, and only the axes this table varies."""
    axes = [column for column in rows.columns if column.startswith(AXIS_PREFIX) and (rows[column].fillna("") != "").any()]
    shown = rows[["method", *axes, "seeds"]].rename(columns={axis: axis.removeprefix(AXIS_PREFIX) for axis in axes})
    for metric in METRIC_COLUMNS:
        marks = rows.get(f"{metric}_mark", pd.Series("", index=rows.index)).fillna("")
        cells = [_cell(value, width, mark, bold) for value, width, mark in zip(rows[metric], spreads(rows, metric, spread), marks)]
        shown[metric] = pd.Series(cells, index=rows.index, dtype=object)  # object: `Html` cells stay `Html`
    return shown.reset_index(drop=True)


def spread_description(spread: str, confidence: float) -> str:
    """What ``±`` (and a figure's error bars) stand for."""
    return f"{confidence:.0%} bootstrap interval half-width over queries" if spread == "ci" else "std over seeds"


def legend(spread: str, confidence: float, bold: Callable[[str], str] = _markdown_bold) -> str:
    return f"± {spread_description(spread, confidence)}; {bold('bold')}: best; ≈: not significantly different from the best (paired bootstrap)."


def _cell(value: float, spread: float, mark: str, bold: Callable[[str], str]) -> str:
    if pd.isna(value):
        return ""
    text = f"{value:.1f}" if pd.isna(spread) else f"{value:.1f} ± {spread:.1f}"
    return bold(text) if mark == "best" else f"{text} ≈" if mark == "tied" else text


def render(board: pd.DataFrame, fmt: str = "markdown", spread: str = "ci", confidence: float = 0.95) -> str:
    """The leaderboard as text: Markdown tables (one per dataset/protocol), CSV or HTML (`Html`)."""
    from tabulate import tabulate

    if fmt == "csv":
        return board.to_csv(index=False, float_format="%.2f")
    parts = []
    for title, rows in sections(board):
        if fmt == "html":
            # the legend is the harness's own text: only `strong` puts markup in it
            note = Html(legend(spread, confidence, strong))
            parts.append(f"<h2>{escape(title)}</h2>\n{table(display_frame(rows, spread, strong))}\n<p>{note}</p>")
        else:
            shown = tabulate(display_frame(rows, spread), headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
            parts.append(f"### {title}\n\n{shown}\n\n{legend(spread, confidence)}")
    if not parts:
        return "(no finished jobs)"
    joined = "\n\n".join(parts)
    return Html(joined) if fmt == "html" else joined


def write(board: pd.DataFrame, folder: Path, spread: str = "ci", confidence: float = 0.95) -> list[Path]:
    """Write ``leaderboard.csv``, ``.md`` and ``.html`` under `folder`, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, suffix in (("csv", "csv"), ("markdown", "md"), ("html", "html")):
        path = folder / f"leaderboard.{suffix}"
        text = render(board, fmt, spread, confidence)
        paths.append(write_text_atomically(path, page("leaderboard", escape(text)) if fmt == "html" else text + ("" if fmt == "csv" else "\n")))
    return paths
