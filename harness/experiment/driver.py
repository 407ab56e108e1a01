"""Driving an experiment: preflight, resume, dispatch the jobs to an executor, collect outcomes.

Data problems are found before the parent run exists, so bad input leaves nothing behind in
MLflow. A job whose configuration already finished in this experiment (same config hash) is
skipped, so rerunning an interrupted grid runs only what is missing; a job left RUNNING by a
killed process is closed as KILLED and run again. A job that fails is recorded as FAILED with
its error, and the others go on. Observer hooks and progress live here, in the driver, whatever
process runs the job.

Other drivers may run the same grid on the same store at the same time: a cell another driver
holds (`harness.lease`) is left to it and waited for at the end of the grid, so the leaderboard
includes it; it is run here only if that claim comes to nothing. A store that stops answering
for good stops the grid: the jobs already running keep their results under ``pending/``
(`harness.pending_uploads`), which the next run uploads before anything else.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config.experiment_file import ExperimentFile
from harness.executors.tickets import Executor, JobOutcome, JobTicket
from harness.experiment.resume import close_interrupted_runs
from harness.features import FeatureCache
from harness.job.catalog import DataCatalog
from harness.job.job import Job
from harness.lease import is_live, lease_seconds
from harness.plugin_manager import PluginHost
from harness.tracking_retry import TrackingUnavailable


@dataclass
class ExperimentOutcome:
    """What `run_experiment` reports: the parent run and each job's fate."""

    parent_run_id: str
    finished: list[tuple[Job, dict[str, float]]] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    skipped: list[tuple[Job, str]] = field(default_factory=list)
    """Jobs already finished in an earlier run of the experiment or by another driver, with that run's id."""
    kept: list[tuple[Job, str]] = field(default_factory=list)
    """Jobs that finished while the store did not answer, with the folder their results wait in."""


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
    pending_dir: Path | None = None
    """Where jobs keep results the store does not take, uploaded by the next run (None: nowhere)."""
    resume_dir: Path | None = None
    """Where jobs keep their resume points, found by config hash (None: they write none)."""


def run_experiment(
    experiment: ExperimentFile, jobs: list[Job], host: PluginHost, tracker: Any, cache: FeatureCache, executor: Executor, launch: Launch
) -> ExperimentOutcome:
    """Run the experiment's unfinished jobs through `executor` under one new parent run."""
    catalog = DataCatalog(host.registry, str(launch.source or experiment.name))
    catalog.preflight(jobs)
    versions = {info.name: info.version for info in host.plugins.values() if not info.error}
    with tracker.experiment_run(experiment.name, experiment.model_dump(), launch.source, versions) as parent:
        outcome = ExperimentOutcome(parent.info.run_id)
        if launch.pending_dir is not None:
            from harness.pending_uploads import upload_pending

            upload_pending(tracker.client, launch.pending_dir, Driver.say)
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
            driver.wait_for_held(executor)
        if driver.stopped:
            raise TrackingUnavailable(driver.stop_message())
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
        self.stopped: str | None = None
        self.held: list[tuple[JobTicket, str]] = []
        """Tickets whose cell another driver holds, with that driver's run."""

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
            pending_dir=str(launch.pending_dir) if launch.pending_dir else None,
            count_finished=not launch.rerun_finished,
            resume_dir=str(launch.resume_dir) if launch.resume_dir else None,
        )

    def progress(self, initial: int) -> Any:
        """A progress bar over cells with an ETA (shown on a terminal only)."""
        from harness.progress import bar

        self._cells = bar(total=self.total, initial=initial, unit="job", desc="jobs", file=sys.stderr)
        return self._cells

    @staticmethod
    def say(message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)

    def started(self, ticket: JobTicket) -> None:
        self.say(f"[{ticket.index}/{ticket.total}] {ticket.title}  config {ticket.job.config_hash}")
        self.host.observers.before_job(ticket.job)

    def finished(self, ticket: JobTicket, outcome: JobOutcome) -> None:
        job = ticket.job
        if outcome.held_by is not None:
            self.say(f"      held {ticket.title}: another driver runs it (run {outcome.held_by}); waiting for it at the end")
            self.held.append((ticket, outcome.held_by))
            return
        if outcome.tracking_error is not None:
            self.stopped = outcome.tracking_error
            if outcome.kept_at is None:
                self.say(f"      not run {ticket.title}: {outcome.tracking_error}")
                return
            self.say(f"      kept {ticket.title}: {outcome.tracking_error}; its results wait under {outcome.kept_at}")
            self.outcome.kept.append((job, outcome.kept_at))
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

    def wait_for_held(self, executor: Executor) -> None:
        """Wait for the cells other drivers hold, polling their runs, until each is settled
        (`_settle`); one this driver is to run after all is run here, and may turn out held again."""
        poll = min(max(lease_seconds() / 6, 0.5), 10.0)
        while self.held and not self.stopped:
            time.sleep(poll)
            again = [ticket for ticket, run_id in list(self.held) if self._settle(ticket, run_id)]
            for wave in waves(again):
                executor.run(wave, self)

    def _settle(self, ticket: JobTicket, run_id: str) -> bool:
        """Whether held `ticket` is to run here: its holder's run `run_id` came to nothing (deleted,
        closed as KILLED, its lease expired). A finished one counts as skipped (its run is on the
        leaderboard), a failed one as failed; one still live stays held."""
        run = self.tracker.client.get_run(run_id)
        status, gone = run.info.status, run.info.lifecycle_stage == "deleted"
        if status == "RUNNING" and not gone and is_live(run):
            return False
        self.held.remove((ticket, run_id))
        if gone or status in ("RUNNING", "KILLED"):
            if status == "RUNNING" and not gone:
                self.tracker.mark_interrupted(run_id)
            return True
        if status == "FINISHED":
            self.say(f"skip {ticket.title}: finished by another driver in run {run_id}")
            self.outcome.skipped.append((ticket.job, run_id))
        else:
            error = run.data.tags.get("itr.error", status)
            self.say(f"      FAILED {ticket.title} (another driver, run {run_id}): {error}")
            self.outcome.failed.append((ticket.job, f"failed in run {run_id} of another driver: {error}"))
        if self._cells is not None:
            self._cells.update(1)
        return False

    def stop_message(self) -> str:
        """The one line a grid stopped by its store ends with."""
        kept = self.outcome.kept
        if not kept:
            return f"{self.stopped}; rerun `itr run` once the store answers again (or has room) to run the rest"
        return (
            f"{self.stopped}; the results of {len(kept)} finished jobs wait under {self.launch.pending_dir}: "
            "rerun `itr run` once the store answers again (or has room) to upload them and run the rest"
        )

    def run_here(self, ticket: JobTicket) -> JobOutcome:
        from harness.executors.worker import run_ticket
        from harness.progress import bar

        job = ticket.job
        epochs = sum(stage.epochs for stage in job.config.stages.values())
        with bar(total=epochs, unit="epoch", desc=job.label, leave=False, file=sys.stderr) as epoch_bar:
            return run_ticket(ticket, self.host, self.catalog, self.cache, on_epoch=lambda *_: epoch_bar.update(1))
