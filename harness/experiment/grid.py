"""Grid axes inside a method block: one method block becomes many cells.

A ``grid`` table in a method block holds axes, each a dotted config key with a list of values;
the cells are their Cartesian product, minus the ``exclude`` entries, plus the ``include``
entries (each one extra cell)::

    [methods.ascl]
    stages.main.epochs = 5
    [methods.ascl.grid]
    "similarity_head.u1" = [0.0, 0.8, 1.0]
    "generators.positive_weight" = [0.5, 0.6]
    exclude = [{ "similarity_head.u1" = 0.0, "generators.positive_weight" = 0.6 }]
    include = [{ similarity_head = { name = "cosine" } }]

A value may be a whole component table (a swap: ``similarity_head = [{ name = "ascl-fusion" },
{ name = "cosine" }]``) or a list (``"generators.positives" = [[], [{ name = "truncate-half" }]]``).
Cells are labelled ``ascl[u1=0.8,positive_weight=0.6]`` by the shortest unique key suffixes, so
the leaderboard reads without a legend; each cell's axis values also become its own columns.
A cell that does not set one of its block's keys (an ``include`` entry, or a grid cell beside an
include entry's extra key) runs with the recipe's value there; `ran_with` fills that value in
once the cell is resolved, so the plan, the leaderboard and the plots show it rather than a blank.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from harness.config.dotted import flatten, set_dotted
from harness.errors import UserError

GRID_KEY = "grid"
CONTROL_KEYS = ("include", "exclude")


@dataclass(frozen=True)
class Cell:
    """One point of a method block's grid: its label, axis values and config overrides."""

    label: str
    overrides: Mapping[str, Any]
    axes: Mapping[str, str] = field(default_factory=dict)
    """dotted key -> rendered value of the keys the cell sets (empty without a grid)."""
    block_keys: tuple[str, ...] = ()
    """Every key the block's cells set, in order: the columns each of its cells fills."""


def expand_cells(label: str, block: Mapping[str, Any], where: str) -> list[Cell]:
    """The cells of a method block: one cell (the block itself) without a ``grid`` table."""
    block = dict(block)
    grid = block.pop(GRID_KEY, None)
    if grid is None:
        return [Cell(label, block)]
    where = f"{where}.{GRID_KEY}"
    if not isinstance(grid, Mapping):
        raise UserError(f"{where}: expected a table of axes (dotted key = list of values)")
    grid = dict(grid)
    controls = {key: _entries(grid.pop(key, []), f"{where}.{key}") for key in CONTROL_KEYS}
    axes = dict(_axes(grid, where))
    if not axes and not controls["include"]:
        raise UserError(f"{where}: no axes; give at least one dotted key with a list of values")
    for index, entry in enumerate(controls["exclude"]):
        for key in entry:
            if key not in axes:
                raise UserError(f"{where}.exclude.{index}: {key!r} is not an axis of this grid; axes: {', '.join(axes)}")
    assignments = [dict(zip(axes, values)) for values in itertools.product(*axes.values())] if axes else []
    assignments = [cell for cell in assignments if not any(_matches(cell, entry) for entry in controls["exclude"])]
    assignments += controls["include"]
    block_keys = tuple(dict.fromkeys(key for cell in assignments for key in cell))
    names = _short_names(list(block_keys))
    cells, seen = [], {}
    for assignment in assignments:
        rendered = {key: render_value(value) for key, value in assignment.items()}
        cell_label = f"{label}[{','.join(f'{names[key]}={text}' for key, text in rendered.items())}]"
        if cell_label in seen:
            raise UserError(f"{where}: two cells are both {cell_label}; make the axis values or include entries distinct")
        seen[cell_label] = True
        overrides = block
        for key, value in assignment.items():
            overrides = set_dotted(overrides, key, value)
        cells.append(Cell(cell_label, overrides, rendered, block_keys))
    return cells


NOT_APPLICABLE = "-"
"""The value shown for a key the cell's configuration does not have (an option of a component
the cell swapped out)."""


def ran_with(cell: Cell, resolved: Mapping[str, Any]) -> dict[str, str]:
    """The cell's value for every key of its block, in the block's order, for tags and columns:
    its own axis values, and for the keys it does not set the value of its `resolved`
    configuration (a dumped `JobConfig`: the recipe's value, a component by its name)."""
    return {key: cell.axes[key] if key in cell.axes else _render_resolved(_lookup(resolved, key)) for key in cell.block_keys}


_MISSING = object()


def _lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(tree, Mapping) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        else:
            return _MISSING
    return tree


def _render_resolved(value: Any) -> str:
    """A resolved value as `render_value` shows an axis value; a component (every option filled
    in) by its name alone."""
    if value is _MISSING:
        return NOT_APPLICABLE
    if isinstance(value, Mapping) and "name" in value:
        return str(value["name"])
    if isinstance(value, list):
        return "+".join(_render_resolved(item) for item in value) or "none"
    return render_value(value)


def _axes(grid: Mapping[str, Any], where: str) -> Iterator[tuple[str, list[Any]]]:
    """(dotted key, values) for every axis, accepting both ``"a.b" = [..]`` and ``a.b = [..]``."""
    for dotted, value in flatten(grid):
        if not isinstance(value, list) or not value:
            raise UserError(f"{where}: {dotted}: an axis needs a non-empty list of values (got {value!r})")
        yield dotted, value


def _entries(value: Any, where: str) -> list[dict[str, Any]]:
    """include / exclude: a list of tables, each flattened to {dotted key: value}."""
    if not isinstance(value, list) or not all(isinstance(entry, Mapping) and entry for entry in value):
        raise UserError(f"{where}: expected a list of non-empty tables of dotted keys and values")
    # nested tables become dotted keys, except a component table (it has a ``name``: a swap)
    return [dict(flatten(entry, keep=lambda table: "name" in table)) for entry in value]


def _matches(cell: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(cell.get(key) == value for key, value in entry.items())


def _short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest suffix of parts that no other key ends with."""
    unique = list(dict.fromkeys(keys))
    names = {}
    for key in unique:
        parts = key.split(".")
        for size in range(1, len(parts) + 1):
            suffix = ".".join(parts[-size:])
            if not any(other != key and (other == suffix or other.endswith("." + suffix)) for other in unique):
                break
        names[key] = suffix
    return names


def render_value(value: Any) -> str:
    """A short, stable text for an axis value: ``0.8``, ``true``, ``cosine``, ``a+b``, ``none``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        if "name" not in value:
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        options = ",".join(f"{key}={render_value(option)}" for key, option in value.items() if key != "name")
        return f"{value['name']}({options})" if options else str(value["name"])
    if isinstance(value, list):
        return "+".join(render_value(item) for item in value) or "none"
    return str(value)
