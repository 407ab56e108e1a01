"""An experiment's report page, ``results/<experiment>/index.html``: one file that holds the whole
result, so it can be mailed, attached to a run or opened from disk with nothing beside it.

It has every leaderboard table, the figures (PNG files inlined as data URIs), the slices that have
been published, and each job's configuration with the way to its MLflow run. Everything users
wrote (labels, axis values, configuration values, the tracking URI) is escaped (`harness.markup`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from harness.atomic import write_text_atomically
from harness.markup import Html, escape, page, table

REPORT_NAME = "index.html"


@dataclass(frozen=True)
class JobRun:
    """One job as the report lists it: its leaderboard row, its MLflow run and its configuration
    (the run's params: the flattened resolved job config, the dataset entry and the seed)."""

    label: str
    dataset: str
    seed: str
    run_id: str
    config: Mapping[str, str]


@dataclass(frozen=True)
class Slices:
    """A published slicing (``slices_<by>.csv``) and its figures."""

    by: str
    table: pd.DataFrame
    plots: list[Path]


@dataclass(frozen=True)
class Report:
    """What the page shows; `leaderboard` is `harness.leaderboard.render(board, "html")`."""

    name: str
    tracking_uri: str
    experiment_id: str
    leaderboard: Html
    plots: list[Path]
    slices: list[Slices]
    jobs: list[JobRun]


def write_report(report: Report, folder: Path) -> Path:
    """``folder/index.html``, written atomically."""
    return write_text_atomically(folder / REPORT_NAME, render_report(report))


def render_report(report: Report) -> Html:
    parts = [
        Html(f"<h1>{escape(report.name)}</h1>"),
        _store(report.tracking_uri, report.experiment_id),
        report.leaderboard,
        Html("<h2>Figures</h2>"),
        *map(_figure, report.plots),
    ]
    for slicing in report.slices:
        parts += [
            Html(f"<h2>Slices by {escape(slicing.by)}</h2>"),
            table(_one_decimal(slicing.table)),
            *map(_figure, slicing.plots),
        ]
    parts += [Html("<h2>Jobs</h2>"), _jobs(report)]
    return page(f"{report.name}: report", Html("\n".join(parts)))


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page on an MLflow server, or None for a store no server shows yet (SQLite, files)."""
    server = _server(tracking_uri)
    return (
        None
        if server is None
        else f"{server}/#/experiments/{experiment_id}/runs/{run_id}"
    )


def _server(tracking_uri: str) -> str | None:
    """The address of an MLflow server, or None when the store is not one."""
    return (
        _shown(tracking_uri).rstrip("/")
        if urlsplit(tracking_uri).scheme in ("http", "https")
        else None
    )


def _shown(tracking_uri: str) -> str:
    """The tracking URI without any user or password in it: the page may be shared."""
    netloc = urlsplit(tracking_uri).netloc
    return (
        tracking_uri.replace(netloc, netloc.rpartition("@")[2], 1)
        if "@" in netloc
        else tracking_uri
    )


def _store(tracking_uri: str, experiment_id: str) -> Html:
    server, shown = _server(tracking_uri), _shown(tracking_uri)
    if server is not None:
        link = f"{server}/#/experiments/{experiment_id}"
        return Html(f'<p>MLflow: <a href="{escape(link)}">{escape(link)}</a></p>')
    return Html(
        f"<p>MLflow store <code>{escape(shown)}</code>, experiment {escape(experiment_id)}. To open its runs, start "
        f"<code>mlflow ui --backend-store-uri {escape(shown)}</code> and go to "
        f"<code>http://127.0.0.1:5000/#/experiments/{escape(experiment_id)}</code>.</p>"
    )


def _figure(path: Path) -> Html:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return Html(
        f'<figure><img alt="{escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>{escape(path.name)}</figcaption></figure>'
    )


def _one_decimal(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(
        lambda column: (
            column.map("{:.1f}".format) if column.dtype.kind == "f" else column
        )
    )


def _jobs(report: Report) -> Html:
    rows = pd.DataFrame(
        [
            {
                "method": job.label,
                "dataset": job.dataset,
                "seed": job.seed,
                "MLflow run": _run(report, job.run_id),
            }
            for job in report.jobs
        ],
        columns=["method", "dataset", "seed", "MLflow run"],
        dtype=object,
    )
    configs = [
        Html(
            f"<details><summary>{escape(job.label)} on {escape(job.dataset)}, seed {escape(job.seed)}: configuration</summary>\n"
            f"{table(pd.DataFrame(sorted(job.config.items()), columns=['key', 'value']))}</details>"
        )
        for job in report.jobs
    ]
    return Html("\n".join([table(rows), *configs]))


def _run(report: Report, run_id: str) -> Html:
    url = run_url(report.tracking_uri, report.experiment_id, run_id)
    return (
        Html(f"<code>{escape(run_id)}</code>")
        if url is None
        else Html(f'<a href="{escape(url)}"><code>{escape(run_id)}</code></a>')
    )
