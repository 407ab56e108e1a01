"""Planning an experiment: its file expanded into jobs, each resolved, validated and hashed,
before anything runs.

A job is one (method cell, dataset, seed); a method block is one cell, or many with a ``grid``
table (`harness.experiment.grid`). Every name and option is checked against the registry here,
so `itr plan` reports bad input with the file and dotted key, and `itr run` never starts a job
that could not be built.
"""

from __future__ import annotations

from pathlib import Path

from harness.config.experiment_file import ExperimentFile, load_experiment_file
from harness.errors import UserError, closest
from harness.experiment.grid import expand_cells, ran_with
from harness.job.job import Job
from harness.job.resolve import resolve_method
from harness.registry import Registry


def plan(path: Path, registry: Registry) -> tuple[ExperimentFile, list[Job]]:
    """Load, validate and expand an experiment file."""
    experiment = load_experiment_file(path)
    return experiment, expand_jobs(experiment, registry, str(path))


def expand_jobs(experiment: ExperimentFile, registry: Registry, source: str) -> list[Job]:
    """All jobs of an experiment, validated against the registry before anything runs."""
    _check_datasets(experiment, registry, source)
    jobs = []
    for label, block in experiment.methods.items():
        where = f"{source}: methods.{label}"
        for cell in expand_cells(label, block, where):
            cell_where = f"{where} (cell {cell.label})" if cell.axes else where
            method, config = resolve_method(registry, label, cell.overrides, cell_where)
            axes = ran_with(cell, config.model_dump())
            jobs += [
                Job.create(cell.label, method, entry, seed, config, group=label, axes=axes)
                for entry in experiment.datasets
                for seed in experiment.seeds
            ]
    _refuse_twins(jobs, source)
    _check_prefilters(jobs, source)
    return jobs


def _check_prefilters(jobs: list[Job], source: str) -> None:
    """A re-rank that borrows another method's candidates names a method of this experiment
    that evaluates on its own (one wave of borrowing)."""
    own = {job.label: job for job in jobs}
    for job in jobs:
        if not job.config.eval.borrows_prefilter:
            continue
        label, where = job.config.eval.prefilter, f"{source}: methods.{job.label}.eval.prefilter"
        if label not in own or label == job.label:
            others = sorted(name for name in own if name != job.label)
            raise UserError(f"{where}: '{label}' is not another method of this experiment{closest(label, others)}; methods: {', '.join(others) or 'none'}")
        if own[label].config.eval.borrows_prefilter:
            raise UserError(f"{where}: '{label}' borrows its own candidates from '{own[label].config.eval.prefilter}'; a prefilter must rank on its own")


def _check_datasets(experiment: ExperimentFile, registry: Registry, source: str) -> None:
    """Every dataset's name and options, and every protocol, exist in the registry."""
    for index, entry in enumerate(experiment.datasets):
        try:
            registry.get("dataset", entry.name).validate_options(entry.options, f"{source}: datasets.{index}.options")
        except UserError as exc:
            message = str(exc)
            raise UserError(message if message.startswith(source) else f"{source}: datasets.{index}.name: {message}") from None
        for position, protocol in enumerate(entry.protocols):
            try:
                registry.get("protocol", protocol)
            except UserError as exc:
                raise UserError(f"{source}: datasets.{index}.protocols.{position}: {exc}") from None


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
