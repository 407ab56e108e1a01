"""From a method recipe and an experiment file's overrides to one resolved `JobConfig`.

The recipe's defaults are merged with the overrides, validated section by section, and every
component reference is filled with the component's own defaults (the factory signature, the one
place they live) after its options were checked against it. The logged params then say exactly
what ran, and the config hash changes whenever the computation would.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import ValidationError

from harness.config.dotted import deep_merge
from harness.config.experiment_file import format_validation_error
from harness.config.job_config import ComponentRef, JobConfig
from harness.errors import UserError
from harness.interfaces import MethodRecipe
from harness.registry import Registry


def resolve_method(registry: Registry, label: str, overrides: Mapping[str, Any], where: str) -> tuple[str, JobConfig]:
    """(recipe name, resolved config) of a method block: the recipe is ``overrides["method"]``
    or, by default, the block's `label`."""
    overrides = dict(overrides)
    method_name = overrides.pop("method", label)
    try:
        recipe: MethodRecipe = registry.get("method", method_name).load()
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    try:
        config = JobConfig.model_validate(deep_merge(recipe.defaults, overrides))
    except ValidationError as exc:
        raise UserError(format_validation_error(where, exc, JobConfig)) from None
    return method_name, fill_components(registry, config, where)


def fill_components(registry: Registry, config: JobConfig, where: str) -> JobConfig:
    """`config` with every component's options checked and its defaults filled in."""
    tree = config.model_dump()
    for role, kind, ref in config.component_refs():
        _put(tree, role.split("."), _filled(registry, kind, ref, where, role))
    return JobConfig.model_validate(tree)


def _filled(registry: Registry, kind: str, ref: ComponentRef, where: str, role: str) -> dict[str, Any]:
    """The options of `ref` at `role`; an unknown name or a bad option names the file and key."""
    try:
        spec = registry.get(kind, ref.name)
        options = spec.validate_options(ref.options, f"{where}.{role}")
    except UserError as exc:
        message = str(exc)
        raise UserError(message if message.startswith(where) else f"{where}.{role}: {message}") from None
    return {"name": ref.name, **spec.defaults(), **options}


def _put(tree: Any, path: list[str], value: Any) -> None:
    """Set `value` at `path` in a dumped config (list positions are indices)."""
    *parents, leaf = path
    for part in parents:
        tree = tree[int(part)] if isinstance(tree, list) else tree[part]
    if isinstance(tree, list):
        tree[int(leaf)] = value
    else:
        tree[leaf] = value
