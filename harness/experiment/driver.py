"""Driving an experiment: preflight, resume, dispatch the jobs to an executor, collect outcomes.

Data problems are found before the parent run exists, so bad input leaves nothing behind in
MLflow. A job whose configuration already finished in this experiment (same config hash) is
skipped, so rerunning an interrupted grid runs only what is missing; a job left RUNNING by a
killed process is closed as KILLED and run again. A job that fails is recorded as FAILED with
its error, and the others go on. Observer hooks and progress live here, in the driver, whatever
process runs the job.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config.experiment_file import ExperimentFile
from harness.executors.tickets import Executor, JobOutcome, JobTicket
from harness.experiment.resume import close_interrupted_runs
from harness.features import FeatureCache
from harness.job.catalog import DataCatalog
from harness.job.job import Job
from harness.plugin_manager import PluginHost


@dataclass
class ExperimentOutcome:
    """What `run_experiment` reports: the parent run and each job's fate."""

    parent_run_id: str
    finished: list[tuple[Job, dict[str, float]]] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    skipped: list[tuple[Job, str]] = field(default_factory=list)
    """Jobs already finished in an earlier run of the experiment, with that run's id."""


@dataclass
class Launch:
    """How the driver was started, repeated in every worker.

    Attributes:
        source: the experiment file (None for an experiment built in code, e.g. a demo run);
            messages name it, and relative dataset paths are read from where the driver runs.
    """

    source: Path | None
    log_dir: Path
    cache_dir: Path | None = None
    plugins_dir: Path | None = None
    strict_plugins: bool = False
    rerun_finished: bool = False


def run_experiment(
    experiment: ExperimentFile, jobs: list[Job], host: PluginHost, tracker: Any, cache: FeatureCache, executor: Executor, launch: Launch
) -> ExperimentOutcome:
    """Run the experiment's unfinished jobs through `executor` under one new parent run."""
    catalog = DataCatalog(host.registry, str(launch.source or experiment.name))
    catalog.preflight(jobs)
    versions = {info.name: info.version for info in host.plugins.values() if not info.error}
    with tracker.experiment_run(experiment.name, experiment.model_dump(), launch.source, versions) as parent:
        outcome = ExperimentOutcome(parent.info.run_id)
        done_before = close_interrupted_runs(tracker, jobs, parent.info.run_id)
        todo = []
        for job in jobs:
            if job.config_hash in done_before and not launch.rerun_finished:
                outcome.skipped.append((job, done_before[job.config_hash]))
            else:
                todo.append(job)
        driver = Driver(host, catalog, cache, tracker, launch, outcome, len(jobs))
        tickets = [driver.ticket(index, job, parent.info.run_id) for index, job in enumerate(todo, start=len(outcome.skipped) + 1)]
        with driver.progress(initial=len(outcome.skipped)):
            for job, run_id in outcome.skipped:
                driver.say(f"skip {job.title}: finished in run {run_id}")
            for wave in waves(tickets):
                executor.run(wave, driver)
    return outcome


def waves(tickets: list[JobTicket]) -> list[list[JobTicket]]:
    """The tickets in two waves: first every job that needs no other, then the jobs whose re-rank
    borrows another method's candidates (``eval.prefilter = "<label>"``), whose run the first
    wave or an earlier invocation finished. Either wave may be empty."""
    first = [ticket for ticket in tickets if not ticket.job.config.eval.borrows_prefilter]
    second = [ticket for ticket in tickets if ticket.job.config.eval.borrows_prefilter]
    return [wave for wave in (first, second) if wave]


class Driver:
    """The executor's view of the experiment (`harness.executors.tickets.Session`)."""

    def __init__(
        self,
        host: PluginHost,
        catalog: DataCatalog,
        cache: FeatureCache,
        tracker: Any,
        launch: Launch,
        outcome: ExperimentOutcome,
        total: int,
    ) -> None:
        self.host, self.catalog, self.cache, self.tracker = host, catalog, cache, tracker
        self.launch, self.outcome, self.total = launch, outcome, total
        self.log_dir = str(launch.log_dir)
        self._cells: Any = None

    def ticket(self, index: int, job: Job, parent_run_id: str) -> JobTicket:
        launch = self.launch
        return JobTicket(
            index=index,
            total=self.total,
            job=job,
            tracking_uri=self.tracker.tracking_uri,
            experiment_id=self.tracker.experiment_id_,
            parent_run_id=parent_run_id,
            source=self.catalog.source,
            cache_dir=str(launch.cache_dir) if launch.cache_dir else None,
            plugins_dir=str(launch.plugins_dir) if launch.plugins_dir else None,
            strict_plugins=launch.strict_plugins,
        )

    def progress(self, initial: int) -> Any:
        """A progress bar over cells with an ETA (shown on a terminal only)."""
        from harness.progress import bar

        self._cells = bar(total=self.total, initial=initial, unit="job", desc="jobs", file=sys.stderr)
        return self._cells

    def say(self, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)

    def started(self, ticket: JobTicket) -> None:
        self.say(f"[{ticket.index}/{ticket.total}] {ticket.title}  config {ticket.job.config_hash}")
        self.host.observers.before_job(ticket.job)

    def finished(self, ticket: JobTicket, outcome: JobOutcome) -> None:
        job = ticket.job
        if outcome.error is None:
            rsum = outcome.metrics.get(f"{job.dataset.protocols[0]}/rsum", float("nan"))
            self.say(f"      done {ticket.title}: rsum {rsum:.1f}, run {outcome.run_id}")
            self.host.observers.after_job(job, outcome.metrics)
            self.outcome.finished.append((job, outcome.metrics))
        else:
            self.say(f"      FAILED {ticket.title}: {outcome.error}")
            self.outcome.failed.append((job, outcome.error))
        if self._cells is not None:
            self._cells.update(1)

    def run_here(self, ticket: JobTicket) -> JobOutcome:
        from harness.executors.worker import run_ticket
        from harness.progress import bar

        job = ticket.job
        epochs = sum(stage.epochs for stage in job.config.stages.values())
        with bar(total=epochs, unit="epoch", desc=job.label, leave=False, file=sys.stderr) as epoch_bar:
            return run_ticket(ticket, self.host, self.catalog, self.cache, on_epoch=lambda *_: epoch_bar.update(1))
