"""Tracking calls through `RetryingClient`, and results kept for a later upload, against real
stores: a port nothing listens on (a server that went away), and SQLite files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.exceptions import MlflowException

from harness.errors import UserError
from harness.pending_uploads import KeepingClient, upload_pending
from harness.tracking import seed_sqlite_store
from harness.tracking_retry import RetryingClient, TrackingUnavailable, retry_seconds
from tests.helpers import free_port


@pytest.fixture
def gone(monkeypatch) -> str:
    """The URI of a tracking server that is not there (MLflow's own HTTP retries off)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return f"http://127.0.0.1:{free_port()}"


def test_a_server_that_does_not_answer_is_retried_for_the_bound_then_one_line(gone):
    client = RetryingClient(mlflow.MlflowClient(gone), gone, seconds=1.5)
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as stopped:
        client.get_experiment_by_name("x")
    waited = time.monotonic() - started
    assert 1.5 <= waited < 6
    assert "\n" not in str(stopped.value) and str(stopped.value).startswith(f"tracking store {gone} did not answer for 1.5 s (")

    started = time.monotonic()
    with pytest.raises(TrackingUnavailable):
        client.set_tag("0" * 32, "k", "v")
    assert time.monotonic() - started < 1.0, "once the bound is spent, the next call tries once"


def sqlite_store(folder) -> mlflow.MlflowClient:
    seed_sqlite_store(folder / "mlflow.db")
    return mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def test_bad_input_is_raised_at_once(tmp_path):
    client = RetryingClient(sqlite_store(tmp_path), "sqlite store", seconds=30)
    started = time.monotonic()
    with pytest.raises(MlflowException, match="not found"):
        client.get_run("0" * 32)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("text", ["-1", "soon"])
def test_a_bad_retry_bound_is_one_line(monkeypatch, text):
    monkeypatch.setenv("ITR_TRACKING_RETRY_SECONDS", text)
    with pytest.raises(UserError, match="ITR_TRACKING_RETRY_SECONDS"):
        retry_seconds()


def kept_job(gone: str, store: mlflow.MlflowClient, pending, artifacts) -> tuple[str, KeepingClient]:
    """A job run created in `store`, whose logging then finds its server gone: kept under `pending`."""
    experiment_id = store.create_experiment("kept", artifact_location=(Path(pending).parent / "artifacts").as_uri())
    run_id = store.create_run(experiment_id, tags={"itr.kind": "job", "itr.config_hash": "c0ffee"}).info.run_id
    keeping = KeepingClient(RetryingClient(mlflow.MlflowClient(gone), gone, seconds=0), pending, run_id, "c0ffee")
    keeping.log_batch(run_id, params=[Param("train.lr", "0.001")])
    keeping.log_batch(run_id, metrics=[Metric("full/rsum", 412.5, 1_700_000_000_000, 0)])
    keeping.set_tag(run_id, "itr.eval.device", "cpu")
    split = DatasetInput(Dataset("coco-demo:test", "e63110d35700b10a", "local", '{"uri": "/data/coco"}'), [InputTag("mlflow.data.context", "testing")])
    keeping.log_inputs(run_id, datasets=[split])
    keeping.log_artifacts(run_id, str(artifacts), artifact_path="ranks")
    assert keeping.kept_at is None, "a job's folder is committed only with its last call"
    keeping.set_terminated(run_id, "FINISHED")
    return run_id, keeping


def test_a_job_whose_store_went_away_is_kept_whole_and_uploaded_once(tmp_path, gone):
    store = sqlite_store(tmp_path)
    artifacts = tmp_path / "ranks"
    artifacts.mkdir()
    (artifacts / "full.npz").write_bytes(b"ranks")
    run_id, keeping = kept_job(gone, store, tmp_path / "pending", artifacts)
    assert keeping.kept_at == tmp_path / "pending" / f"c0ffee-{run_id[:12]}"
    assert store.get_run(run_id).info.status == "RUNNING" and not store.get_run(run_id).data.metrics
    copy = tmp_path / "copy"
    shutil.copytree(keeping.kept_at, copy)

    said: list[str] = []
    upload_pending(store, tmp_path / "pending", said.append)
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"full/rsum": 412.5}
    assert run.data.params == {"train.lr": "0.001"} and run.data.tags["itr.eval.device"] == "cpu"
    [split] = run.inputs.dataset_inputs
    assert (split.dataset.name, split.dataset.digest, split.tags[0].value) == ("coco-demo:test", "e63110d35700b10a", "testing")
    assert [item.path for item in store.list_artifacts(run_id, "ranks")] == ["ranks/full.npz"]
    assert not keeping.kept_at.exists() and len(said) == 1 and run_id in said[0]

    shutil.copytree(copy, keeping.kept_at)  # an upload cut short before the folder was removed
    upload_pending(store, tmp_path / "pending", said.append)
    assert len(store.get_metric_history(run_id, "full/rsum")) == 1, "uploading again logs nothing twice"


def test_a_kept_job_whose_cell_finished_elsewhere_is_not_uploaded(tmp_path, gone):
    store = sqlite_store(tmp_path)
    artifacts = tmp_path / "ranks"
    artifacts.mkdir()
    run_id, keeping = kept_job(gone, store, tmp_path / "pending", artifacts)
    other = store.create_run(store.get_run(run_id).info.experiment_id, tags={"itr.kind": "job", "itr.config_hash": "c0ffee"})
    store.set_terminated(other.info.run_id, "FINISHED")
    said: list[str] = []
    upload_pending(store, tmp_path / "pending", said.append)
    assert keeping.kept_at.exists() and store.get_run(run_id).info.status == "RUNNING"
    [line] = said
    assert other.info.run_id in line and "not uploaded" in line
