"""Expanding an experiment file into jobs, each fully resolved, validated and hashed.

A job is one (method, dataset, seed). Its configuration is the recipe's defaults, overridden by the
experiment file, with every component option filled from the component's own defaults, so the
logged params say exactly what ran and the config hash changes whenever the computation would.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from pydantic import ValidationError

from harness.errors import UserError
from harness.experiment.config import (
    ComponentRef,
    DatasetEntry,
    ExperimentFile,
    JobConfig,
    format_validation_error,
    load_experiment_file,
)
from harness.experiment.grid import expand_cells
from harness.interfaces import MethodRecipe
from harness.registry import Registry

COMPONENT_KINDS = {
    "image_encoder": "image-encoder",
    "text_encoder": "text-encoder",
    "similarity_head": "similarity-head",
}


@dataclass(frozen=True)
class Job:
    """One unit of work: train (if the method has stages) and evaluate one method on one dataset.

    `label` names the cell (``ascl[u1=0.8]``), `group` the method block it came from, and `axes`
    the cell's grid values (dotted key -> rendered value; empty outside a grid).
    """

    label: str
    method: str
    dataset: DatasetEntry
    seed: int
    config: JobConfig
    resolved: Mapping[str, Any]
    config_hash: str
    group: str = ""
    axes: Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.label} on {self.dataset.title} (seed {self.seed})"

    def components(self) -> dict[str, str]:
        """Role -> component name, for tags and the leaderboard."""
        roles = {role: getattr(self.config, role).name for role in COMPONENT_KINDS}
        roles["losses"] = ",".join(stage.loss.name for stage in self.config.stages.values()) or "-"
        generators = [*self.config.generators.positives, *self.config.generators.negatives]
        roles["generators"] = ",".join(ref.name for ref in generators) or "-"
        return roles

    def params(self) -> dict[str, str]:
        """The resolved configuration flattened to dotted keys, for MLflow params."""
        return {key: json.dumps(value) if not isinstance(value, str) else value for key, value in _flatten(self.resolved)}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `override` merged in, tables recursively, other values replaced.

    A table that names a different component (``loss.name = "other"``) replaces the old table
    whole: the old component's options mean nothing to the new one.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = merged.get(key)
        swaps_component = isinstance(old, Mapping) and isinstance(value, Mapping) and value.get("name", old.get("name")) != old.get("name")
        if isinstance(value, Mapping) and isinstance(old, Mapping) and not swaps_component:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def config_hash(payload: Mapping[str, Any]) -> str:
    """Stable 12-hex-digit hash of a JSON-able mapping (key order does not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _resolve_component(
    registry: Registry, kind: str, ref: ComponentRef, where: str
) -> dict[str, Any]:
    spec = registry.get(kind, ref.name)
    options = spec.validate_options(ref.options, where)
    return {"name": ref.name, **spec.defaults(), **options}


def resolve_method(
    registry: Registry, label: str, overrides: Mapping[str, Any], where: str
) -> tuple[str, JobConfig, dict[str, Any]]:
    """Merge a recipe's defaults with the file's overrides; validate; fill component defaults.

    Returns the recipe name, the typed config and the fully resolved plain mapping.
    """
    overrides = dict(overrides)
    method_name = overrides.pop("method", label)
    try:
        recipe: MethodRecipe = registry.get("method", method_name).load()
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    merged = deep_merge(recipe.defaults, overrides)
    try:
        config = JobConfig.model_validate(merged)
    except ValidationError as exc:
        raise UserError(format_validation_error(where, exc, JobConfig)) from None

    def component(kind: str, ref: ComponentRef, key: str) -> dict[str, Any]:
        try:
            return _resolve_component(registry, kind, ref, f"{where}.{key}")
        except UserError as exc:
            message = str(exc)
            raise UserError(message if message.startswith(where) else f"{where}.{key}: {message}") from None

    resolved = config.model_dump()
    for role, kind in COMPONENT_KINDS.items():
        resolved[role] = component(kind, getattr(config, role), role)
    resolved["backbones"] = {
        "image": component("image-backbone", config.backbones.image, "backbones.image"),
        "text": component("text-backbone", config.backbones.text, "backbones.text"),
    }
    for stage_name, stage in config.stages.items():
        resolved["stages"][stage_name]["loss"] = component("loss", stage.loss, f"stages.{stage_name}.loss")
    for group in ("positives", "negatives"):
        refs = getattr(config.generators, group)
        resolved["generators"][group] = [
            component("sample-generator", ref, f"generators.{group}.{index}") for index, ref in enumerate(refs)
        ]
    for text_name, ref in config.texts.items():
        resolved["texts"][text_name] = component("text-source", ref, f"texts.{text_name}")
    return method_name, config, resolved


def expand_jobs(experiment: ExperimentFile, registry: Registry, source: str) -> list[Job]:
    """All jobs of an experiment, validated against the registry before anything runs."""
    for index, entry in enumerate(experiment.datasets):
        try:
            registry.get("dataset", entry.name).validate_options(entry.options, f"{source}: datasets.{index}.options")
        except UserError as exc:
            message = str(exc)
            raise UserError(message if message.startswith(source) else f"{source}: datasets.{index}.name: {message}") from None
    jobs = []
    for label, block in experiment.methods.items():
        where = f"{source}: methods.{label}"
        for cell in expand_cells(label, block, where):
            cell_where = f"{where} (cell {cell.label})" if cell.axes else where
            method, config, resolved = resolve_method(registry, label, cell.overrides, cell_where)
            for entry in experiment.datasets:
                for seed in experiment.seeds:
                    dataset = entry.model_dump(exclude={"label"})
                    payload = {"method": method, "config": resolved, "dataset": dataset, "seed": seed}
                    jobs.append(
                        Job(
                            label=cell.label,
                            method=method,
                            dataset=entry,
                            seed=seed,
                            config=config,
                            resolved=resolved,
                            config_hash=config_hash(payload),
                            group=label,
                            axes=cell.axes,
                        )
                    )
    _refuse_twins(jobs, source)
    return jobs


def _refuse_twins(jobs: list[Job], source: str) -> None:
    """Two labels for one configuration would run it twice and show it once (rows are per hash)."""
    seen: dict[str, Job] = {}
    for job in jobs:
        twin = seen.setdefault(job.config_hash, job)
        if twin is not job:
            raise UserError(
                f"{source}: methods: {twin.label!r} and {job.label!r} are the same configuration on "
                f"{job.dataset.title} (seed {job.seed}, config {job.config_hash}); drop one"
            )


def plan(path: Path, registry: Registry) -> tuple[ExperimentFile, list[Job]]:
    """Load, validate and expand an experiment file."""
    experiment = load_experiment_file(path)
    return experiment, expand_jobs(experiment, registry, str(path))


def job_from_record(record: Mapping[str, Any], where: str) -> Job:
    """Rebuild a `Job` from a checkpoint's job record (`harness.checkpoints.job_record`)."""
    try:
        return Job(
            label=record["label"],
            method=record["method"],
            dataset=DatasetEntry.model_validate(record["dataset"]),
            seed=int(record["seed"]),
            config=JobConfig.model_validate(record["resolved"]),
            resolved=record["resolved"],
            config_hash=record["config_hash"],
            group=record.get("group", record["label"]),
            axes=record.get("axes", {}),
        )
    except KeyError as exc:
        raise UserError(f"{where}: job record lacks {exc}") from None
    except ValidationError as exc:
        raise UserError(format_validation_error(where, exc)) from None
