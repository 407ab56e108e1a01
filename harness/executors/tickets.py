"""A job as a self-contained ticket, and what running it produced.

A ticket holds the `Job` itself; it becomes JSON (the job's record) only when it crosses to
another process (`to_json`), and any process rebuilds it with nothing but the installed plugins.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Protocol, Sequence

from harness.job.job import Job


@dataclass(frozen=True)
class JobTicket:
    """Everything a fresh process needs to run one job and log it as a child run.

    Attributes:
        index, total: the job's position in the experiment, for progress lines.
        job: the job.
        tracking_uri, experiment_id, parent_run_id: where the child run goes.
        source: the experiment file, for messages and relative dataset paths.
        cache_dir: the feature cache (None: the default location).
        plugins_dir, strict_plugins: how the driver loaded plugins, repeated in the worker.
        pending_dir: where the job keeps what the store would not take (None: nowhere).
        resume_dir: where the job's resume points lie (`harness.job.resumption`; None: none).
        count_finished: a run of the same cell finished meanwhile (by another driver) means
            the job is not run (False with ``--rerun-finished``).
    """

    index: int
    total: int
    job: Job
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    source: str
    cache_dir: str | None = None
    plugins_dir: str | None = None
    strict_plugins: bool = False
    pending_dir: str | None = None
    count_finished: bool = True
    resume_dir: str | None = None

    @property
    def title(self) -> str:
        return self.job.title

    def to_json(self) -> str:
        plain = {item.name: getattr(self, item.name) for item in fields(self) if item.name != "job"}
        return json.dumps({**plain, "job": self.job.to_record()}, default=str)

    @classmethod
    def from_json(cls, text: str) -> "JobTicket":
        plain = json.loads(text)
        return cls(job=Job.from_record(plain.pop("job"), "job ticket"), **plain)


@dataclass
class JobOutcome:
    """A finished job's child run and metrics, or the error that stopped it.

    `held_by`: the job did not run, another driver holds its cell (that driver's run);
    `tracking_error`: the store stopped answering (with `kept_at`: where the job's results wait
    for upload).
    """

    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    held_by: str | None = None
    tracking_error: str | None = None
    kept_at: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "JobOutcome":
        return cls(**json.loads(text))


class Session(Protocol):
    """What the driver offers an executor while it runs the tickets."""

    log_dir: str
    """A folder for per-job logs of worker processes."""

    stopped: str | None
    """Why no further ticket may start (the store stopped answering), or None."""

    def started(self, ticket: JobTicket) -> None:
        """Call when a ticket starts (progress, observer hooks)."""

    def finished(self, ticket: JobTicket, outcome: JobOutcome) -> None:
        """Call once per ticket with its outcome, in any order."""

    def run_here(self, ticket: JobTicket) -> JobOutcome:
        """Run a ticket in the driver's process, sharing its loaded data and plugins."""


class Executor(Protocol):
    """Runs tickets, reporting each it started through `session.finished` exactly once; once
    `session.stopped` is set it starts no further ticket."""

    def run(self, tickets: Sequence[JobTicket], session: Session) -> None: ...
