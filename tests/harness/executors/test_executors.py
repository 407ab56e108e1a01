"""Executors in isolation: tickets, GPU slots, a worker that dies, and executor options."""

from __future__ import annotations

import json

import pytest

from harness.config.experiment_file import DatasetEntry
from harness.config.job_config import JobConfig
from harness.errors import UserError
from harness.executors.in_process import InProcess
from harness.executors.local import LocalWorkers, visible_gpus
from harness.executors.tickets import JobOutcome, JobTicket
from harness.job.job import Job
from harness.plugin_manager import PluginHost


def job(index: int) -> Job:
    config = JobConfig(image_encoder={"name": "vse-linear"}, text_encoder={"name": "vse-gru"}, train={"lr": 0.1 * index})
    return Job.create(f"job {index}", "vse++", DatasetEntry(name="coco-demo"), 0, config)


def ticket(index: int = 1, kind: type[JobTicket] | None = None) -> JobTicket:
    return (kind or JobTicket)(
        index=index, total=2, job=job(index),
        tracking_uri="sqlite:///nowhere.db", experiment_id="1", parent_run_id="p", source="exp.toml",
    )


class DamagedTicket(JobTicket):
    """A ticket whose job record lost its label on the way to the worker."""

    def to_json(self) -> str:
        fields = json.loads(super().to_json())
        del fields["job"]["label"]
        return json.dumps(fields)


HASH_1, HASH_2 = job(1).config_hash, job(2).config_hash


class RecordingSession:
    stopped = None

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.events: list[tuple[str, str]] = []
        self.outcomes: dict[str, JobOutcome] = {}

    def started(self, ticket: JobTicket) -> None:
        self.events.append(("started", ticket.job.config_hash))

    def finished(self, ticket: JobTicket, outcome: JobOutcome) -> None:
        self.events.append(("finished", ticket.job.config_hash))
        self.outcomes[ticket.job.config_hash] = outcome

    def run_here(self, ticket: JobTicket) -> JobOutcome:
        return JobOutcome(run_id=f"run-{ticket.index}", metrics={"full/rsum": 1.0})


def test_tickets_and_outcomes_survive_json():
    original = ticket()
    assert JobTicket.from_json(original.to_json()) == original
    outcome = JobOutcome(run_id="r", metrics={"full/rsum": 3.0}, error=None)
    assert JobOutcome.from_json(outcome.to_json()) == outcome


def test_in_process_runs_each_ticket_once_in_order(tmp_path):
    session = RecordingSession(str(tmp_path))
    InProcess().run([ticket(1), ticket(2)], session)
    assert session.events == [("started", HASH_1), ("finished", HASH_1), ("started", HASH_2), ("finished", HASH_2)]


def test_a_worker_that_dies_before_reporting_is_a_failed_outcome_naming_its_log(tmp_path):
    session = RecordingSession(str(tmp_path / "logs"))
    LocalWorkers(workers=2).run([ticket(1, DamagedTicket)], session)
    outcome = session.outcomes[HASH_1]
    assert outcome.run_id is None and "worker process exited with code 1 before reporting" in outcome.error
    log = tmp_path / "logs" / f"0001-{HASH_1}.log"
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


def test_a_data_parallel_job_sees_a_gpu_per_process():
    from harness.executors.local import slot_gpus

    gpus = ["0", "1", "2", "3"]
    assert [slot_gpus(slot, 1, gpus) for slot in range(5)] == ["0", "1", "2", "3", "0"]
    assert [slot_gpus(slot, 2, gpus) for slot in range(2)] == ["0,1", "2,3"]
    assert slot_gpus(0, 2, []) == ""
