"""Working with what an experiment already produced: its store, its runs, re-evaluating a
finished job on another dataset, protocol or evaluation setting (`itr eval`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from harness.config.dotted import deep_merge, nest
from harness.config.experiment_file import DatasetEntry, format_validation_error, load_experiment_file
from harness.errors import UserError
from harness.job.job import Job


def experiment_store(experiment_file: Path | None, experiment_name: str | None, results_dir: Path, tracking_uri: str | None) -> tuple[str, str]:
    """(tracking URI, experiment name) from an experiment file or an experiment name."""
    from harness.tracking import choose_tracking_uri

    file_uri = None
    if experiment_file is not None:
        experiment = load_experiment_file(experiment_file)
        experiment_name, file_uri = experiment.name, experiment.tracking_uri
    if not experiment_name:
        raise UserError("give an experiment file or --experiment NAME")
    return choose_tracking_uri(tracking_uri, file_uri, results_dir), experiment_name


def job_run_titles(run_ids: list[str], results_dir: Path, tracking_uri: str | None) -> dict[str, str]:
    """Each job run's title (``label on dataset (seed s)``, its MLflow run name), so a command
    given run ids can say which cells they are."""
    import mlflow

    from harness.tracking import choose_tracking_uri

    client = mlflow.MlflowClient(choose_tracking_uri(tracking_uri, None, results_dir))
    return {run_id: client.get_run(run_id).info.run_name or "untitled run" for run_id in run_ids}


@dataclass(frozen=True)
class Reevaluation:
    """A finished job evaluated again: the job, where its checkpoint came from, the dataset
    entry it was evaluated on, and the metrics (``{protocol}/{metric}``)."""

    job: Job
    source: str
    target: DatasetEntry
    metrics: dict[str, float]


def reevaluate(
    host: Any,
    checkpoint: str,
    dataset_changes: Mapping[str, Any],
    eval_changes: Mapping[str, Any],
    results_dir: Path,
    tracking_uri: str | None,
    cache_dir: Path | None,
) -> Reevaluation:
    """Evaluate job run `checkpoint` (a run id) or a checkpoint folder (weights + job record).

    `dataset_changes` are the dataset entry's fields to change (``name``, ``options``, ``test``,
    ``protocols``); `eval_changes` are ``eval`` keys (``mode``, ``batch_size``, ...), dotted or
    nested, validated like an experiment file's.
    """
    from harness.features import FeatureCache
    from harness.job.catalog import DataCatalog
    from harness.job.run import evaluate_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        found = reopen(checkpoint, dataset_changes, eval_changes, results_dir, tracking_uri, Path(scratch))
        catalog = DataCatalog(host.registry, f"itr eval {checkpoint}")
        metrics = evaluate_checkpoint(found.job, found.folder, host.registry, catalog, FeatureCache(cache_dir), found.target, found.runs)
    return Reevaluation(found.job, found.source, found.target, metrics)


@dataclass(frozen=True)
class Reopened:
    """A finished job brought back: the job (with the command line's ``eval`` changes), its
    checkpoint folder, where that came from (``run ID`` or ``checkpoint FOLDER``), the dataset
    entry to work on, the run's experiment store and name (None for a checkpoint folder)."""

    job: Job
    folder: Path
    source: str
    target: DatasetEntry
    runs: Any
    experiment: str | None


def reopen(
    checkpoint: str,
    dataset_changes: Mapping[str, Any],
    eval_changes: Mapping[str, Any],
    results_dir: Path,
    tracking_uri: str | None,
    scratch: Path,
    command: str = "itr eval",
) -> Reopened:
    """Job run `checkpoint` (a run id, its checkpoint downloaded into `scratch`) or a checkpoint
    folder, with the changes of `reevaluate`; errors name `command`."""
    import mlflow

    from harness.job.checkpoints import read_job
    from harness.tracking import ExperimentRuns, choose_tracking_uri, download_checkpoint, experiment_of

    runs, experiment = None, None
    if Path(checkpoint).is_dir():
        folder, source = Path(checkpoint), f"checkpoint {checkpoint}"
    else:
        uri = choose_tracking_uri(tracking_uri, None, results_dir)
        folder, source = download_checkpoint(uri, checkpoint, scratch), f"run {checkpoint}"
        experiment_id = experiment_of(uri, checkpoint)
        runs, experiment = ExperimentRuns(uri, experiment_id), mlflow.MlflowClient(uri).get_experiment(experiment_id).name
    job = _with_eval(Job.from_record(read_job(folder), source), eval_changes, command)
    return Reopened(job, folder, source, _dataset_entry(job.dataset, dataset_changes, command), runs, experiment)


def _with_eval(job: Job, changes: Mapping[str, Any], command: str) -> Job:
    """`job` with its ``eval`` section changed (the result is not a new job: nothing is logged)."""
    if not changes:
        return job
    from dataclasses import replace

    from harness.config.job_config import EvalConfig

    try:
        evaluation = EvalConfig.model_validate(deep_merge(job.config.eval.model_dump(), nest(dict(changes))))
    except ValidationError as exc:
        raise UserError(format_validation_error(f"{command}: eval", exc, EvalConfig)) from None
    return replace(job, config=job.config.model_copy(update={"eval": evaluation}))


def _dataset_entry(job_dataset: DatasetEntry, changes: Mapping[str, Any], command: str) -> DatasetEntry:
    """The job's dataset entry with the command line's changes, validated like a file's."""
    fields = job_dataset.model_dump()
    if "name" in changes:
        fields.update(name=changes["name"], label=None, options={})
    fields["options"].update(changes.get("options", {}))
    fields.update({key: value for key, value in changes.items() if key in ("test", "protocols")})
    try:
        return DatasetEntry.model_validate(fields)
    except ValidationError as exc:
        raise UserError(format_validation_error(command, exc, DatasetEntry)) from None
