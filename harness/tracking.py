"""MLflow bookkeeping: one parent run per experiment run, one nested child run per job.

Children carry the flattened resolved config as params, the metrics (``{protocol}/{metric}``),
per-epoch training loss as step metrics, tags that the leaderboard and resume logic read
(``itr.*``), each split the job reads as a run input (name, digest, source), the device training
and evaluation ran on, and MLflow's system metrics (``system/*``) when they are switched on. The default store is an explicit SQLite file under ``results/`` with artifacts next
to it, so nothing depends on MLflow's changing default (./mlruns before 3.7, mlflow.db after).
Every call to the store is retried through an outage for a bounded time (`harness.tracking_retry`),
and every open run holds a lease (`harness.lease`), so several drivers can share one store.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import harness
from harness.atomic import write_atomically
from harness.config.dotted import flatten
from harness.errors import UserError

if TYPE_CHECKING:
    import torch

    from harness.config.experiment_file import DatasetEntry
    from harness.interfaces import RetrievalSplit

JOB_KIND = "job"
NON_PROTOCOL_PREFIXES = ("train/", "system/")
"""Metrics whose names hold a slash but are no ``<protocol>/<metric>``: the training curves and
MLflow's system metrics."""
CHECKPOINT_ARTIFACTS = "checkpoint"
RANKS_ARTIFACTS = "ranks"
RANKINGS_ARTIFACTS = "rankings"
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


def seed_sqlite_store(path: Path) -> None:
    """Start a new SQLite store as a copy of an empty one already migrated to this MLflow's schema.

    MLflow builds a new store by running every schema migration (seconds); the migrated empty
    store is kept once per MLflow version beside the feature cache and copied instead. Neither
    file is ever replaced once there: a second driver starting on the same new store at the same
    moment must not swap the file the first one already writes to.
    """
    import shutil

    import mlflow

    from harness.features import default_cache_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return
    template = default_cache_dir().parent / "mlflow-empty-stores" / f"mlflow-{mlflow.__version__}.db"
    if not template.exists():  # MLflow creates and migrates a store on first use
        write_atomically(template, lambda staging: mlflow.MlflowClient(f"sqlite:///{staging}").search_experiments(), keep_existing=True)
    write_atomically(path, lambda staging: shutil.copyfile(template, staging), keep_existing=True)


class Tracker:
    """Opens the experiment and its runs in one MLflow store.

    The driver opens the parent run (`experiment_run`); job runs are created through the client
    API with an explicit parent tag (`job_run`), so a worker process or a Ray task logs its child
    run with nothing but the tracking URI and two ids (`attach`).
    """

    def __init__(self, tracking_uri: str, results_dir: Path | None = None) -> None:
        require_system_metrics_support()
        self.tracking_uri = tracking_uri
        self.results_dir = results_dir
        self.experiment_id_: str | None = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The MLflow client, opened on first use: a run stopped by bad input (preflight) has
        not created a store yet, so it leaves nothing behind."""
        if self._client is None:
            import mlflow

            from harness.tracking_retry import RetryingClient, leave_retries_to_us

            if self.tracking_uri.startswith("sqlite:///"):
                seed_sqlite_store(Path(self.tracking_uri.removeprefix("sqlite:///")))
            leave_retries_to_us()
            self._client = RetryingClient(mlflow.MlflowClient(self.tracking_uri), self.tracking_uri)
        return self._client

    @classmethod
    def attach(cls, tracking_uri: str, experiment_id: str) -> "Tracker":
        """A tracker for job runs of an experiment the driver already opened."""
        tracker = cls(tracking_uri)
        tracker.experiment_id_ = experiment_id
        return tracker

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created on first use (artifacts beside a local store); a
        second driver creating it at the same moment finds the first one's."""
        from mlflow.exceptions import MlflowException

        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        artifact_location = None
        if self.tracking_uri.startswith("sqlite:///") and self.results_dir is not None:
            artifact_location = (self.results_dir / "mlartifacts").resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            existing = self.client.get_experiment_by_name(name)
            if existing is None:
                raise
            return existing.experiment_id

    @contextmanager
    def experiment_run(
        self, name: str, definition: Mapping[str, Any], source: Path | None, plugin_versions: Mapping[str, str]
    ) -> Iterator[Any]:
        """The parent run of one `itr run` invocation: the experiment's definition is kept as
        ``experiment/experiment.json``, beside its `source` file when it came from one. The run
        holds a lease while it is open (`harness.lease`)."""
        from harness.lease import beating, lease_tags

        experiment_id = self.experiment_id_ = self.experiment_id(name)
        tags = {
            **lease_tags(),
            "itr.kind": EXPERIMENT_KIND,
            "itr.version": harness.__version__,
            "itr.plugins": json.dumps(dict(plugin_versions), sort_keys=True),
            "itr.source": str(source) if source is not None else "-",
        }
        commit = git_commit()
        if commit:
            tags["itr.git_commit"] = commit
        run = self.client.create_run(experiment_id, run_name=name, tags=tags)
        with _terminated(self.client, run), beating(self.client.raw, run.info.run_id):
            self.client.log_dict(run.info.run_id, dict(definition), "experiment/experiment.json")
            if source is not None:
                self.client.log_artifact(run.info.run_id, str(source), artifact_path="experiment")
            yield run

    def runs(self, kind: str = JOB_KIND) -> list[Any]:
        """Every run of `kind` (job or experiment) of the open experiment (any status), newest first."""
        from mlflow.entities import ViewType

        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id_],
                filter_string=f"tags.`itr.kind` = '{kind}'",
                run_view_type=ViewType.ACTIVE_ONLY,
                order_by=["attributes.start_time DESC"],
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def mark_interrupted(self, run_id: str) -> None:
        """Close a run whose process died (still RUNNING) as KILLED, saying so."""
        self.client.set_tag(run_id, "itr.error", "interrupted: the process running it stopped before it finished")
        self.client.set_terminated(run_id, "KILLED")

    def reopen(self, run_id: str, tags: Mapping[str, str]) -> Any:
        """Job run `run_id`, KILLED, made RUNNING again with `tags` (a new lease, this
        invocation's parent run), to go on from its resume point (`harness.job.resumption`);
        its params, epochs and inputs logged so far stay."""
        from mlflow.entities import RunTag

        self.client.update_run(run_id, status="RUNNING")
        self.client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
        if "itr.error" in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, "itr.error")
        return self.client.get_run(run_id)

    @contextmanager
    def job_run(
        self, job: Any, parent_run_id: str, pending_dir: Path | None = None, count_finished: bool = True, continuing: str | None = None
    ) -> Iterator["JobLog"]:
        """A child run for `job`; if the body raises, the error is kept as the ``itr.error`` tag.
        With `continuing`, the job goes on in that earlier KILLED run of it (`reopen`) instead.

        The run is first a claim on the job's cell (`harness.lease.claim_cell`: `CellHeld` when
        another driver holds or, with `count_finished`, finished it; the cell's RUNNING runs whose
        lease expired are closed as KILLED once the claim holds) and holds a lease while open. Once the store stops answering for good, what the job logs is kept under
        `pending_dir` (`harness.pending_uploads`), where `JobLog.kept` says.
        """
        from harness.lease import CLAIM_TAG, TENTATIVE, CellHeld, beating, claim_cell, lease_tags
        from harness.pending_uploads import KeepingClient

        tags = {
            **lease_tags(),
            CLAIM_TAG: TENTATIVE,
            "itr.kind": JOB_KIND,
            "itr.label": job.label,
            "itr.group": job.group or job.label,
            "itr.method": job.method,
            "itr.dataset": job.dataset.title,
            "itr.seed": str(job.seed),
            "itr.config_hash": job.config_hash,
            "itr.version": harness.__version__,
            "mlflow.parentRunId": parent_run_id,
            **{f"itr.component.{role}": name for role, name in job.components().items()},
            **{f"itr.axis.{key}": value for key, value in job.axes.items()},
        }
        from mlflow.entities import Param

        run = self.reopen(continuing, tags) if continuing else self.client.create_run(self.experiment_id_, run_name=job.title, tags=tags)
        try:
            dead = claim_cell(self.client, self.experiment_id_, run.info.run_id, job.config_hash, count_finished)
        except CellHeld:
            if continuing:  # the claim deleted it; the earlier run stays as it was
                self.client.restore_run(continuing)
                self.client.set_terminated(continuing, "KILLED")
            raise
        for run_id in dead:  # the runs of the cell whose process died: this one takes over
            self.mark_interrupted(run_id)
        client = KeepingClient(self.client, pending_dir, run.info.run_id, job.config_hash)
        with _terminated(client, run), beating(self.client.raw, run.info.run_id), system_metrics(self.tracking_uri, run.info.run_id):
            dataset = {f"dataset.{key}": str(value) for key, value in flatten(job.dataset.model_dump()) if value != {}}
            params = {**job.params(), **dataset, "seed": str(job.seed)}
            client.log_batch(run.info.run_id, params=[Param(key, value[:6000]) for key, value in params.items()])
            yield JobLog(client, run.info.run_id)


@contextmanager
def _terminated(client: Any, run: Any) -> Iterator[Any]:
    """Yield `run` and close it FINISHED, FAILED (error kept as ``itr.error``) or KILLED (Ctrl-C).

    A body stopped because the store no longer answers leaves the run open: closing it would
    wait out the retry bound again, and its lease, no longer renewed, lets the next driver close it.
    """
    from harness.tracking_retry import TrackingUnavailable

    try:
        yield run
    except TrackingUnavailable:
        raise
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            client.set_tag(run.info.run_id, "itr.error", f"{type(exc).__name__}: {exc}"[:5000])
        client.set_terminated(run.info.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")


class JobLog:
    """What a running job may record in its child run."""

    def __init__(self, client: Any, run_id: str) -> None:
        self._client = client
        self.run_id = run_id

    @property
    def kept(self) -> tuple[Path, str] | None:
        """(folder, why) when the run's results were kept in a folder because the store stopped
        taking them (`harness.pending_uploads`); None when everything reached the store."""
        folder = getattr(self._client, "kept_at", None)
        return None if folder is None else (folder, str(self._client.reason))

    def epochs_logged(self) -> set[int]:
        """The epochs whose training loss the run holds (a continued run has some already)."""
        return {metric.step for metric in self._client.get_metric_history(self.run_id, "train/loss")}

    def epoch(self, stage: str, epoch: int, record: Mapping[str, float]) -> None:
        """Per-epoch training values as ``train/<key>`` and, per stage, ``train/<stage>/<key>``."""
        self._log({**{f"train/{key}": value for key, value in record.items()}, **{f"train/{stage}/{key}": value for key, value in record.items()}}, step=epoch)
        self._client.set_tag(self.run_id, "itr.last_stage", stage)

    def metrics(self, metrics: Mapping[str, float]) -> None:
        self._log(metrics, step=0)

    def dataset(self, entry: DatasetEntry, split: RetrievalSplit, context: str, source: str | None) -> None:
        """Record a split the job reads as a run input (`dataset_input`); `context` is MLflow's
        ``training`` or ``testing``, `source` where the dataset says the split lies.

        Jobs of one grid read the same splits, and the store creates a dataset's row on first
        use: two workers logging it at once race on that row, and the loser's insert fails its
        unique key. The row then exists, so the loser's second try only links it to its run.
        """
        from mlflow.exceptions import MlflowException

        inputs = [dataset_input(entry, split, context, source)]
        try:
            self._client.log_inputs(self.run_id, datasets=inputs)
        except MlflowException as exc:
            if "UNIQUE constraint failed" not in str(exc) and "Duplicate entry" not in str(exc):
                raise
            self._client.log_inputs(self.run_id, datasets=inputs)

    def device(self, phase: str, device: torch.device) -> None:
        """Where a phase of the job (``train``, ``eval``) ran, as the tag ``itr.<phase>.device``
        (e.g. ``cuda:0 (NVIDIA H200)``)."""
        self._client.set_tag(self.run_id, f"itr.{phase}.device", device_description(device))

    def checkpoint(self, folder: Path) -> None:
        """Attach a checkpoint folder (weights + job record) as the run's ``checkpoint`` artifacts."""
        self._client.log_artifacts(self.run_id, str(folder), artifact_path=CHECKPOINT_ARTIFACTS)

    def ranks(self, ranks: Mapping[str, Any]) -> None:
        """Attach each protocol's per-query ranks (`QueryRanks`) as ``ranks/<protocol>.npz``."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            for protocol, query_ranks in ranks.items():
                query_ranks.save(Path(folder) / f"{protocol}.npz")
            self._client.log_artifacts(self.run_id, folder, artifact_path=RANKS_ARTIFACTS)

    def rankings(self, rankings: Mapping[str, Any]) -> None:
        """Attach each protocol's top-k rankings (`harness.evaluation.rankings.Rankings`) as
        ``rankings/<protocol>.npz``."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            for protocol, ranked in rankings.items():
                ranked.save(Path(folder) / f"{protocol}.npz")
            self._client.log_artifacts(self.run_id, folder, artifact_path=RANKINGS_ARTIFACTS)

    def _log(self, values: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
        for start in range(0, len(metrics), 500):  # MLflow's batch limit is 1000 metrics
            self._client.log_batch(self.run_id, metrics=metrics[start : start + 500])


def split_digest(split: RetrievalSplit) -> str:
    """16 hex digits of sha256 over what a split holds: its image ids, captions and pairing, and
    each image file's name and size (each precomputed feature's name, shape and dtype).

    No pixel is read, so logging stays cheap on a large split: the feature cache's key hashes the
    image bytes. Images kept by content (`baselines.datasets.image_store`) are named by their
    sha256, so for those the names pin the pixels too.
    """
    import numpy as np

    if split.image_paths is not None:
        images = [[Path(path).name, os.path.getsize(path)] for path in split.image_paths]
    else:
        images = [[name, list(array.shape), str(array.dtype)] for name, array in sorted((split.image_features or {}).items())]
    content = {"ids": list(split.image_ids), "captions": list(split.captions), "images": images}
    digest = hashlib.sha256(json.dumps(content).encode("utf-8"))
    digest.update(np.ascontiguousarray(split.image_of_caption, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def dataset_input(entry: DatasetEntry, split: RetrievalSplit, context: str, source: str | None) -> Any:
    """A split as an MLflow run input (`mlflow.entities.DatasetInput`): an `mlflow.data` dataset
    named ``<dataset>:<split>``, with `split_digest` and its source, tagged with the context
    (``mlflow.data.context``) and its image and caption counts."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = MetaDataset(_mlflow_source(entry, source), name=f"{entry.title}:{split.split}", digest=split_digest(split))
    tags = {MLFLOW_DATASET_CONTEXT: context, "itr.images": str(split.n_images), "itr.captions": str(split.n_captions)}
    return DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(key, value) for key, value in tags.items()])


def _mlflow_source(entry: DatasetEntry, source: str | None) -> Any:
    """An `mlflow.data` source: a URL, a local path, or, for a dataset that does not say where it
    lies, the experiment file's entry (its name and options) that reads it."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    if source is None:
        return CodeDatasetSource({"itr.dataset": entry.name, "itr.options": json.dumps(entry.options, sort_keys=True, default=str)})
    if source.startswith(("http://", "https://")):
        return HTTPDatasetSource(source)
    return get_dataset_source_from_json(json.dumps({"uri": source}), source_type="local")


def device_description(device: torch.device) -> str:
    """``cpu``, ``mps``, or a CUDA device with its model name: ``cuda:0 (NVIDIA H200)``."""
    if device.type != "cuda":
        return str(device)
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def system_metrics_enabled() -> bool:
    """MLflow's own switch, ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true``."""
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING

    return bool(MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get())


def require_system_metrics_support() -> None:
    """Refuse, before anything runs, system metrics asked for without psutil (which MLflow's
    monitor needs), rather than let every job fail on it."""
    if not system_metrics_enabled():
        return
    try:
        import psutil  # noqa: F401
    except ImportError:
        raise UserError(
            "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING is set, but MLflow's system metrics need psutil: "
            "pip install 'itr-harness[system-metrics]'"
        ) from None


@contextmanager
def system_metrics(tracking_uri: str, run_id: str) -> Iterator[None]:
    """While the body runs, MLflow samples CPU, memory, disk, network (and, with pynvml, GPU) use
    into the run as ``system/*`` metrics, when `system_metrics_enabled`; the sampling interval is
    MLflow's ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` (10 s by default)."""
    if not system_metrics_enabled():
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=tracking_uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


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

    require_store(tracking_uri)
    try:
        status = mlflow.MlflowClient(tracking_uri).get_run(run_id).info.status
        if status != "FINISHED":
            raise UserError(f"run {run_id} is {status}: it did not finish, so its checkpoint may be incomplete")
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=CHECKPOINT_ARTIFACTS, dst_path=str(folder), tracking_uri=tracking_uri
        )
    except MlflowException as exc:
        raise UserError(f"run {run_id} in {tracking_uri}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise UserError(f"run {run_id} in {tracking_uri}: no checkpoint artifacts ({exc})") from None
    return Path(path)


def download_rankings(tracking_uri: str, run_id: str, protocol: str | None, folder: Path) -> tuple[str, Path]:
    """Fetch a job run's ``rankings/<protocol>.npz`` (default: the first it stored) into
    `folder`: ``(protocol, path)``; a UserError naming what the run has if it lacks them."""
    import mlflow

    require_store(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    try:
        stored = sorted(Path(item.path).stem for item in client.list_artifacts(run_id, RANKINGS_ARTIFACTS))
    except Exception as exc:  # an unknown run id
        raise UserError(f"run {run_id} in {tracking_uri}: {str(exc).splitlines()[0]}") from None
    if not stored:
        raise UserError(f"run {run_id} has no rankings ({RANKINGS_ARTIFACTS}/*.npz): eval.rankings_top_k was 0, or an older itr-harness ran it")
    protocol = protocol or stored[0]
    if protocol not in stored:
        raise UserError(f"run {run_id} has no rankings for protocol '{protocol}'; it has: {', '.join(stored)}")
    return protocol, Path(client.download_artifacts(run_id, f"{RANKINGS_ARTIFACTS}/{protocol}.npz", str(folder)))


def require_experiment(tracking_uri: str, name: str) -> str:
    """The id of an existing experiment, or a UserError saying how to create it."""
    import mlflow

    require_store(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.MlflowClient().get_experiment_by_name(name)
    if experiment is None:
        raise UserError(f"no experiment '{name}' in the MLflow store {tracking_uri}; run `itr run FILE` first")
    return experiment.experiment_id


def require_store(tracking_uri: str) -> None:
    """Commands that only read (eval, leaderboard, compare, slices) refuse a local store that does
    not exist, instead of letting MLflow create an empty one where the user mistyped a path."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise UserError(f"no MLflow store at {path}; run `itr run FILE` first, or give --results-dir / --tracking-uri")
    require_reachable(tracking_uri)


def require_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before anything trains, when an MLflow server does not answer.

    MLflow itself retries an unreachable server for minutes, and only at the first log call.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout) as response:
            response.read(64)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"tracking URI {tracking_uri} does not answer ({reason}); start the server (mlflow server) "
            "or choose another --tracking-uri"
        ) from None


def experiment_of(tracking_uri: str, run_id: str) -> str:
    """The experiment id of a run."""
    import mlflow

    return mlflow.MlflowClient(tracking_uri).get_run(run_id).info.experiment_id


class ExperimentRuns:
    """The finished job runs of one experiment in a store, as the job layer asks for them
    (`harness.job.prefilter.FinishedRuns`: a re-rank borrowing another method's candidates)."""

    def __init__(self, tracking_uri: str, experiment_id: str) -> None:
        self.tracking_uri, self.experiment_id = tracking_uri, experiment_id

    def checkpoint(self, label: str, entry: Any, seed: int, folder: Path) -> tuple[str, Path]:
        import mlflow

        where = f"eval.prefilter '{label}'"
        found = mlflow.MlflowClient(self.tracking_uri).search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`itr.kind` = '{JOB_KIND}' and attributes.status = 'FINISHED' and "
                f"tags.`itr.label` = '{label}' and tags.`itr.dataset` = '{entry.title}'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1000,
        )
        if not found:
            raise UserError(f"{where}: no finished run of '{label}' on {entry.title} in this experiment; run it first")
        run = next((r for r in found if r.data.tags.get("itr.seed") == str(seed)), found[0])
        split = run.data.params.get("dataset.test")
        if split != entry.test:
            raise UserError(f"{where}: its run {run.info.run_id} was evaluated on split '{split}', this evaluation is on '{entry.test}'")
        return run.info.run_id, download_checkpoint(self.tracking_uri, run.info.run_id, folder)
