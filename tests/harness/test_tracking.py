"""MLflow conventions of a job's run: its datasets as run inputs, the time and device of training
and evaluation, and MLflow's system metrics when switched on; in real SQLite stores."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from baselines.datasets.coco_demo import coco_demo
from harness.config.experiment_file import DatasetEntry
from harness.conformance.demo_run import MlflowStore, run_demo_job
from harness.errors import UserError
from harness.interfaces import RetrievalSplit
from harness.leaderboard import job_results
from harness.plugin_manager import PluginHost
from harness.tracking import (
    Tracker,
    dataset_input,
    device_description,
    split_digest,
    system_metrics,
)
from harness.training.device import resolve_device

SMALL_VSE = {
    "text_encoder.min_count": 1,
    "image_encoder.embed_dim": 16,
    "text_encoder.embed_dim": 16,
    "train.batch_size": 32,
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """One one-epoch VSE++ job on coco-demo, logged to a fresh SQLite store."""
    store = MlflowStore(tmp_path_factory.mktemp("mlflow"))
    run = run_demo_job("vse++", store, overrides=SMALL_VSE, host=PluginHost())
    return store.client().get_run(run.run_id)


def test_a_job_run_lists_the_splits_it_read_with_digest_and_source(demo_run):
    inputs = {item.dataset.name: item for item in demo_run.inputs.dataset_inputs}
    assert sorted(inputs) == ["coco-demo:test", "coco-demo:train"]
    test = inputs["coco-demo:test"]
    assert test.dataset.digest == split_digest(coco_demo().load("test"))
    assert test.dataset.source_type == "local"
    assert json.loads(test.dataset.source) == {
        "uri": str(coco_demo().annotations.resolve())
    }
    tags = {tag.key: tag.value for tag in test.tags}
    assert tags == {
        "mlflow.data.context": "testing",
        "itr.images": "20",
        "itr.captions": "100",
    }
    assert {
        tag.value
        for tag in inputs["coco-demo:train"].tags
        if tag.key == "mlflow.data.context"
    } == {"training"}


def test_a_job_run_records_how_long_it_trained_and_evaluated_and_where(demo_run):
    assert (
        demo_run.data.metrics["eval_seconds"] > 0
        and demo_run.data.metrics["train_seconds"] > 0
    )
    here = device_description(resolve_device("auto"))
    assert (
        demo_run.data.tags["itr.eval.device"] == here
        and demo_run.data.tags["itr.train.device"] == here
    )


def split_of(
    folder: Path,
    captions: tuple[str, ...] = ("a", "b", "c"),
    pairing: tuple[int, ...] = (0, 0, 1),
) -> RetrievalSplit:
    paths = []
    for name, data in (("x.jpg", b"12345"), ("y.jpg", b"123")):
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return RetrievalSplit(
        "d",
        "test",
        ("x", "y"),
        captions,
        np.array(pairing, dtype=np.int64),
        image_paths=tuple(paths),
    )


def test_the_digest_follows_the_content_not_the_folder(tmp_path):
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    digest = split_digest(split_of(tmp_path / "one"))
    assert len(digest) == 16 and split_digest(split_of(tmp_path / "two")) == digest
    assert split_digest(split_of(tmp_path / "one", captions=("a", "b", "d"))) != digest
    assert split_digest(split_of(tmp_path / "one", pairing=(0, 1, 1))) != digest
    (tmp_path / "one" / "y.jpg").write_bytes(b"1234")
    assert (
        split_digest(
            RetrievalSplit(
                "d",
                "test",
                ("x", "y"),
                ("a", "b", "c"),
                np.array([0, 0, 1]),
                image_paths=(tmp_path / "one" / "x.jpg", tmp_path / "one" / "y.jpg"),
            )
        )
        != digest
    )


def test_precomputed_features_enter_the_digest_by_shape(tmp_path):
    def features(dim: int) -> RetrievalSplit:
        return RetrievalSplit(
            "d",
            "test",
            ("0",),
            ("a",),
            np.zeros(1, dtype=np.int64),
            image_features={"pooled": np.zeros((1, dim), np.float32)},
        )

    assert (
        split_digest(features(4))
        == split_digest(features(4))
        != split_digest(features(8))
    )


def test_a_dataset_that_does_not_say_where_it_lies_is_described_by_its_entry(tmp_path):
    entry = DatasetEntry(name="my-format", options={"root": "data/x", "size": 3})
    logged = dataset_input(entry, split_of(tmp_path), "testing", None).dataset
    assert logged.name == "my-format:test" and logged.source_type == "code"
    assert json.loads(json.loads(logged.source)["tags"]["itr.options"]) == {
        "root": "data/x",
        "size": 3,
    }


def test_a_url_source_is_an_http_source(tmp_path):
    logged = dataset_input(
        DatasetEntry(name="hf-dataset"),
        split_of(tmp_path),
        "testing",
        "https://huggingface.co/datasets/x",
    ).dataset
    assert logged.source_type == "http" and json.loads(logged.source) == {
        "url": "https://huggingface.co/datasets/x"
    }


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    """An experiment in a fresh SQLite store (seeded from the migrated empty store, so quickly)."""
    root = tmp_path_factory.mktemp("mlflow")
    tracker = Tracker(MlflowStore(root).uri, root)
    tracker.experiment_id_ = tracker.experiment_id("system")
    return tracker


def system_metric_keys(tracker: Tracker, sleep: float) -> list[str]:
    """The ``system/*`` metrics of a new run that lasted `sleep` seconds under `system_metrics`."""
    run_id = tracker.client.create_run(tracker.experiment_id_).info.run_id
    with system_metrics(tracker.tracking_uri, run_id):
        time.sleep(sleep)
    return [
        key
        for key in tracker.client.get_run(run_id).data.metrics
        if key.startswith("system/")
    ]


def test_system_metrics_are_sampled_into_the_run_when_switched_on(tracker, monkeypatch):
    pytest.importorskip("psutil", reason="the system-metrics extra")
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    keys = system_metric_keys(tracker, 0.3)
    assert (
        "system/cpu_utilization_percentage" in keys
        and "system/system_memory_usage_megabytes" in keys
    )


def test_system_metrics_stay_off_by_default(tracker, monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    assert system_metric_keys(tracker, 0.05) == []


def test_system_metrics_without_psutil_are_refused_in_one_line(
    itr_mlflow_store, monkeypatch
):
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(
        UserError,
        match=r"MLflow's system metrics need psutil: pip install 'itr-harness\[system-metrics\]'",
    ):
        Tracker(itr_mlflow_store.uri)


def test_system_metrics_make_no_leaderboard_table(tracker):
    tags = {
        "itr.kind": "job",
        "itr.label": "m",
        "itr.dataset": "d",
        "itr.seed": "0",
        "itr.config_hash": "h",
    }
    run_id = tracker.client.create_run(tracker.experiment_id_, tags=tags).info.run_id
    for key, value in {
        "full/rsum": 300.0,
        "system/cpu_utilization_percentage": 5.0,
        "train/loss": 1.0,
    }.items():
        tracker.client.log_metric(run_id, key, value)
    tracker.client.set_terminated(run_id, "FINISHED")
    results = job_results(tracker.tracking_uri, tracker.experiment_id_)
    assert set(results["protocol"]) == {"full"} and list(results["metric"]) == ["rsum"]


def test_a_split_logged_by_two_jobs_at_once_reaches_both_runs(tracker, tmp_path):
    """The loser of the race on the dataset's row (its insert hits the unique key, as two local
    workers' did) logs again and links the row the winner created."""
    from mlflow.exceptions import MlflowException

    from harness.tracking import JobLog

    split = coco_demo().load("test")
    entry = DatasetEntry(name="coco-demo")
    runs = [tracker.client.create_run(tracker.experiment_id_).info.run_id for _ in range(2)]
    JobLog(tracker.client, runs[0]).dataset(entry, split, "testing", None)

    class LosesTheRace:
        def __init__(self, client):
            self.client, self.calls = client, 0

        def log_inputs(self, run_id, datasets):
            self.calls += 1
            if self.calls == 1:
                raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest")
            return self.client.log_inputs(run_id, datasets=datasets)

    loser = LosesTheRace(tracker.client)
    JobLog(loser, runs[1]).dataset(entry, split, "testing", None)
    assert loser.calls == 2
    digests = [[i.dataset.digest for i in tracker.client.get_run(run).inputs.dataset_inputs] for run in runs]
    assert digests[0] == digests[1] and len(digests[0]) == 1
