"""MLflow bookkeeping: one parent run per experiment run, one nested child run per job.

Children carry the flattened resolved config as params, the metrics (``{protocol}/{metric}``),
per-epoch training loss as step metrics, and tags that the leaderboard and resume logic read
(``itr.*``). The default store is an explicit SQLite file under ``results/`` with artifacts next
to it, so nothing depends on MLflow's changing default (./mlruns before 3.7, mlflow.db after).
"""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import harness
from harness.errors import UserError

JOB_KIND = "job"
CHECKPOINT_ARTIFACTS = "checkpoint"
EXPERIMENT_KIND = "experiment"


def default_tracking_uri(results_dir: Path) -> str:
    return f"sqlite:///{(results_dir / 'mlflow.db').resolve()}"


def choose_tracking_uri(cli_uri: str | None, file_uri: str | None, results_dir: Path) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the experiment file's, else the default."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or file_uri or default_tracking_uri(results_dir)


def git_commit() -> str | None:
    """The commit of the working tree the harness runs from, for provenance; None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(harness.__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class Tracker:
    """Opens the experiment and its runs in one MLflow store."""

    def __init__(self, tracking_uri: str, results_dir: Path) -> None:
        import mlflow

        self.mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.results_dir = results_dir
        self._experiment_id: str | None = None
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(tracking_uri)

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created on first use (artifacts beside a local store)."""
        client = self.mlflow.MlflowClient()
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        artifact_location = None
        if self.tracking_uri.startswith("sqlite:///"):
            artifact_location = (self.results_dir / "mlartifacts").resolve().as_uri()
        return client.create_experiment(name, artifact_location=artifact_location)

    @contextmanager
    def experiment_run(self, name: str, source: Path, plugin_versions: Mapping[str, str]) -> Iterator[Any]:
        """The parent run of one `itr run` invocation."""
        experiment_id = self._experiment_id = self.experiment_id(name)
        tags = {
            "itr.kind": EXPERIMENT_KIND,
            "itr.version": harness.__version__,
            "itr.plugins": json.dumps(dict(plugin_versions), sort_keys=True),
            "itr.source": str(source),
        }
        commit = git_commit()
        if commit:
            tags["itr.git_commit"] = commit
        with self.mlflow.start_run(experiment_id=experiment_id, run_name=f"{name}", tags=tags) as run:
            self.mlflow.log_artifact(str(source), artifact_path="experiment")
            yield run

    @contextmanager
    def job_run(self, job: Any) -> Iterator["JobLog"]:
        """A child run for `job`; if the body raises, the error is kept as the ``itr.error`` tag."""
        tags = {
            "itr.kind": JOB_KIND,
            "itr.label": job.label,
            "itr.method": job.method,
            "itr.dataset": job.dataset.title,
            "itr.seed": str(job.seed),
            "itr.config_hash": job.config_hash,
            "itr.version": harness.__version__,
            **{f"itr.component.{role}": name for role, name in job.components().items()},
        }
        with self.mlflow.start_run(experiment_id=self._experiment_id, run_name=job.title, nested=True, tags=tags) as run:
            params = {**job.params(), **{f"dataset.{k}": str(v) for k, v in _flat_dataset(job.dataset)}, "seed": str(job.seed)}
            self.mlflow.log_params({key: value[:6000] for key, value in params.items()})
            try:
                yield JobLog(self.mlflow, run.info.run_id)
            except BaseException as exc:  # recorded, then MLflow marks the run FAILED on the way out
                self.mlflow.set_tag("itr.error", f"{type(exc).__name__}: {exc}"[:5000])
                raise


def _flat_dataset(entry: Any) -> list[tuple[str, Any]]:
    """The dataset entry as (dotted key, value) pairs, options flattened."""
    fields = entry.model_dump()
    options = fields.pop("options")
    return [*fields.items(), *((f"options.{key}", value) for key, value in options.items())]


class JobLog:
    """What a running job may record in its child run."""

    def __init__(self, mlflow: Any, run_id: str) -> None:
        self._mlflow = mlflow
        self.run_id = run_id

    def epoch(self, stage: str, epoch: int, record: Mapping[str, float]) -> None:
        self._mlflow.log_metrics({f"train/{key}": value for key, value in record.items()}, step=epoch)
        self._mlflow.set_tag("itr.last_stage", stage)

    def metrics(self, metrics: Mapping[str, float]) -> None:
        self._mlflow.log_metrics(dict(metrics))

    def checkpoint(self, folder: Path) -> None:
        """Attach a checkpoint folder (weights + job record) as the run's ``checkpoint`` artifacts."""
        self._mlflow.log_artifacts(str(folder), artifact_path=CHECKPOINT_ARTIFACTS)


def log_artifacts(tracking_uri: str, run_id: str, paths: list[Path], artifact_path: str) -> None:
    """Attach files to a finished run (e.g. the leaderboard to the experiment's parent run)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def download_checkpoint(tracking_uri: str, run_id: str, folder: Path) -> Path:
    """Fetch a job run's checkpoint artifacts into `folder`; a UserError if there are none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient(tracking_uri).get_run(run_id)
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=CHECKPOINT_ARTIFACTS, dst_path=str(folder), tracking_uri=tracking_uri
        )
    except MlflowException as exc:
        raise UserError(f"run {run_id} in {tracking_uri}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise UserError(f"run {run_id} in {tracking_uri}: no checkpoint artifacts ({exc})") from None
    return Path(path)


def require_experiment(tracking_uri: str, name: str) -> str:
    """The id of an existing experiment, or a UserError saying how to create it."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.MlflowClient().get_experiment_by_name(name)
    if experiment is None:
        raise UserError(f"no experiment '{name}' in the MLflow store {tracking_uri}; run `itr run FILE` first")
    return experiment.experiment_id
