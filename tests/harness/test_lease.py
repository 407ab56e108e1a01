"""Liveness leases and cell claims in a real SQLite store: which RUNNING runs a driver may close,
and that drivers claiming one cell at the same moment leave exactly one holder."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from harness.experiment.resume import close_interrupted_runs
from harness.lease import (
    CLAIM_TAG,
    HEARTBEAT_TAG,
    HOLDER_TAG,
    TENTATIVE,
    CellHeld,
    claim_cell,
    lease_tags,
)
from harness.tracking import Tracker

CELL = "0123456789ab"


@pytest.fixture
def tracker(tmp_path, monkeypatch) -> Tracker:
    monkeypatch.setenv("ITR_LEASE_SECONDS", "1")
    opened = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    opened.experiment_id_ = opened.experiment_id("leases")
    return opened


def job_run(tracker: Tracker, tags: dict[str, str], config_hash: str = CELL) -> str:
    run = tracker.client.create_run(tracker.experiment_id_, tags={"itr.kind": "job", "itr.config_hash": config_hash, **tags})
    return run.info.run_id


def status(tracker: Tracker, run_id: str) -> str:
    return tracker.client.get_run(run_id).info.status


def close(tracker: Tracker) -> None:
    close_interrupted_runs(tracker, [SimpleNamespace(config_hash=CELL)], parent_run_id="-")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_beating_on_another_host_is_closed_only_after_its_lease(tracker):
    run_id = job_run(tracker, {HOLDER_TAG: "elsewhere:4242:cafe", HEARTBEAT_TAG: f"{time.time():.3f}"})
    close(tracker)
    assert status(tracker, run_id) == "RUNNING"
    time.sleep(1.2)
    close(tracker)
    assert status(tracker, run_id) == "KILLED"


def test_a_run_whose_process_is_gone_from_this_host_is_closed_at_once(tracker):
    run_id = job_run(tracker, {HOLDER_TAG: f"{socket.gethostname()}:{dead_pid()}:cafe", HEARTBEAT_TAG: f"{time.time():.3f}"})
    close(tracker)
    assert status(tracker, run_id) == "KILLED"


def test_a_run_of_a_live_process_on_this_host_keeps_its_lease(tracker):
    run_id = job_run(tracker, lease_tags())
    close(tracker)
    assert status(tracker, run_id) == "RUNNING"


def test_a_run_without_a_heartbeat_counts_from_its_start(tracker):
    young = job_run(tracker, {})
    old = tracker.client.create_run(
        tracker.experiment_id_, start_time=int((time.time() - 5) * 1000), tags={"itr.kind": "job", "itr.config_hash": CELL}
    ).info.run_id
    close(tracker)
    assert (status(tracker, young), status(tracker, old)) == ("RUNNING", "KILLED")


def test_a_cell_held_by_a_live_run_is_not_claimed_and_the_claim_is_deleted(tracker):
    holder = job_run(tracker, {**lease_tags(), CLAIM_TAG: "held"})
    claim = job_run(tracker, {**lease_tags(), CLAIM_TAG: TENTATIVE})
    with pytest.raises(CellHeld) as held:
        claim_cell(tracker.client, tracker.experiment_id_, claim, CELL, count_finished=True)
    assert held.value.run_id == holder and not held.value.finished
    assert tracker.client.get_run(claim).info.lifecycle_stage == "deleted"


def test_a_cell_finished_meanwhile_is_claimed_only_when_finished_cells_rerun(tracker):
    finished = job_run(tracker, {})
    tracker.client.set_terminated(finished, "FINISHED")
    claim = job_run(tracker, {**lease_tags(), CLAIM_TAG: TENTATIVE})
    with pytest.raises(CellHeld) as held:
        claim_cell(tracker.client, tracker.experiment_id_, claim, CELL, count_finished=True)
    assert held.value.run_id == finished and held.value.finished
    again = job_run(tracker, {**lease_tags(), CLAIM_TAG: TENTATIVE})
    claim_cell(tracker.client, tracker.experiment_id_, again, CELL, count_finished=False)
    assert tracker.client.get_run(again).data.tags[CLAIM_TAG] == "held"


def test_a_dead_holder_does_not_keep_its_cell(tracker):
    dead = job_run(tracker, {HOLDER_TAG: f"{socket.gethostname()}:{dead_pid()}:cafe", HEARTBEAT_TAG: f"{time.time():.3f}", CLAIM_TAG: "held"})
    claim = job_run(tracker, {**lease_tags(), CLAIM_TAG: TENTATIVE})
    taken_over = claim_cell(tracker.client, tracker.experiment_id_, claim, CELL, count_finished=True)
    assert tracker.client.get_run(claim).data.tags[CLAIM_TAG] == "held" and taken_over == [dead]


def test_claims_made_at_the_same_moment_leave_exactly_one_holder(tracker, monkeypatch):
    monkeypatch.setenv("ITR_LEASE_SECONDS", "60")
    claims = [job_run(tracker, {**lease_tags(), CLAIM_TAG: TENTATIVE}) for _ in range(4)]
    start, won, held_by = threading.Barrier(len(claims)), [], []

    def claim(run_id: str) -> None:
        start.wait()
        try:
            claim_cell(tracker.client, tracker.experiment_id_, run_id, CELL, count_finished=True)
            won.append(run_id)
        except CellHeld as held:
            held_by.append(held.run_id)

    threads = [threading.Thread(target=claim, args=(run_id,)) for run_id in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(held_by) == len(claims) - 1
    active = [run_id for run_id in claims if tracker.client.get_run(run_id).info.lifecycle_stage == "active"]
    assert active == won
