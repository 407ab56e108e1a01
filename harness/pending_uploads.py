"""Results that could not be logged: kept under ``results/<experiment>/pending/``, uploaded later.

A job whose store stops answering past the retry bound (`harness.tracking_retry`), or fills up,
has trained for nothing if its metrics, ranks and checkpoint are dropped. From the first call
that fails for good, the job's log (`KeepingClient`) stops calling the store and writes each call
it would have made to a journal in a folder of its own (``<config hash>-<run id prefix>``):
metrics with their timestamps, tags, run inputs, copies of the artifact folders, the final
status. The folder is staged under a hidden name and renamed once the job's last call (closing
the run) is in it, so a folder under its own name is always a whole job.

The next `itr run` of the experiment replays each folder into the job's run (which the job
created before the store went away) and removes the folder only after the replay finished.
Replaying twice logs nothing twice: metrics keep their original timestamps and steps (the store
keeps one value per key, step and timestamp), tags and params are set to the same values,
artifacts overwrite themselves. A folder whose cell meanwhile finished in another run is kept
and reported, not uploaded: the cell would count twice.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from harness.tracking_retry import TrackingUnavailable

JOURNAL = "journal.jsonl"
UPLOADED_TAG = "itr.uploaded_from"


def pending_folder(results_dir: Path, experiment: str) -> Path:
    """Where experiment `experiment`'s jobs keep results the store did not take."""
    return results_dir / experiment / "pending"


class KeepingClient:
    """The client of one job run: calls go to the store (through `RetryingClient`) until one fails
    for good, then to a journal under `folder` (None: nowhere, the failure is raised).

    Only the calls a job's log makes are journalled: `log_batch`, `set_tag`, `log_inputs`,
    `log_artifacts`, `set_terminated`; any other attribute is the store client's.
    """

    def __init__(self, client: Any, folder: Path | None, run_id: str, config_hash: str) -> None:
        self._client, self._folder = client, folder
        self.run_id, self.config_hash = run_id, config_hash
        self.reason: TrackingUnavailable | None = None
        self._artifacts = 0
        self.kept_at: Path | None = None
        """The committed folder, once the run's last call was kept there."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    @property
    def _staging(self) -> Path:
        assert self._folder is not None
        return self._folder / f".{self.config_hash}-{self.run_id[:12]}"

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        self._call(
            lambda: self._client.log_batch(run_id, metrics=list(metrics), params=list(params), tags=list(tags)),
            lambda: {
                "call": "log_batch",
                "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
                "params": [[p.key, p.value] for p in params],
                "tags": [[t.key, t.value] for t in tags],
            },
        )

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self._call(lambda: self._client.set_tag(run_id, key, value), lambda: {"call": "set_tag", "key": key, "value": str(value)})

    def log_inputs(self, run_id: str, datasets: Any) -> None:
        from google.protobuf.json_format import MessageToDict

        self._call(
            lambda: self._client.log_inputs(run_id, datasets=datasets),
            lambda: {"call": "log_inputs", "datasets": [MessageToDict(dataset.to_proto()) for dataset in datasets]},
        )

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        def keep() -> dict[str, Any]:
            self._artifacts += 1
            copy = f"artifacts/{self._artifacts}"
            shutil.copytree(local_dir, self._staging / copy)
            return {"call": "log_artifacts", "local": copy, "artifact_path": artifact_path}

        self._call(lambda: self._client.log_artifacts(run_id, local_dir, artifact_path=artifact_path), keep)

    def set_terminated(self, run_id: str, status: str) -> None:
        self._call(lambda: self._client.set_terminated(run_id, status), lambda: {"call": "set_terminated", "status": status})
        if self.reason is not None and self.kept_at is None:
            self.kept_at = self._staging.with_name(self._staging.name[1:])
            os.replace(self._staging, self.kept_at)

    def _call(self, online: Callable[[], Any], entry: Callable[[], dict[str, Any]]) -> None:
        if self.reason is None:
            try:
                online()
                return
            except TrackingUnavailable as exc:
                if self._folder is None:
                    raise
                self.reason = exc
                self._staging.mkdir(parents=True, exist_ok=True)
                self._append({"call": "header", "run_id": self.run_id, "config_hash": self.config_hash, "reason": str(exc)})
        self._append(entry())

    def _append(self, record: dict[str, Any]) -> None:
        with (self._staging / JOURNAL).open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(record) + "\n")
            journal.flush()
            os.fsync(journal.fileno())


def upload_pending(client: Any, folder: Path, say: Callable[[str], None]) -> None:
    """Replay every committed folder under `folder` into its run, then remove it (see the module)."""
    if not folder.is_dir():
        return
    for kept in sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")):
        records = [json.loads(line) for line in (kept / JOURNAL).read_text(encoding="utf-8").splitlines()]
        header = records[0]
        run_id = header["run_id"]
        run = client.get_run(run_id)
        other = _finished_elsewhere(client, run, header["config_hash"])
        if other is not None:
            say(f"pending results {kept} not uploaded: their cell finished meanwhile in run {other}; remove the folder")
            continue
        client.set_tag(run_id, UPLOADED_TAG, kept.name)
        for record in records[1:]:
            _replay(client, run_id, kept, record)
        shutil.rmtree(kept)
        say(f"uploaded the results of {run.info.run_name} kept under {kept} into run {run_id}")


def _finished_elsewhere(client: Any, run: Any, config_hash: str) -> str | None:
    from harness.lease import cell_runs

    others = cell_runs(client, run.info.experiment_id, config_hash)
    return next((o.info.run_id for o in others if o.info.status == "FINISHED" and o.info.run_id != run.info.run_id), None)


def _replay(client: Any, run_id: str, kept: Path, record: dict[str, Any]) -> None:
    from google.protobuf.json_format import ParseDict
    from mlflow.entities import DatasetInput, Metric, Param, RunTag
    from mlflow.protos.service_pb2 import DatasetInput as DatasetInputMessage

    call = record["call"]
    if call == "log_batch":
        metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in record["metrics"]]
        params = [Param(key, value) for key, value in record["params"]]
        client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag(key, value) for key, value in record["tags"]])
    elif call == "set_tag":
        client.set_tag(run_id, record["key"], record["value"])
    elif call == "log_inputs":
        inputs = [DatasetInput.from_proto(ParseDict(item, DatasetInputMessage())) for item in record["datasets"]]
        client.log_inputs(run_id, datasets=inputs)
    elif call == "log_artifacts":
        client.log_artifacts(run_id, str(kept / record["local"]), artifact_path=record["artifact_path"])
    elif call == "set_terminated":
        client.set_terminated(run_id, record["status"])
