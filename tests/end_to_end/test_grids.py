"""Grids through the real command line: resume after a kill, failure isolation, executors
(2 local workers, Ray) against a SQLite store and a real `mlflow server`, unreachable servers.

The run that is killed, the executors' runs and the unreachable server's one-line answer are
real `itr` processes; the runs after a kill and the failing cell's run, about what the driver
records rather than about a process, run in this one (`itr_in_process`, seconds faster each)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import mlflow
import pandas as pd
import pytest

from tests.helpers import REPO_ROOT, MlflowServer, free_port, itr_in_process, run_itr, store_uri

GRID = """
name = "{name}"
[[datasets]]
name = "coco-demo"
[methods."vse++"]
text_encoder.min_count = 1
train.batch_size = 32
stages.main.epochs = {epochs}
[methods."vse++".grid]
"train.lr" = [2e-4, 5e-4]
{extra}
"""
LOSS_AXIS = '"stages.main.loss" = [{ name = "hardest-negative-triplet" }, { name = "sum-hinge-triplet" }]'
CELLS = 4
"""Cells of the grid with the loss axis; 2 without it."""

NAN_LOSS_PLUGIN = '''
import torch
from harness.hookspecs import hookimpl


class NanLoss(torch.nn.Module):
    """A loss that goes NaN: the trainer must stop this job and record it as failed."""

    def __init__(self, ctx):
        super().__init__()

    def forward(self, scores, image_ids):
        return scores.sum() * float("nan")


@hookimpl
def register_losses(register):
    register("nan-loss", NanLoss)
'''


def grid_file(tmp_path, name, epochs=1, extra=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(GRID.format(name=name, epochs=epochs, extra=extra))
    return path


def job_runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], "tags.`itr.kind` = 'job'", max_results=1000)
    return pd.DataFrame(
        [
            {"run_id": run.info.run_id, "status": run.info.status, "hash": run.data.tags["itr.config_hash"],
             "label": run.data.tags["itr.label"], "parent": run.data.tags.get("mlflow.parentRunId"),
             "error": run.data.tags.get("itr.error", "")}
            for run in runs
        ]
    )


def assert_each_cell_finished_once(runs: pd.DataFrame, cells: int) -> None:
    finished = runs[runs["status"] == "FINISHED"]
    assert len(finished) == cells and finished["hash"].is_unique, runs


def board_without_run_ids(results, name) -> pd.DataFrame:
    return pd.read_csv(results / name / "leaderboard.csv")


def test_a_killed_grid_resumes_running_only_what_is_missing(tmp_path):
    path = grid_file(tmp_path, "resume", epochs=2, extra=LOSS_AXIS)
    results = tmp_path / "results"
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(path), "--results-dir", str(results)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    for line in driver.stderr:  # wait until one cell finished and the next one started
        if line.startswith("[2/"):
            break
    deadline = time.monotonic() + 60
    while not (job_runs(store_uri(results), "resume")["status"] == "RUNNING").any():  # its run is open
        assert time.monotonic() < deadline, "the second cell never opened its run"
        time.sleep(0.1)
    assert driver.poll() is None, "the grid finished before it could be interrupted"
    driver.kill()
    driver.wait()

    before = job_runs(store_uri(results), "resume")
    assert set(before["status"]) == {"FINISHED", "RUNNING"} and (before["status"] == "FINISHED").sum() == 1

    again = itr_in_process("run", str(path), "--results-dir", str(results))
    assert again.code == 0, again.stderr[-3000:]
    assert "1 skipped (finished before)" in again.stderr and f"{CELLS - 1} jobs finished" in again.stderr
    after = job_runs(store_uri(results), "resume")
    assert_each_cell_finished_once(after, CELLS)
    [killed] = after[after["status"] == "KILLED"].to_dict("records")
    assert killed["error"].startswith("interrupted") and killed["hash"] in set(after.loc[after["status"] == "FINISHED", "hash"])

    clean = tmp_path / "clean"
    uninterrupted = itr_in_process("run", str(path), "--results-dir", str(clean))
    assert uninterrupted.code == 0, uninterrupted.stderr[-3000:]
    pd.testing.assert_frame_equal(board_without_run_ids(results, "resume"), board_without_run_ids(clean, "resume"))


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "nan_loss.py").write_text(NAN_LOSS_PLUGIN)
    extra = 'include = [{ "stages.main.loss" = { name = "nan-loss" } }]'
    path = grid_file(tmp_path, "failing", extra=extra)
    results = tmp_path / "results"
    out = itr_in_process("--plugins-dir", str(plugins), "run", str(path), "--results-dir", str(results))
    assert out.code == 1
    assert "2 jobs finished, 1 failed" in out.stderr
    assert "FAILED vse++[loss=nan-loss] on coco-demo (seed 0): NonFiniteLoss" in out.stderr
    runs = job_runs(store_uri(results), "failing")
    assert_each_cell_finished_once(runs, 2)
    [failed] = runs[runs["status"] == "FAILED"].to_dict("records")
    assert failed["label"] == "vse++[loss=nan-loss]" and failed["error"].startswith("NonFiniteLoss")
    board = board_without_run_ids(results, "failing")
    assert len(board) == 2 and "vse++[loss=nan-loss]" not in set(board["method"])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 (SQLite backend, served artifacts)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server.uri
    server.stop()


@pytest.mark.parametrize(
    ("store", "executor"),
    [("sqlite", ["--workers", "2"]), ("server", ["--executor", "ray", "--executor-option", "num_cpus=1"])],
    ids=["sqlite-local-2", "server-ray"],
)
def test_executors_log_every_cell_exactly_once(tmp_path, executor, store, request):
    """Worker processes on one machine writing one SQLite file at once, and Ray tasks writing
    through a tracking server's HTTP API, as a cluster runs. The two other pairings would add a
    minute to the suite and no path these two miss."""
    name = f"grid-{executor[1]}-{store}"
    path = grid_file(tmp_path, name)
    results = tmp_path / "results"
    uri = store_uri(results) if store == "sqlite" else request.getfixturevalue("mlflow_server")
    out = run_itr("run", str(path), "--results-dir", str(results), "--tracking-uri", uri, *executor)
    assert out.code == 0, out.stderr[-3000:]
    runs = job_runs(uri, name)
    assert_each_cell_finished_once(runs, 2)
    assert set(runs["status"]) == {"FINISHED"}
    parents = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name(name).experiment_id], "tags.`itr.kind` = 'experiment'"
    )
    assert len(parents) == 1 and set(runs["parent"]) == {parents[0].info.run_id}
    assert len(board_without_run_ids(results, name)) == 2


def test_an_unreachable_tracking_server_stops_before_anything_runs(tmp_path):
    path = grid_file(tmp_path, "unreachable")
    results = tmp_path / "results"
    out = run_itr("run", str(path), "--results-dir", str(results), "--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert out.code == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "does not answer" in out.stderr
    assert not results.exists()
