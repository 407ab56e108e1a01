"""The leaderboard table from per-seed results: seed statistics, axes, sorting, tables, formats."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.errors import UserError
from harness.leaderboard import METRIC_COLUMNS, display_frame, leaderboard_table, render, sections, write


def results(rows):
    """Long results as `job_results` returns them, from (dataset, method, seed, rsum, u1) rows."""
    records = []
    for dataset, method, seed, rsum, u1 in rows:
        for metric in METRIC_COLUMNS:
            value = rsum if metric == "rsum" else (rsum / 6 if metric.endswith(("r1", "r5", "r10")) else 3.0)
            records.append(
                {"dataset": dataset, "protocol": "full", "method": method, "group": method.split("[")[0],
                 "seed": str(seed), "metric": metric, "value": value, "axis:similarity_head.u1": u1}
            )
    return pd.DataFrame(records)


ROWS = [
    ("coco", "ascl[u1=0.8]", 0, 300.0, "0.8"),
    ("coco", "ascl[u1=0.8]", 1, 310.0, "0.8"),
    ("coco", "ascl[u1=1.0]", 0, 320.0, "1.0"),
    ("coco", "vse++", 0, 200.0, None),
    ("f30k", "vse++", 0, 250.0, None),
]


def test_seeds_are_summarised_as_mean_and_sample_std():
    board = leaderboard_table(results(ROWS))
    row = board[(board["dataset"] == "coco") & (board["method"] == "ascl[u1=0.8]")].iloc[0]
    assert row["seeds"] == 2 and row["rsum"] == 305.0
    assert row["rsum_std"] == pytest.approx(pd.Series([300.0, 310.0]).std(ddof=1))
    single = board[(board["method"] == "ascl[u1=1.0]")].iloc[0]
    assert single["seeds"] == 1 and pd.isna(single["rsum_std"])


def test_one_table_per_dataset_and_protocol_best_first():
    board = leaderboard_table(results(ROWS))
    tables = {title: list(rows["method"]) for title, rows in sections(board)}
    assert tables == {"coco / full": ["ascl[u1=1.0]", "ascl[u1=0.8]", "vse++"], "f30k / full": ["vse++"]}


def test_sorting_by_a_rank_metric_puts_the_lowest_first():
    frame = results(ROWS)
    frame.loc[(frame["metric"] == "t2i_medr") & (frame["method"] == "vse++"), "value"] = 1.0
    board = leaderboard_table(frame, sort_by="t2i_medr")
    assert board[board["dataset"] == "coco"]["method"].iloc[0] == "vse++"


def test_an_unknown_sort_metric_is_a_user_error_with_a_hint():
    with pytest.raises(UserError, match="did you mean 'rsum'"):
        leaderboard_table(results(ROWS), sort_by="rsun")


def test_display_shows_mean_plus_minus_std_and_only_axes_a_table_varies():
    board = leaderboard_table(results(ROWS))
    tables = dict(sections(board))
    coco = display_frame(tables["coco / full"], spread="std")
    assert list(coco.columns[:3]) == ["method", "similarity_head.u1", "seeds"]
    assert coco.set_index("method").loc["ascl[u1=0.8]", "rsum"] == "305.0 ± 7.1"
    assert coco.set_index("method").loc["vse++", "rsum"] == "200.0"
    assert "similarity_head.u1" not in display_frame(tables["f30k / full"]).columns


def test_formats_and_files(tmp_path):
    board = leaderboard_table(results(ROWS))
    markdown = render(board)
    assert markdown.startswith("### coco / full") and "### f30k / full" in markdown
    assert "<h2>coco / full</h2>" in render(board, "html")
    paths = write(board, tmp_path)
    assert [path.name for path in paths] == ["leaderboard.csv", "leaderboard.md", "leaderboard.html"]
    again = pd.read_csv(paths[0])
    assert list(again["method"]) == list(board["method"]) and not list(tmp_path.glob(".*.tmp"))


def test_html_shows_the_best_in_strong_the_ties_marked_and_every_label_escaped():
    board = leaderboard_table(results([*ROWS, ("coco", "<script>x</script>", 0, 100.0, "a&b")]))
    coco = board[board["dataset"] == "coco"]
    board.loc[coco.index, "rsum_mark"] = ["best", "tied", "", ""]
    page = render(board, "html")
    assert "<td><strong>320.0</strong></td>" in page and "<td>305.0 ≈</td>" in page and "**" not in page
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page and "<td>a&amp;b</td>" in page
    assert "<strong>bold</strong>: best" in page


def test_the_html_file_is_a_whole_page_that_declares_its_encoding(tmp_path):
    written = write(leaderboard_table(results(ROWS)), tmp_path)[2].read_text(encoding="utf-8")
    assert written.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in written
    assert "<h2>coco / full</h2>" in written and "<table>" in written


def test_an_empty_experiment_renders_a_note():
    assert render(leaderboard_table(results([]).reindex(columns=["dataset", "protocol", "method", "group", "seed", "metric", "value"]))) == "(no finished jobs)"
