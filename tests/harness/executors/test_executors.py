"""Executors in isolation: tickets, GPU slots, a worker that dies, and executor options."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.executors.in_process import InProcess
from harness.executors.local import LocalWorkers, visible_gpus
from harness.executors.tickets import JobOutcome, JobTicket
from harness.plugin_manager import PluginHost


def ticket(index: int = 1, record=None) -> JobTicket:
    return JobTicket(
        index=index, total=2, title=f"job {index}", config_hash=f"hash{index}", record=record or {"label": "x"},
        tracking_uri="sqlite:///nowhere.db", experiment_id="1", parent_run_id="p", source="exp.toml",
    )


class RecordingSession:
    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.events: list[tuple[str, str]] = []
        self.outcomes: dict[str, JobOutcome] = {}

    def started(self, ticket: JobTicket) -> None:
        self.events.append(("started", ticket.config_hash))

    def finished(self, ticket: JobTicket, outcome: JobOutcome) -> None:
        self.events.append(("finished", ticket.config_hash))
        self.outcomes[ticket.config_hash] = outcome

    def run_here(self, ticket: JobTicket) -> JobOutcome:
        return JobOutcome(run_id=f"run-{ticket.index}", metrics={"full/rsum": 1.0})


def test_tickets_and_outcomes_survive_json():
    original = ticket(record={"label": "x", "resolved": {"train": {"lr": 0.1}}})
    assert JobTicket.from_json(original.to_json()) == original
    outcome = JobOutcome(run_id="r", metrics={"full/rsum": 3.0}, error=None)
    assert JobOutcome.from_json(outcome.to_json()) == outcome


def test_in_process_runs_each_ticket_once_in_order(tmp_path):
    session = RecordingSession(str(tmp_path))
    InProcess().run([ticket(1), ticket(2)], session)
    assert session.events == [("started", "hash1"), ("finished", "hash1"), ("started", "hash2"), ("finished", "hash2")]


def test_a_worker_that_dies_before_reporting_is_a_failed_outcome_naming_its_log(tmp_path):
    session = RecordingSession(str(tmp_path / "logs"))
    LocalWorkers(workers=2).run([ticket(1, record={"label": "no such job record"})], session)
    outcome = session.outcomes["hash1"]
    assert outcome.run_id is None and "worker process exited with code 1 before reporting" in outcome.error
    log = tmp_path / "logs" / "0001-hash1.log"
    assert str(log) in outcome.error and "job record lacks" in log.read_text()
    assert not list((tmp_path / "logs").glob("*.json"))


def test_gpu_slots_come_from_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_executors_are_registered_components_with_validated_options():
    registry = PluginHost().registry
    assert registry.get("executor", "local").build({"workers": 3}, "t").workers == 3
    with pytest.raises(UserError, match="workers must be ≥ 1"):
        registry.get("executor", "local").build({"workers": 0}, "t")
    with pytest.raises(UserError, match="did you mean 'local'"):
        registry.get("executor", "locall")
