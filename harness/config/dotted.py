"""Dotted keys (``stages.main.loss.margin``) and the deep merge of configuration tables.

Experiment files, grid axes, ``--option`` flags and MLflow params all address a nested
configuration by dotted keys; this module is the one place that turns one into the other.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator, Mapping

from harness.errors import UserError


def flatten(tree: Mapping[str, Any], prefix: str = "", *, keep: Any = None) -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf value) for every leaf of `tree`; an empty table is a leaf.

    `keep(value)` returning True keeps a table whole as a leaf (a component table in a grid
    entry: a swap, not a set of options).
    """
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and not (keep is not None and keep(value)):
            yield from flatten(value, dotted + ".", keep=keep)
        else:
            yield dotted, value


def nest(options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"similarity_head.embed_dim": 32}`` -> ``{"similarity_head": {"embed_dim": 32}}``;
    nested tables pass through and merge with dotted keys under the same table."""
    nested: dict[str, Any] = {}
    for key, value in options.items():
        override: Any = value
        for part in reversed(key.split(".")):
            override = {part: override}
        try:
            nested = deep_merge(nested, override, replace_components=False, strict=True)
        except _Clash as clash:
            raise UserError(f"option '{key}': '{clash}' is both a value and a table") from None
    return nested


def set_dotted(tree: Mapping[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `tree` with `value` merged in at `dotted` (`deep_merge` rules)."""
    override: Any = value
    for part in reversed(dotted.split(".")):
        override = {part: override}
    return deep_merge(tree, override)


class _Clash(Exception):
    """A key that is a value in one table and a table in the other (strict merges only)."""


def deep_merge(
    base: Mapping[str, Any], override: Mapping[str, Any], *, replace_components: bool = True, strict: bool = False
) -> dict[str, Any]:
    """A copy of `base` with `override` merged in, tables recursively, other values replaced.

    A table that names a different component (``loss.name = "other"``) replaces the old table
    whole: the old component's options mean nothing to the new one (`replace_components`).
    `strict` refuses to replace a value by a table or a table by a value.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = merged.get(key)
        both_tables = isinstance(old, Mapping) and isinstance(value, Mapping)
        if strict and key in merged and not both_tables and (isinstance(old, Mapping) or isinstance(value, Mapping)):
            raise _Clash(key)
        swaps_component = replace_components and both_tables and value.get("name", old.get("name")) != old.get("name")
        if both_tables and not swaps_component:
            merged[key] = deep_merge(old, value, replace_components=replace_components, strict=strict)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_assignments(assignments: tuple[str, ...] | list[str], flag: str = "--option") -> dict[str, Any]:
    """``KEY=VALUE`` pairs from the command line; a value is read as JSON when it parses
    (numbers, true, lists), else as text."""
    parsed: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} {assignment!r}: expected KEY=VALUE")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed
