"""Leaderboard figures: one recall chart per table, one axis figure per grid with 1 or 2 swept
axes, one colour per method in every figure, and error bars a single seed has too."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from harness.leaderboard import METRIC_COLUMNS, leaderboard_table
from harness.metrics import RECALLS
from harness.plots import PALETTE, method_colours, slice_bars, write_plots
from tests.helpers import pixels_of


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


COLOURS = method_colours(f"g{index}" for index in range(8))


def test_one_swept_axis_gives_a_line_figure(tmp_path):
    paths = write_plots(board([{"u1": 0.0}, {"u1": 0.5}, {"u1": 1.0}]), tmp_path, COLOURS)
    assert sorted(path.name for path in paths) == ["axis_g_u1_d-full.png", "recall_d-full.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.size[0] > 100 and image.size[1] > 100


def test_two_swept_axes_give_a_heat_map(tmp_path):
    cells = [{"a": a, "b": b} for a in (1, 2) for b in (1, 2, 3)]
    names = sorted(path.name for path in write_plots(board(cells), tmp_path, COLOURS))
    assert names == ["axis_g_a-b_d-full.png", "recall_d-full.png"]


def test_no_axis_figure_without_a_grid_or_with_three_axes(tmp_path):
    assert [p.name for p in write_plots(board([{}]), tmp_path / "none", COLOURS)] == ["recall_d-full.png"]
    three = [{"a": a, "b": b, "c": c} for a in (1, 2) for b in (1, 2) for c in (1, 2)]
    assert [p.name for p in write_plots(board(three), tmp_path / "three", COLOURS)] == ["recall_d-full.png"]


def colour_in(path, colour: str) -> int:
    """How many pixels of the PNG at `path` are exactly `colour`."""
    with Image.open(path) as image:
        return pixels_of(np.asarray(image.convert("RGB")), colour)


def dark_pixels(path) -> int:
    with Image.open(path) as image:
        return int((np.asarray(image.convert("L")) < 80).sum())


def test_method_colours_are_one_per_name_whatever_the_order():
    colours = method_colours(["vse++", "ascl", "class-bridge", "ascl"])
    assert colours == method_colours(["class-bridge", "vse++", "ascl"])
    assert len(set(colours.values())) == 3
    assert len(set(method_colours(f"m{index}" for index in range(len(PALETTE))).values())) == len(PALETTE)


def test_a_method_keeps_its_colour_from_the_recall_chart_to_the_slice_chart(tmp_path):
    """The recall chart lists methods best first, the slice chart only those it has: neither
    order may decide a method's colour."""
    ranked = board([{}, {}]).assign(method=["zeta", "alpha"], rsum=[200.0, 100.0])
    colours = method_colours(["alpha", "zeta"])
    (recall,) = write_plots(ranked, tmp_path, colours)
    slices = pd.DataFrame({"dataset": "d", "protocol": "full", "method": "zeta", "slice": ["short", "long"], "t2i_r1": [40.0, 30.0]})
    (sliced,) = slice_bars(slices, tmp_path, "length", colours)
    assert colour_in(recall, colours["zeta"]) > 500 and colour_in(recall, colours["alpha"]) > 500
    assert colour_in(sliced, colours["zeta"]) > 500 and colour_in(sliced, colours["alpha"]) == 0


def test_one_seed_gets_the_bootstrap_interval_as_error_bars(tmp_path):
    single = board([{}])
    assert single["seeds"].item() == 1 and single["rsum_std"].isna().all()
    (without,) = write_plots(single, tmp_path / "without", COLOURS)
    (with_intervals,) = write_plots(single.assign(**{f"{m}_ci": 5.0 for m in RECALLS}), tmp_path / "with", COLOURS)
    assert dark_pixels(with_intervals) > dark_pixels(without) + 100
