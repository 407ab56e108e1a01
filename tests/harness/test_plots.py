"""Leaderboard figures: one recall chart per table, one axis figure per grid with 1 or 2 swept axes."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from harness.leaderboard import METRIC_COLUMNS, leaderboard_table
from harness.plots import write_plots


def board(cells):
    """A leaderboard of group 'g' whose cells are {axis: value} dicts, rSum = 100 + sum of values."""
    records = []
    for index, axes in enumerate(cells):
        for metric in METRIC_COLUMNS:
            records.append(
                {"dataset": "d", "protocol": "full", "method": f"g{index}", "group": "g", "seed": "0", "metric": metric,
                 "value": 100.0 + sum(axes.values()) if metric == "rsum" else 10.0,
                 **{f"axis:{key}": str(value) for key, value in axes.items()}}
            )
    return leaderboard_table(pd.DataFrame(records))


def test_one_swept_axis_gives_a_line_figure(tmp_path):
    paths = write_plots(board([{"u1": 0.0}, {"u1": 0.5}, {"u1": 1.0}]), tmp_path)
    assert sorted(path.name for path in paths) == ["axis_g_u1_d-full.png", "recall_d-full.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.size[0] > 100 and image.size[1] > 100


def test_two_swept_axes_give_a_heat_map(tmp_path):
    cells = [{"a": a, "b": b} for a in (1, 2) for b in (1, 2, 3)]
    names = sorted(path.name for path in write_plots(board(cells), tmp_path))
    assert names == ["axis_g_a-b_d-full.png", "recall_d-full.png"]


def test_no_axis_figure_without_a_grid_or_with_three_axes(tmp_path):
    assert [p.name for p in write_plots(board([{}]), tmp_path / "none")] == ["recall_d-full.png"]
    three = [{"a": a, "b": b, "c": c} for a in (1, 2) for b in (1, 2) for c in (1, 2)]
    assert [p.name for p in write_plots(board(three), tmp_path / "three")] == ["recall_d-full.png"]
