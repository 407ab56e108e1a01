"""Faults: a run killed at the worst moment of a write recovers on the next run, and a results
folder that cannot be written is one clear line.

The worst moment of a write is after its last byte and before the rename that commits it. The
run is a real `itr run` in a subprocess whose ``os.replace`` / ``os.rename`` kill the process
(SIGKILL, no clean-up) when the destination matches the chosen pattern. What runs after the
kill (the next run, `itr eval` of the killed job, the finished run of the last tests) needs no
process of its own and runs in this one (`itr_in_process`, seconds faster each).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from harness.cli import main
from tests.helpers import REPO_ROOT, itr_in_process, printed_leaderboard, store_uri, tiny_vse_experiment

KILL_AT = """
import os, re, signal, sys

pattern = re.compile(sys.argv[1])


def kill_before(rename):
    def renaming(src, dst, *args, **kwargs):
        if pattern.search(os.fspath(dst)):
            os.kill(os.getpid(), signal.SIGKILL)
        return rename(src, dst, *args, **kwargs)

    return renaming


os.replace, os.rename = kill_before(os.replace), kill_before(os.rename)
from harness.cli import main

main(sys.argv[2:])
"""

EXPERIMENT = tiny_vse_experiment("faults", 1)


def killed_run(pattern: str, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [sys.executable, "-c", KILL_AT, pattern, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def statuses(results: Path, kind: str = "job") -> list[str]:
    client = mlflow.MlflowClient(store_uri(results))
    experiment_id = client.get_experiment_by_name("faults").experiment_id
    return sorted(run.info.status for run in client.search_runs([experiment_id], f"tags.`itr.kind` = '{kind}'"))


def running_job_runs(results: Path) -> list[str]:
    client = mlflow.MlflowClient(store_uri(results))
    experiment_id = client.get_experiment_by_name("faults").experiment_id
    return [run.info.run_id for run in client.search_runs([experiment_id], "tags.`itr.kind` = 'job' and attributes.status = 'RUNNING'")]


def cache_entries(cache: Path) -> tuple[list[Path], list[Path]]:
    """(committed entries, staging folders) of a feature cache."""
    folders = [path for path in cache.iterdir() if path.is_dir()] if cache.exists() else []
    return [p for p in folders if not p.name.startswith(".")], [p for p in folders if p.name.startswith(".")]


KILLED_DURING_THE_JOB = ["FINISHED", "KILLED"]
KILL_POINTS = {
    # name: (pattern of the destination whose rename kills the run, statuses of the job runs and
    # of the experiment runs after the rerun); the leaderboard is written after both finished.
    # Killed at its checkpoint, the job had trained: the rerun continues its run from the resume
    # point written after the last epoch (`harness.job.resumption`), so one job run finishes.
    "checkpoint": (r"model\.safetensors$", ["FINISHED"], KILLED_DURING_THE_JOB),
    "feature cache entry": (r"/cache/[0-9a-f]{32}$", KILLED_DURING_THE_JOB, KILLED_DURING_THE_JOB),
    "leaderboard file": (r"leaderboard\.md$", ["FINISHED"], ["FINISHED", "FINISHED"]),
}


@pytest.mark.parametrize("point", KILL_POINTS, ids=list(KILL_POINTS))
def test_a_run_killed_while_writing_recovers_on_the_next_run(tmp_path, point):
    pattern, jobs_after, experiments_after = KILL_POINTS[point]
    experiment, results, cache = tmp_path / "faults.toml", tmp_path / "results", tmp_path / "cache"
    experiment.write_text(EXPERIMENT)
    args = ["run", str(experiment), "--results-dir", str(results), "--cache-dir", str(cache)]

    killed = killed_run(pattern, *args)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    committed = [path for path in tmp_path.rglob("*") if re.search(pattern, str(path))]
    assert committed == [], "the write that was killed must not be visible under its final name"
    if point == "feature cache entry":
        entries, staging = cache_entries(cache)
        assert entries == [] and len(staging) == 1
    if point == "checkpoint":
        [running] = running_job_runs(results)
        refused = itr_in_process("eval", running, "--results-dir", str(results))
        assert refused.code == 2 and f"run {running} is RUNNING: it did not finish" in refused.stderr

    again = itr_in_process(*args)
    assert again.code == 0, again.stderr[-3000:]
    assert "vse++" in printed_leaderboard(again.stdout)["coco-demo / full"]
    assert statuses(results) == jobs_after
    assert statuses(results, "experiment") == experiments_after, "a killed invocation is closed too"
    if point == "leaderboard file":
        assert "1 skipped (finished before)" in again.stderr, "a job that finished before the kill is not run again"
    entries, staging = cache_entries(cache)
    assert staging == [] and all((entry / "manifest.json").is_file() for entry in entries)


@pytest.fixture(scope="module")
def finished_experiment(tmp_path_factory) -> tuple[Path, Path]:
    """(experiment file, results folder) of a finished class-bridge run."""
    folder = tmp_path_factory.mktemp("finished")
    experiment, results = folder / "faults.toml", folder / "results"
    experiment.write_text('name = "faults"\n[[datasets]]\nname = "coco-demo"\n[methods.class-bridge]\n')
    assert itr_in_process("run", str(experiment), "--results-dir", str(results)).code == 0
    return experiment, results


@pytest.mark.parametrize(
    ("code", "reason"), [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")]
)
def test_a_results_folder_that_cannot_be_written_is_one_line(finished_experiment, capsys, monkeypatch, code, reason):
    """The leaderboard of a finished run is rewritten under a full or read-only results/: one
    line naming the file, exit code 2, and the runs stay in MLflow."""
    experiment, results = finished_experiment
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    real_open = Path.open

    def refusing_open(path, mode="r", *args, **kwargs):
        if "w" in mode and results in path.parents:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing_open)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["leaderboard", str(experiment), "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error: ")]
    assert str(results / "faults") in line and reason in line and "--results-dir" in line
    assert statuses(results) == ["FINISHED"], "the finished run is untouched"
