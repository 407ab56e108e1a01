"""Figures of a leaderboard, written as PNG files beside it.

- ``recall_<dataset>_<protocol>.png``: R@1/5/10 in both directions per method (bars), one figure
  per table of the leaderboard.
- ``axis_<group>_<axis>_<dataset>_<protocol>.png``: for a grid with one swept axis, rSum against
  the axis value (a line); with two, a heat map of rSum over both.
- ``slices_<by>_<dataset>_<protocol>.png``: t2i R@1 per caption slice and method.

Error bars are the leaderboard's spread (`harness.leaderboard.spreads`): by default the bootstrap
interval over queries, which a single seed has too. A method keeps one colour in every figure of
an experiment (`method_colours`), so a reader can follow it from chart to chart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from harness.atomic import write_atomically
from harness.leaderboard import AXIS_PREFIX, sections, spread_description, spreads
from harness.metrics import RECALLS

PALETTE = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"),
)
"""matplotlib's tab10, then its lighter tab20 partners: 20 colours before any repeats."""


def method_colours(methods: Iterable[str]) -> dict[str, str]:
    """One colour per method name, assigned in name order: every figure of an experiment draws
    from the same map, whatever order or subset of methods it shows."""
    return {method: PALETTE[index % len(PALETTE)] for index, method in enumerate(sorted(set(map(str, methods))))}


def write_plots(
    board: pd.DataFrame, folder: Path, colours: Mapping[str, str], spread: str = "ci", confidence: float = 0.95, metric: str = "rsum"
) -> list[Path]:
    """Every figure of `board` under `folder` (created), methods in `colours`, error bars the
    `spread` of the leaderboard (`harness.leaderboard.spreads`); returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for title, rows in sections(board):
        note = f"error bars: {spread_description(spread, confidence)}"
        paths.append(_recall_bars(rows, colours, spread, f"{title}\n{note}", folder / f"recall_{_slug(title)}.png"))
        for group, cells in rows.groupby("group", sort=False):
            axes = [c for c in cells.columns if c.startswith(AXIS_PREFIX) and (cells[c].fillna("") != "").any()]
            swept = [axis for axis in axes if cells[axis].nunique() > 1]
            if len(swept) in (1, 2):
                name = "_".join(axis.removeprefix(AXIS_PREFIX) for axis in swept)
                path = folder / f"axis_{_slug(str(group))}_{_slug(name)}_{_slug(title)}.png"
                if len(swept) == 1:
                    paths.append(_axis_line(cells, swept[0], metric, spread, f"{group} on {title}\n{note}", path))
                else:
                    paths.append(_axis_heatmap(cells, swept, metric, f"{group} on {title}", path))
    return paths


def _recall_bars(rows: pd.DataFrame, colours: Mapping[str, str], spread: str, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(RECALLS) * len(rows) ** 0.5 + 4), 4))
    width = 0.8 / max(len(rows), 1)
    positions = np.arange(len(RECALLS))
    errors = pd.DataFrame({m: spreads(rows, m, spread) for m in RECALLS}).fillna(0.0)
    for offset, (index, row) in enumerate(rows.iterrows()):
        method = str(row["method"])
        ax.bar(
            positions + offset * width, [row[m] for m in RECALLS], width, yerr=errors.loc[index].tolist(), capsize=2,
            color=colours[method], label=method,
        )
    ax.set_xticks(positions + width * (len(rows) - 1) / 2, RECALLS)
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def _axis_line(cells: pd.DataFrame, axis: str, metric: str, spread: str, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ordered = cells.assign(_x=_sortable(cells[axis])).sort_values("_x")
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = ordered[axis].astype(str).tolist()
    ax.errorbar(range(len(ordered)), ordered[metric], yerr=spreads(ordered, metric, spread).fillna(0.0), marker="o", capsize=3)
    ax.set_xticks(range(len(ordered)), labels)
    ax.set_xlabel(axis.removeprefix(AXIS_PREFIX))
    ax.set_ylabel(metric)
    ax.set_title(title)
    return _save(fig, path)


def _axis_heatmap(cells: pd.DataFrame, swept: list[str], metric: str, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    rows_axis, columns_axis = swept
    grid = cells.pivot_table(index=rows_axis, columns=columns_axis, values=metric, aggfunc="mean")
    grid = grid.reindex(index=sorted(grid.index, key=_sort_key), columns=sorted(grid.columns, key=_sort_key))
    fig, ax = plt.subplots(figsize=(1.2 * len(grid.columns) + 3, 0.6 * len(grid.index) + 2.5))
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    ax.set_xlabel(columns_axis.removeprefix(AXIS_PREFIX))
    ax.set_ylabel(rows_axis.removeprefix(AXIS_PREFIX))
    for (i, j), value in pd.DataFrame(grid.to_numpy()).stack().items():
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white", fontsize="small")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(title)
    return _save(fig, path)


def _sort_key(value: object) -> tuple[int, float, str]:
    """Numbers in numeric order before any text."""
    try:
        return (0, float(str(value)), "")
    except ValueError:
        return (1, 0.0, str(value))


def _sortable(values: pd.Series) -> pd.Series:
    return values.map(_sort_key)


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        return write_atomically(path, lambda staging: fig.savefig(staging, dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def slice_plot_prefix(by: str) -> str:
    """How the names of the figures of slicing `by` begin."""
    return f"slices_{_slug(by)}_"


def slice_bars(table: pd.DataFrame, folder: Path, by: str, colours: Mapping[str, str]) -> list[Path]:
    """t2i R@1 per slice and method, one figure per (dataset, protocol) of a slice table,
    methods in `colours`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for (dataset, protocol), rows in table.groupby(["dataset", "protocol"], sort=False):
        grid = rows.pivot_table(index="slice", columns="method", values="t2i_r1", sort=False)
        fig, ax = plt.subplots(figsize=(1.5 * len(grid.index) + 4, 4))
        grid.plot.bar(ax=ax, rot=0, color=[colours[str(method)] for method in grid.columns])
        ax.set_ylabel("t2i R@1 (%)")
        ax.set_xlabel(f"caption query slice ({by})")
        ax.set_title(f"{dataset} / {protocol}")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        paths.append(_save(fig, folder / f"{slice_plot_prefix(by)}{_slug(f'{dataset} {protocol}')}.png"))
    return paths
