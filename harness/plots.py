"""Figures of a leaderboard, written as PNG files beside it.

- ``recall_<dataset>_<protocol>.png``: R@1/5/10 in both directions per method (bars, seed std as
  error bars), one figure per table of the leaderboard.
- ``axis_<group>_<axis>_<dataset>_<protocol>.png``: for a grid with one swept axis, rSum against
  the axis value (a line, std band over seeds); with two, a heat map of rSum over both.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.atomic import write_atomically
from harness.leaderboard import AXIS_PREFIX, sections
from harness.metrics import RECALLS


def write_plots(board: pd.DataFrame, folder: Path, metric: str = "rsum") -> list[Path]:
    """Every figure of `board` under `folder` (created); returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for title, rows in sections(board):
        paths.append(_recall_bars(rows, title, folder / f"recall_{_slug(title)}.png"))
        for group, cells in rows.groupby("group", sort=False):
            axes = [c for c in cells.columns if c.startswith(AXIS_PREFIX) and (cells[c].fillna("") != "").any()]
            swept = [axis for axis in axes if cells[axis].nunique() > 1]
            if len(swept) in (1, 2):
                name = "_".join(axis.removeprefix(AXIS_PREFIX) for axis in swept)
                path = folder / f"axis_{_slug(str(group))}_{_slug(name)}_{_slug(title)}.png"
                plot = _axis_line if len(swept) == 1 else _axis_heatmap
                paths.append(plot(cells, swept, metric, f"{group} on {title}", path))
    return paths


def _recall_bars(rows: pd.DataFrame, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(RECALLS) * len(rows) ** 0.5 + 4), 4))
    width = 0.8 / max(len(rows), 1)
    positions = np.arange(len(RECALLS))
    for offset, (_, row) in enumerate(rows.iterrows()):
        errors = [0.0 if pd.isna(row[f"{m}_std"]) else row[f"{m}_std"] for m in RECALLS]
        ax.bar(positions + offset * width, [row[m] for m in RECALLS], width, yerr=errors, label=str(row["method"]))
    ax.set_xticks(positions + width * (len(rows) - 1) / 2, RECALLS)
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def _axis_line(cells: pd.DataFrame, swept: list[str], metric: str, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    axis = swept[0]
    ordered = cells.assign(_x=_sortable(cells[axis])).sort_values("_x")
    fig, ax = plt.subplots(figsize=(6, 4))
    spread = ordered[f"{metric}_std"].fillna(0.0)
    labels = ordered[axis].astype(str).tolist()
    ax.errorbar(range(len(ordered)), ordered[metric], yerr=spread, marker="o", capsize=3)
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


def slice_bars(table: pd.DataFrame, folder: Path, by: str) -> list[Path]:
    """t2i R@1 per slice and method, one figure per (dataset, protocol) of a slice table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for (dataset, protocol), rows in table.groupby(["dataset", "protocol"], sort=False):
        grid = rows.pivot_table(index="slice", columns="method", values="t2i_r1", sort=False)
        fig, ax = plt.subplots(figsize=(1.5 * len(grid.index) + 4, 4))
        grid.plot.bar(ax=ax, rot=0)
        ax.set_ylabel("t2i R@1 (%)")
        ax.set_xlabel(f"caption query slice ({by})")
        ax.set_title(f"{dataset} / {protocol}")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        paths.append(_save(fig, folder / f"slices_{_slug(by)}_{_slug(f'{dataset} {protocol}')}.png"))
    return paths
