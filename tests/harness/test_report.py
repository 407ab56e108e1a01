"""The report page: every table, the figures inline, the slices, each job's configuration and
its MLflow run, user text escaped; and the page as a real browser (headless Chromium) shows it."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.leaderboard import METRIC_COLUMNS, leaderboard_table, render
from harness.metrics import RECALLS, RSUM
from harness.plots import method_colours, slice_bars, write_plots
from harness.report import JobRun, Report, Slices, render_report, run_url, write_report
from tests.helpers import pixels_of

METHODS = {"class-bridge": 300.0, "vse++": 200.0, "<b>ascl</b>": 100.0}
HOSTILE = "<img src=x onerror=alert(1)>"


def synthetic_board() -> pd.DataFrame:
    """One seed per method, with the intervals and marks `add_statistics` would add."""
    records = [
        {
            "dataset": "coco-demo",
            "protocol": "full",
            "method": method,
            "group": method,
            "seed": "0",
            "metric": metric,
            "value": rsum if metric == RSUM else rsum / 6 if metric in RECALLS else 3.0,
        }
        for method, rsum in METHODS.items()
        for metric in METRIC_COLUMNS
    ]
    board = leaderboard_table(pd.DataFrame(records))
    for metric in [*RECALLS, RSUM]:
        board[f"{metric}_ci"] = 4.0
        board[f"{metric}_mark"] = ["best", "tied", ""]
    return board


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    folder = tmp_path_factory.mktemp("report")
    board = synthetic_board()
    colours = method_colours(board["method"])
    slices = pd.DataFrame(
        [
            {
                "dataset": "coco-demo",
                "protocol": "full",
                "method": method,
                "slice": part,
                "queries": 30,
                "seeds": 1,
                "t2i_r1": r1,
            }
            for method in METHODS
            for part, r1 in (("short", 40.0), ("long", 25.0))
        ]
    )
    jobs = [
        JobRun(
            method,
            "coco-demo",
            "0",
            f"run{index:030d}",
            {"stages.main.loss.margin": "0.2", "note": HOSTILE},
        )
        for index, method in enumerate(METHODS)
    ]
    return Report(
        "demo",
        f"sqlite:///{folder / 'mlflow.db'}",
        "1",
        render(board, "html"),
        write_plots(board, folder / "plots", colours),
        [
            Slices(
                "length",
                slices,
                slice_bars(slices, folder / "plots", "length", colours),
            )
        ],
        jobs,
    )


def test_the_leaderboard_tables_figures_slices_and_configurations_are_on_the_page(
    report,
):
    page = render_report(report)
    assert (
        "<h2>coco-demo / full</h2>" in page
        and "<strong>300.0 ± 4.0</strong>" in page
        and "200.0 ± 4.0 ≈" in page
    )
    assert (
        page.count("<img ") == 2
        and "<h2>Slices by length</h2>" in page
        and "<td>40.0</td>" in page
    )
    assert (
        page.count("<details>") == len(METHODS)
        and "<td>stages.main.loss.margin</td><td>0.2</td>" in page
    )


def test_everything_users_wrote_is_escaped(report):
    page = render_report(report)
    assert "<b>ascl</b>" not in page and "&lt;b&gt;ascl&lt;/b&gt;" in page
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_page_needs_no_other_file(report):
    page = render_report(report)
    assert not re.search(r"<link|<script|src=\"(?!data:)|url\(", page)
    for source in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        with Image.open(io.BytesIO(base64.b64decode(source))) as image:
            assert image.format == "PNG"


def test_a_sqlite_store_says_how_to_open_it_and_lists_the_run_ids(report):
    page = render_report(report)
    assert (
        f"mlflow ui --backend-store-uri {report.tracking_uri}" in page
        and "http://127.0.0.1:5000/#/experiments/1" in page
    )
    assert (
        all(f"<code>{job.run_id}</code>" in page for job in report.jobs)
        and "<a href" not in page
    )


def test_a_server_links_each_run_and_never_shows_its_credentials(report):
    served = dataclasses.replace(
        report, tracking_uri="https://me:secret@mlflow.lab:5000/", plots=[], slices=[]
    )
    page = render_report(served)
    first = report.jobs[0].run_id
    assert (
        f'<a href="https://mlflow.lab:5000/#/experiments/1/runs/{first}"><code>{first}</code></a>'
        in page
    )
    assert "secret" not in page and "me@" not in page
    assert run_url(report.tracking_uri, "1", first) is None


def test_the_page_is_written_atomically_as_index_html(report, tmp_path):
    path = write_report(dataclasses.replace(report, plots=[], slices=[]), tmp_path)
    assert path == tmp_path / "index.html" and path.read_text(
        encoding="utf-8"
    ).startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


# In a real browser -------------------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "no chromium or chromium-browser on PATH: install chromium (make test installs it)"
        )
    return found


def browse(page: Path, *arguments: str) -> str:
    """Headless Chromium on `page` (its own throw-away profile); returns what it printed."""
    profile = page.parent / f"profile-{page.stem}"
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *arguments,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path) -> np.ndarray:
    shot = page.with_suffix(".png")
    browse(page, f"--screenshot={shot}", "--window-size=1280,3000")
    with Image.open(shot) as image:
        return np.asarray(image.convert("RGB"))


def distinct_colours(rgb: np.ndarray) -> int:
    packed = (
        (rgb[..., 0].astype(np.uint32) << 16)
        | (rgb[..., 1].astype(np.uint32) << 8)
        | rgb[..., 2]
    )
    return len(np.unique(packed))


@pytest.fixture(scope="module")
def pages(report, tmp_path_factory) -> tuple[Path, Path]:
    """The report page, and the same page with its images taken out."""
    folder = tmp_path_factory.mktemp("browser")
    full = write_report(report, folder)
    bare = folder / "bare.html"
    bare.write_text(
        re.sub(r"<img [^>]*>", "", full.read_text(encoding="utf-8")), encoding="utf-8"
    )
    return full, bare


def test_the_browser_shows_the_tables_and_the_figures(pages):
    full, bare = (screenshot(page) for page in pages)
    assert (full.min(axis=-1) < 250).mean() > 0.02, "the page renders blank"
    assert pixels_of(full, "#cccccc") > 2000 and pixels_of(bare, "#cccccc") > 2000, (
        "no table borders drawn"
    )
    for method, colour in method_colours(METHODS).items():
        assert pixels_of(full, colour) > 500, f"{method}'s bars are not on the page"
        assert pixels_of(bare, colour) == 0
    assert distinct_colours(full) > 2 * distinct_colours(bare)


class Elements(HTMLParser):
    """How many tables a document has, its text nodes and its image sources."""

    def __init__(self) -> None:
        super().__init__()
        self.tables, self.texts, self.images = 0, [], []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tables += tag == "table"
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_the_browser_dom_has_every_table_and_png_images_inline(pages, report):
    found = Elements()
    found.feed(browse(pages[0], "--dump-dom"))
    assert found.tables == 1 + 1 + 1 + len(
        report.jobs
    )  # leaderboard, slices, jobs, one per configuration
    assert (
        "<b>ascl</b>" in found.texts and HOSTILE in found.texts
    )  # shown as text, not parsed as tags
    assert len(found.images) == 2
    for source in found.images:
        assert source.startswith("data:image/png;base64,")
        with Image.open(
            io.BytesIO(base64.b64decode(source.removeprefix("data:image/png;base64,")))
        ) as image:
            image.verify()
            assert image.format == "PNG"
