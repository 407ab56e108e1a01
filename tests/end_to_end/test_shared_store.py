"""Shared and faulty stores through real drivers: two `itr run` processes on one grid, a tracking
server killed mid-grid (restarted within the retry bound, or not), a SQLite store locked by
another connection or full.

Every test ends by counting, per cell, the FINISHED job runs in the store: a cell with none is
lost, a cell with two ran twice; both must be 0. The drivers are real processes (the point of
the tests); a fault is set off inside the driver at a chosen moment by a small wrapper around
`itr` (`FAULT_AT_FIRST_JOB`: when the first job starts, after its run exists), so it hits the
same moment every time. What runs after the fault (the next `itr run`) runs in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.end_to_end.test_grids import job_runs
from tests.helpers import REPO_ROOT, MlflowServer, itr_in_process, store_uri

CELLS = 4
GRID = """
name = "{name}"
[[datasets]]
name = "coco-demo"
[methods.class-bridge]
[methods.class-bridge.grid]
"eval.batch_size" = [32, 64, 128, 256]
"""
SLOW_CELLS = '''
import time
from harness.hookspecs import hookimpl


@hookimpl
def before_job(job):
    """Each cell takes a while, so two drivers started together meet on the grid."""
    time.sleep(1.5)
'''
FAULT_AT_FIRST_JOB = """
import os, signal, sqlite3, sys, threading, time

import sqlalchemy
from sqlalchemy import event

import harness.job.run

fault, argument, args = sys.argv[1], sys.argv[2], sys.argv[3:]
state = {"jobs": 0, "full": False}


@event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute", retval=True)
def store_settings(conn, cursor, statement, parameters, context, executemany):
    if statement.startswith("PRAGMA busy_timeout"):  # SQLite waits 1 s on a lock, not MLflow's 20
        statement = "PRAGMA busy_timeout = 1000;"
    if state["full"]:  # the file may not grow any more: SQLite's own "database or disk is full"
        pages = cursor.connection.execute("PRAGMA page_count").fetchone()[0]
        cursor.connection.execute(f"PRAGMA max_page_count = {pages}")
    return statement, parameters


def lock_store(path, seconds):
    held = threading.Event()

    def hold():
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(seconds)
        connection.execute("ROLLBACK")

    threading.Thread(target=hold, daemon=True).start()
    held.wait()


real_run_job = harness.job.run.run_job


def run_job(*run_args, **run_kwargs):
    state["jobs"] += 1
    if state["jobs"] == 1:
        if fault == "kill-server":
            os.killpg(int(argument), signal.SIGKILL)
        elif fault == "kill-driver":  # this driver dies holding its first cell
            os.kill(os.getpid(), signal.SIGKILL)
        elif fault == "lock":
            seconds, path = argument.split(":", 1)
            lock_store(path, float(seconds))
        elif fault == "fill":
            state["full"] = True
    return real_run_job(*run_args, **run_kwargs)


harness.job.run.run_job = run_job
from harness.cli import main

main(args)
"""


def write_grid(folder: Path, name: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(GRID.format(name=name))
    return path


def driver_env(**values: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    return {**env, "ITR_LEASE_SECONDS": "10", **values}


def start_driver(path: Path, results: Path, uri: str, plugins: Path | None = None, fault: tuple[str, str] | None = None, **env: str) -> subprocess.Popen:
    """A real `itr run` process (with a fault set off at its first job, when given)."""
    cli = [*(["--plugins-dir", str(plugins)] if plugins else []), "run", str(path), "--results-dir", str(results), "--tracking-uri", uri]
    command = [sys.executable, "-c", FAULT_AT_FIRST_JOB, *fault, *cli] if fault else [sys.executable, "-m", "harness.cli", *cli]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=driver_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=300)
    return process.returncode, err


def lost_and_twice(uri: str, name: str) -> tuple[int, int]:
    """(cells without a FINISHED run, cells with more than one) of experiment `name`."""
    runs = job_runs(uri, name)
    finished = runs[runs["status"] == "FINISHED"]["hash"].value_counts()
    return CELLS - len(finished), int((finished > 1).sum())


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def slow_cells(tmp_path_factory) -> Path:
    plugins = tmp_path_factory.mktemp("slow-cells")
    (plugins / "slow_cells.py").write_text(SLOW_CELLS)
    return plugins


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One real `mlflow server` for the module's tests (each its own experiment): started once,
    since a start costs seconds of CPU."""
    running = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield running
    running.stop()


@pytest.fixture
def server(shared_server):
    """The module's server, running: a test may kill it (and start it again)."""
    if shared_server.process.poll() is not None:
        shared_server.start()
    return shared_server


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_two_drivers_started_together_run_each_cell_exactly_once(tmp_path, slow_cells, store, request):
    name = f"two-drivers-{store}"
    path, results = write_grid(tmp_path, name), tmp_path / "results"
    uri = store_uri(results) if store == "sqlite" else request.getfixturevalue("server").uri
    drivers = [start_driver(path, results, uri, slow_cells) for _ in range(2)]
    (code_a, err_a), (code_b, err_b) = (finish(driver) for driver in drivers)
    assert code_a == 0 and code_b == 0, (err_a[-3000:], err_b[-3000:])
    assert lost_and_twice(uri, name) == (0, 0)
    runs = job_runs(uri, name)
    assert set(runs["status"]) == {"FINISHED"}, "no run closed while its driver lived"
    ran = [err.count("      done ") for err in (err_a, err_b)]
    assert sum(ran) == CELLS and min(ran) >= 1, ran
    for err in (err_a, err_b):
        assert "finished by another driver" in err and f"{CELLS - err.count('      done ')} skipped" in err
    assert len(pd_board(results, name)) == CELLS


def test_a_driver_killed_holding_a_cell_leaves_it_to_the_other(tmp_path, slow_cells):
    """Driver A is killed (SIGKILL) as its first job starts, its claim held; driver B, started
    with it, takes the cell over (A's process is gone from this host, so its lease with it)."""
    name = "killed-driver"
    path, results = write_grid(tmp_path, name), tmp_path / "results"
    uri = store_uri(results)
    killed = start_driver(path, results, uri, slow_cells, fault=("kill-driver", "-"))
    other = start_driver(path, results, uri, slow_cells)
    assert finish(killed)[0] == -signal.SIGKILL
    code, err = finish(other)
    assert code == 0 and f"{CELLS} jobs finished" in err, err[-3000:]
    assert lost_and_twice(uri, name) == (0, 0)
    runs = job_runs(uri, name)
    [dead] = runs[runs["status"] != "FINISHED"].to_dict("records")
    assert dead["status"] == "KILLED" and dead["error"].startswith("interrupted")


def pd_board(results: Path, name: str):
    import pandas as pd

    return pd.read_csv(results / name / "leaderboard.csv")


def test_a_server_restarted_within_the_retry_bound_loses_nothing(tmp_path, server):
    name = "server-restarted"
    path, results = write_grid(tmp_path, name), tmp_path / "results"
    driver = start_driver(path, results, server.uri, fault=("kill-server", str(server.process.pid)), ITR_TRACKING_RETRY_SECONDS="90")
    server.process.wait(timeout=120)  # killed by the driver as its first job starts
    server.start()
    code, err = finish(driver)
    assert code == 0, err[-3000:]
    assert lost_and_twice(server.uri, name) == (0, 0)
    assert f"{CELLS} jobs finished" in err and not (results / name / "pending").exists()


def test_results_the_server_did_not_take_are_uploaded_by_the_next_run(tmp_path, server):
    name = "server-gone"
    path, results = write_grid(tmp_path, name), tmp_path / "results"
    driver = start_driver(path, results, server.uri, fault=("kill-server", str(server.process.pid)), ITR_TRACKING_RETRY_SECONDS="2")
    code, err = finish(driver)
    [line] = error_lines(err)
    assert code == 2 and "Traceback" not in err
    assert f"tracking store {server.uri} did not answer for 2 s" in line and "1 finished jobs wait under" in line
    [kept] = (results / name / "pending").iterdir()

    server.start()
    again = itr_in_process("run", str(path), "--results-dir", str(results), "--tracking-uri", server.uri)
    assert again.code == 0, again.stderr[-3000:]
    assert f"kept under {kept}" in again.stderr and f"{CELLS - 1} jobs finished" in again.stderr
    assert not kept.exists()
    assert lost_and_twice(server.uri, name) == (0, 0)
    assert_uploaded_whole(server.uri, name, kept.name)


def assert_uploaded_whole(uri: str, name: str, folder: str) -> None:
    """The uploaded run has what a job logs: its metrics, its ranks and its checkpoint."""
    client = mlflow.MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(name).experiment_id
    [run] = client.search_runs([experiment_id], f"tags.`itr.uploaded_from` = '{folder}'")
    assert run.info.status == "FINISHED" and "full/rsum" in run.data.metrics
    assert {item.path for item in client.list_artifacts(run.info.run_id)} >= {"ranks", "checkpoint"}


@pytest.mark.parametrize(("seconds", "bound", "outcome"), [("3", "30", "completes"), ("8", "2", "kept")], ids=["released", "beyond-bound"])
def test_a_locked_sqlite_store(tmp_path, seconds, bound, outcome):
    """Another connection holds the store in an exclusive transaction as the first job starts:
    released within the retry bound, the run completes; held beyond it, one line, the finished
    job kept and uploaded by the next run."""
    name = f"locked-{outcome}"
    path, results = write_grid(tmp_path, name), tmp_path / "results"
    uri = store_uri(results)
    store = results / "mlflow.db"
    code, err = finish(start_driver(path, results, uri, fault=("lock", f"{seconds}:{store}"), ITR_TRACKING_RETRY_SECONDS=bound))
    if outcome == "completes":
        assert code == 0 and f"{CELLS} jobs finished" in err, err[-3000:]
    else:
        [line] = error_lines(err)
        assert code == 2 and "Traceback" not in err and "database is locked" in line and "wait under" in line
        again = itr_in_process("run", str(path), "--results-dir", str(results))
        assert again.code == 0 and "uploaded the results of" in again.stderr, again.stderr[-3000:]
    assert lost_and_twice(uri, name) == (0, 0)


def test_a_full_sqlite_store_is_one_line_and_loses_nothing(tmp_path):
    """The store file may not grow any more from the first job on (SQLite's page limit): one
    line naming the store, exit 2, the job's results kept; with room again, the next run
    uploads them and runs the rest."""
    name = "full"
    path, results = write_grid(tmp_path, name), tmp_path / "results"
    uri = store_uri(results)
    code, err = finish(start_driver(path, results, uri, fault=("fill", "-")))
    [line] = error_lines(err)
    assert code == 2 and "Traceback" not in err
    assert f"tracking store {uri} is full: " in line and "database or disk is full" in line and "wait under" in line
    again = itr_in_process("run", str(path), "--results-dir", str(results))
    assert again.code == 0 and "uploaded the results of" in again.stderr, again.stderr[-3000:]
    assert lost_and_twice(uri, name) == (0, 0)
