"""Preemption: a job stopped by SIGTERM, then by SIGKILL, goes on in its own MLflow run from its
last resume point and ends with the weights and metrics of a job never stopped.

One chain of real `itr run` processes, as a cluster would treat a long job: the first is sent
SIGTERM (a preemption) once it wrote a resume point, the second, which continues it, is killed
with SIGKILL once it wrote a newer one, and a third invocation (in this process, to save an
interpreter start) finishes the job. Every kill lands by polling the resume point file, with no
hook in the harness. The uninterrupted run is the same experiment in a results folder of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from safetensors.torch import load_file

from harness.training.resume_point import read_point
from tests.helpers import REPO_ROOT, itr_in_process, store_uri, tiny_vse_experiment

EPOCHS = 20
EXPERIMENT = tiny_vse_experiment("preemption", EPOCHS, "train.resume_every = 3\n")
TIMINGS = {"train_seconds", "eval_seconds"}
"""Metrics that measure the machine, not the model."""


@dataclass
class AfterKill:
    """What a killed invocation left: its exit status, its runs (kind, status, id), its resume
    point (owner, state) and any staging file of a write it abandoned."""

    returncode: int
    runs: list[tuple[str, str, str]]
    point: tuple[dict, dict] | None
    staging: list[Path]


@dataclass
class Chain:
    results: Path
    terminated: AfterKill
    killed: AfterKill
    rerun_stderr: str
    rerun_code: int


def runs_of(results: Path) -> list[tuple[str, str, str]]:
    client = mlflow.MlflowClient(store_uri(results))
    experiment_id = client.get_experiment_by_name("preemption").experiment_id
    return sorted((run.data.tags["itr.kind"], run.info.status, run.info.run_id) for run in client.search_runs([experiment_id]))


def resume_points(results: Path) -> list[Path]:
    """The job's resume point files (a hidden staging file of a write in progress aside)."""
    return [path for path in (results / "preemption" / "resume").glob("*.pt") if not path.name.startswith(".")]


def resume_file(results: Path) -> Path:
    [path] = resume_points(results)
    return path


def started(experiment: Path, results: Path, log: Path) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "run", str(experiment), "--results-dir", str(results)],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def point_after(results: Path, steps: int, process: subprocess.Popen, log: Path) -> None:
    """Wait until the job's resume point is past `steps` optimiser steps."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the job ended before it was stopped:\n{log.read_text()[-3000:]}"
        found = read_point(resume_file(results)) if resume_points(results) else None
        if found is not None and found[1]["steps"] > steps:
            return
        time.sleep(0.02)
    raise AssertionError("no resume point within 300 s")


def stopped(process: subprocess.Popen, how: signal.Signals, results: Path) -> AfterKill:
    process.send_signal(how)
    returncode = process.wait(timeout=120)
    staging = [path for path in results.rglob(".*") if ".tmp" in path.name]
    return AfterKill(returncode, runs_of(results), read_point(resume_file(results)), staging)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    (folder / "exp.toml").write_text(EXPERIMENT)
    done = itr_in_process("run", str(folder / "exp.toml"), "--results-dir", str(folder / "results"))
    assert done.code == 0, done.stderr[-3000:]
    return folder / "results"


@pytest.fixture(scope="module")
def chain(tmp_path_factory, uninterrupted) -> Chain:
    """SIGTERM, then SIGKILL, then a run to the end (`uninterrupted` warmed the feature cache)."""
    folder = tmp_path_factory.mktemp("preempted")
    experiment, results, log = folder / "exp.toml", folder / "results", folder / "itr.log"
    experiment.write_text(EXPERIMENT)
    first = started(experiment, results, log)
    point_after(results, 0, first, log)
    terminated = stopped(first, signal.SIGTERM, results)
    second = started(experiment, results, log)
    point_after(results, terminated.point[1]["steps"], second, log)
    killed = stopped(second, signal.SIGKILL, results)
    rerun = itr_in_process("run", str(experiment), "--results-dir", str(results))
    return Chain(results, terminated, killed, rerun.stderr, rerun.code)


def job_run(runs: list[tuple[str, str, str]]) -> tuple[str, str]:
    [(status, run_id)] = [(status, run_id) for kind, status, run_id in runs if kind == "job"]
    return status, run_id


def test_sigterm_closes_the_runs_killed_at_once_and_keeps_a_resume_point(chain):
    after = chain.terminated
    assert after.returncode == 128 + signal.SIGTERM
    assert sorted(status for _, status, _ in after.runs) == ["KILLED", "KILLED"], "the job's run and the invocation's"
    owner, state = after.point
    assert owner["run_id"] == job_run(after.runs)[1]
    assert state["steps"] > 0 and len(state["history"]) < EPOCHS, "stopped mid-stage"
    assert after.staging == [], "nothing half-written"


def test_sigkill_leaves_the_continued_run_running_with_a_newer_point(chain):
    after = chain.killed
    assert after.returncode == -signal.SIGKILL
    assert job_run(after.runs) == ("RUNNING", job_run(chain.terminated.runs)[1]), "the second invocation continued the first's run"
    assert after.point[1]["steps"] > chain.terminated.point[1]["steps"] and len(after.point[1]["history"]) < EPOCHS


def test_the_rerun_finishes_the_same_run_with_the_uninterrupted_weights_and_metrics(chain, uninterrupted, tmp_path):
    from harness.tracking import download_checkpoint

    assert chain.rerun_code == 0, chain.rerun_stderr[-3000:]
    run_id = job_run(chain.terminated.runs)[1]
    assert f"continues run {run_id}" in chain.rerun_stderr
    assert job_run(runs_of(chain.results)) == ("FINISHED", run_id)
    assert sorted(status for kind, status, _ in runs_of(chain.results) if kind == "experiment") == ["FINISHED", "KILLED", "KILLED"]
    assert not any((chain.results / "preemption" / "resume").iterdir()), "the finished job's point is removed"
    reference_id = job_run(runs_of(uninterrupted))[1]
    resumed = load_file(download_checkpoint(store_uri(chain.results), run_id, tmp_path / "resumed") / "model.safetensors")
    reference = load_file(download_checkpoint(store_uri(uninterrupted), reference_id, tmp_path / "reference") / "model.safetensors")
    assert resumed.keys() == reference.keys()
    assert all((resumed[name] == reference[name]).all() for name in reference), "bit-identical weights on the CPU"

    def metrics(results: Path, run: str) -> dict[str, float]:
        values = mlflow.MlflowClient(store_uri(results)).get_run(run).data.metrics
        return {key: value for key, value in values.items() if key not in TIMINGS and not key.startswith("system/")}

    assert metrics(chain.results, run_id) == metrics(uninterrupted, reference_id)
    assert "full/rsum" in metrics(uninterrupted, reference_id)


def test_every_epoch_is_logged_once_with_the_uninterrupted_values(chain, uninterrupted):
    def history(results: Path) -> list[tuple[int, float]]:
        client = mlflow.MlflowClient(store_uri(results))
        return sorted((metric.step, metric.value) for metric in client.get_metric_history(job_run(runs_of(results))[1], "train/loss"))

    logged = history(chain.results)
    assert [step for step, _ in logged] == list(range(EPOCHS))
    assert logged == history(uninterrupted)
